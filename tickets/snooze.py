"""Snooze: a conversation leaves the working views until a time, or until the customer writes.

Snooze sits beside the status, not among them: it changes neither the status nor the SLA
clocks. A snoozed conversation whose first-response clock runs out still breaches; snoozing
is the agent's reminder, not a promise to the customer put on hold (the pending status is
what pauses clocks, per policy).

It ends three ways: the customer writes (tickets.services.inbound_message_record wakes it
inside the same transaction), an agent unsnoozes it, or its time comes. Timed snoozes are a
due-time in the database (the partial index ticket_snooze_due), claimed by the periodic
`tickets.snooze_wake` task with a conditional UPDATE, so a repeated or concurrent run wakes
each conversation exactly once. A solve, a close or a merge clears a snooze quietly.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from conversations import realtime
from conversations.services import ApplicationError, system_event_create
from tickets.models import Notification, Ticket
from tickets.notifications import notifications_create

UNTIL_REPLY = "reply"
PRESETS = ("1h", "4h", "tomorrow", "next_week")
MORNING = time(9, 0)
MAX_AHEAD = timedelta(days=366)
SNOOZE_FIELDS = ["snoozed_at", "snoozed_until", "snoozed_by"]
HOW = "1h, 4h, tomorrow, next_week, reply (until the customer replies) or a date and time such as 2030-01-31T09:00+01:00"


def snooze_until_parse(value: str, *, now: datetime | None = None) -> datetime | None:
    """When a snooze asked as `value` ends; None means until the customer replies ("reply").

    Presets: "1h", "4h", "tomorrow" (09:00 the next day) and "next_week" (Monday 09:00), in
    the desk's time zone (settings.TIME_ZONE). Otherwise an ISO 8601 date and time; one
    without an offset is read in the desk's time zone. Raises ApplicationError with the
    reason for anything else, a time already past, or one more than a year ahead.
    """
    value = (value or "").strip()
    now = now or timezone.now()
    if not value:
        raise ApplicationError(f"Say until when: {HOW}.")
    if value == UNTIL_REPLY:
        return None
    local = timezone.localtime(now, timezone.get_default_timezone())
    if value == "1h":
        until = now + timedelta(hours=1)
    elif value == "4h":
        until = now + timedelta(hours=4)
    elif value == "tomorrow":
        until = _morning(local.date() + timedelta(days=1))
    elif value == "next_week":
        until = _morning(local.date() + timedelta(days=7 - local.weekday()))
    else:
        until = _parse_datetime(value)
    if until <= now:
        raise ApplicationError(f"{_when(until)} has already passed: snooze until a time in the future.")
    if until > now + MAX_AHEAD:
        raise ApplicationError("A snooze can last a year at most.")
    return until


def _morning(day: date) -> datetime:
    return datetime.combine(day, MORNING, tzinfo=timezone.get_default_timezone())


def _parse_datetime(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ApplicationError(f"Not a snooze time: {value[:40]!r}. Use {HOW}.") from None
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, timezone.get_default_timezone())
    return parsed


def _when(moment: datetime) -> str:
    """A time as the timeline states it, in the desk's time zone: Mon 3 Jun 2030 09:00 UTC."""
    local = timezone.localtime(moment, timezone.get_default_timezone())
    return f"{local:%a} {local.day} {local:%b %Y %H:%M %Z}"


def _name(user: AbstractBaseUser | None) -> str:
    if user is None:
        return "nobody"
    return user.get_full_name() or user.get_username()


def ticket_snooze(*, ticket: Ticket, until: datetime | None, by: AbstractBaseUser) -> Ticket:
    """Snooze the conversation until `until` (None: until the customer replies). Snoozing a
    snoozed conversation again moves its wake-up. Solved and closed ones cannot be snoozed."""
    now = timezone.now()
    if until is not None and until <= now:
        raise ApplicationError(f"{_when(until)} has already passed: snooze until a time in the future.")
    with transaction.atomic():
        locked = Ticket.objects.select_for_update(of=("self",)).select_related("conversation").get(pk=ticket.pk)
        if not locked.is_open:
            raise ApplicationError(f"A {locked.get_status_display().lower()} conversation cannot be snoozed.")
        locked.snoozed_at, locked.snoozed_until, locked.snoozed_by = now, until, by
        locked.save(update_fields=[*SNOOZE_FIELDS, "updated_at"])
        until_text = f"until {_when(until)}" if until else "until the customer replies"
        system_event_create(conversation=locked.conversation, author=by, text=f"{_name(by)} snoozed the conversation {until_text}.")
        realtime.publish(type="conversation.updated", inbox_id=locked.conversation.inbox_id, conversation_id=locked.pk)
    return locked


