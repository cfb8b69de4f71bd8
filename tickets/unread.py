"""Per-agent read marks: what makes a conversation unread in one agent's list.

A conversation is unread for an agent when its latest activity (conversation.last_message_at:
a customer message or a reply; notes and system lines do not count) is later than the
agent's mark, or when they never opened it. The list computes that inside its own query
(tickets.selectors.ticket_list(with_unread=True)).
"""
from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from tickets.models import Ticket, TicketRead


def ticket_mark_read(*, user: AbstractBaseUser, ticket: Ticket, at: datetime | None = None) -> None:
    """The agent has the conversation on screen: everything up to now is read.

    One upsert (INSERT … ON CONFLICT DO UPDATE on the user+ticket constraint), so two tabs
    opening the same conversation at once never collide on the unique constraint.
    """
    TicketRead.objects.bulk_create(
        [TicketRead(user_id=user.pk, ticket_id=ticket.pk, read_at=at or timezone.now())],
        update_conflicts=True, unique_fields=["user", "ticket"], update_fields=["read_at"],
    )
