"""Writes to an agent's in-app notifications (created by tickets.sla.notifications_create)."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from tickets.models import Notification


def notifications_mark_read(*, user: AbstractBaseUser, notification_id: int | None = None) -> int:
    """Mark one of the user's notifications read, or all of them; returns how many changed.

    A conditional UPDATE on the user's unread rows: someone else's id, or one already read
    (another tab got there first), changes nothing.
    """
    unread = Notification.objects.filter(user=user, read_at__isnull=True)
    if notification_id is not None:
        unread = unread.filter(pk=notification_id)
    return unread.update(read_at=timezone.now())
