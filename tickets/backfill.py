"""Rebuild SLA clocks and report facts from timelines that are already there: history
imported from another desk, or conversations older than the first SLA policy.

Replay walks each ticket's customer messages and agent replies in time order through the
same SLA services as live traffic, with their own times, then applies the ticket's current
status at its solve (or last update) time. The timeline does not record past status changes
as data, so pauses and reopenings before the current status are not replayed; CSAT answers
are kept. Run it explicitly (`manage.py sla_backfill`): it replaces the ticket's clocks and
facts, so it is never part of normal operation.
"""
from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from conversations.models import Message
from tickets import sla
from tickets.models import ReportFact, Ticket


def ticket_history_replay(*, ticket_id: int, now: datetime | None = None) -> None:
    now = now or timezone.now()
    with transaction.atomic():
        ticket = Ticket.objects.select_for_update(of=("self",)).select_related("conversation", "assignee").get(pk=ticket_id)
        ReportFact.objects.filter(ticket=ticket).exclude(kind=ReportFact.Kind.CSAT).delete()
        ticket.sla_clocks.all().delete()
        final = ticket.status
        ticket.status = Ticket.Status.OPEN  # the clocks run from the start; the final status comes last
        sla.sla_ticket_created(ticket=ticket, now=ticket.created_at)
        messages = (ticket.conversation.messages.filter(kind__in=[Message.Kind.INBOUND, Message.Kind.OUTBOUND])
                    .select_related("author_user").order_by("created_at", "id"))
        waiting_since, first = None, True
        for message in messages:
            if message.kind == Message.Kind.INBOUND:
                if not first:
                    sla.sla_customer_wrote(ticket=ticket, message=message, now=message.created_at)
                waiting_since = waiting_since or message.created_at
            elif message.author_user_id is not None:
                sla.sla_agent_replied(ticket=ticket, message=message, waiting_since=waiting_since, now=message.created_at)
                waiting_since = None
            first = False
        if final != Ticket.Status.OPEN:
            ticket.status = final
            when = min(ticket.solved_at or ticket.updated_at, now)
            sla.sla_status_changed(ticket=ticket, previous=Ticket.Status.OPEN, by=ticket.assignee, now=when,
                                   reason=f"{ticket.get_status_display()} when the history was replayed")
        sla.ticket_sla_refresh(ticket=ticket, now=now)
        Ticket.objects.filter(pk=ticket.pk).update(status=final)


def sla_backfill(*, ticket_ids: list[int] | None = None, now: datetime | None = None) -> int:
    """Replay the given tickets (all when None), then let the sweep record what is overdue."""
    now = now or timezone.now()
    ids = ticket_ids if ticket_ids is not None else list(Ticket.objects.order_by("pk").values_list("pk", flat=True))
    for ticket_id in ids:
        ticket_history_replay(ticket_id=ticket_id, now=now)
    sla.sla_sweep(now=now)
    return len(ids)