def ticket_unsnooze(*, ticket: Ticket, by: AbstractBaseUser) -> Ticket:
    """End a snooze now; a conversation that is not snoozed is left as it is."""
    with transaction.atomic():
        locked = Ticket.objects.select_for_update(of=("self",)).select_related("conversation").get(pk=ticket.pk)
        if not locked.is_snoozed:
            return locked
        snooze_clear(locked)
        locked.save(update_fields=[*SNOOZE_FIELDS, "updated_at"])
        system_event_create(conversation=locked.conversation, author=by, text=f"{_name(by)} unsnoozed the conversation.")
        realtime.publish(type="conversation.updated", inbox_id=locked.conversation.inbox_id, conversation_id=locked.pk)
    return locked


def snooze_clear(ticket: Ticket) -> list[str]:
    """Forget the ticket's snooze in memory; returns the fields for the caller's save()."""
    ticket.snoozed_at = ticket.snoozed_until = ticket.snoozed_by = None
    return list(SNOOZE_FIELDS)


def snooze_wake_on_customer_message(*, ticket: Ticket) -> None:
    """The customer wrote: a snoozed conversation (timed or until reply) is back at once.

    Call with the ticket locked (select_for_update), inside the inbound transaction. The
    assignee hears of it through the new-message notification.
    """
    if not ticket.is_snoozed:
        return
    snooze_clear(ticket)
    ticket.save(update_fields=[*SNOOZE_FIELDS, "updated_at"])
    system_event_create(conversation=ticket.conversation, text="Woken up: the customer replied.")
    realtime.publish(type="conversation.updated", inbox_id=ticket.conversation.inbox_id, conversation_id=ticket.pk)


def snooze_wake_due(*, now: datetime | None = None, limit: int = 500) -> int:
    """Wake every conversation whose snooze time has come; returns how many woke.

    One indexed range read (ticket_snooze_due), then one short transaction per conversation
    so a long backlog never holds locks. Run by beat every SNOOZE_INTERVAL_SECONDS; what is
    left over the limit waits for the next run.
    """
    now = now or timezone.now()
    due = list(Ticket.objects.filter(snoozed_until__lte=now).order_by("snoozed_until", "pk")
               .values_list("pk", "snoozed_until", "snoozed_by_id")[:limit])
    return sum(snooze_wake_one(ticket_id=pk, until=until, snoozed_by_id=by_id, now=now) for pk, until, by_id in due)


def snooze_wake_one(*, ticket_id: int, until: datetime, snoozed_by_id: int | None, now: datetime) -> bool:
    """Wake one conversation whose snooze was read as ending at `until`; False when another
    run woke it first, or the snooze changed meanwhile (re-snoozed, unsnoozed, the customer
    wrote). The conditional UPDATE is the claim: on PostgreSQL a second worker's UPDATE waits
    for the first to commit, then finds the row no longer matching and changes nothing."""
    with transaction.atomic():
        claimed = Ticket.objects.filter(pk=ticket_id, snoozed_until=until).update(
            snoozed_at=None, snoozed_until=None, snoozed_by=None, updated_at=now)
        if not claimed:
            return False
        ticket = Ticket.objects.select_related("conversation", "assignee").get(pk=ticket_id)
        if not ticket.is_open:
            return True  # solved by a path that left the snooze behind: cleared, nothing to say
        system_event_create(conversation=ticket.conversation, text=f"Woken up: the snooze until {_when(until)} ended.")
        # The assignee's reminder; an unassigned conversation reminds whoever snoozed it.
        remind = ticket.assignee or (get_user_model().objects.filter(pk=snoozed_by_id, is_active=True).first()
                                     if snoozed_by_id else None)
        if remind is not None:
            notifications_create(users=[remind], kind=Notification.Kind.SNOOZE, ticket=ticket,
                                 text=f"Snooze ended: #{ticket.pk} {ticket.conversation.subject}")
        realtime.publish(type="conversation.updated", inbox_id=ticket.conversation.inbox_id, conversation_id=ticket.pk)
    return True
