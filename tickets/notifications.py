"""Writes to agents' in-app notifications (SLA escalations create them)."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from conversations import realtime
from tickets.models import Notification, Ticket


def notifications_mark_read(*, user: AbstractBaseUser, notification_id: int | None = None) -> int:
    """Mark one of the user's notifications read, or all of them; returns how many changed.

    A conditional UPDATE on the user's unread rows: someone else's id, or one already read
    (another tab got there first), changes nothing.
    """
    unread = Notification.objects.filter(user=user, read_at__isnull=True)
    if notification_id is not None:
        unread = unread.filter(pk=notification_id)
    return unread.update(read_at=timezone.now())


def notifications_create(*, users: list[AbstractBaseUser], kind: str, ticket: Ticket | None, text: str) -> list[Notification]:
    """In-app notifications; each user's open dashboards get a push after commit."""
    created = Notification.objects.bulk_create([Notification(user=u, kind=kind, ticket=ticket, text=text[:300]) for u in users])
    for note in created:
        realtime.push_after_commit(realtime.user_group(note.user_id), {
            "type": "desk.notification", "id": note.pk, "kind": note.kind, "text": note.text,
            "conversation_id": note.ticket_id})
    return created
