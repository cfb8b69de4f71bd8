"""Reads for the dashboard and the API: permission-scoped, with fixed query counts."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db.models import Exists, F, OuterRef, Prefetch, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from conversations.models import Event, Inbox, Message
from helpdesk.roles import MANAGERS_GROUP, is_manager
from tickets.calendars import WorkingHours, intervals_from_json
from tickets.models import BusinessCalendar, Holiday, Notification, SlaClock, SlaEvent, Tag, Ticket
from tickets.sla import elapsed_at

VIEWS = ("open", "mine", "unassigned", "pending", "at_risk", "solved", "all")
SORTS = ("activity", "sla_due")
# "SLA at risk": a warning or breach already recorded, or a deadline this close.
AT_RISK_WITHIN = timedelta(hours=1)
AT_RISK_STATES = ("warning", "breached")
# Reverse one-to-one accessors of channels_in's per-kind configs, named without importing it.
INBOX_CHANNEL_CONFIGS = tuple(f"conversation__inbox__{name}" for name in ("email_channel", "sms_channel", "webchat_channel"))


def inbox_ids_for_agent(user: AbstractBaseUser) -> list[int] | None:
    """The inboxes an agent works; None means every inbox (managers)."""
    if is_manager(user):
        return None
    cached = getattr(user, "_inbox_ids", None)
    if cached is None:
        cached = list(Inbox.objects.filter(members=user).values_list("id", flat=True))
        user._inbox_ids = cached
    return cached


def tickets_for_agent(user: AbstractBaseUser) -> QuerySet[Ticket]:
    qs = Ticket.objects.all()
    inbox_ids = inbox_ids_for_agent(user)
    if inbox_ids is not None:
        qs = qs.filter(conversation__inbox_id__in=inbox_ids)
    return qs


def ticket_list(*, user: AbstractBaseUser, view: str = "open", status: str = "", inbox_id: int | None = None,
                assignee_id: int | None = None, channel: str = "", sort: str = "activity",
                now: datetime | None = None) -> QuerySet[Ticket]:
    """The agent's inbox list, newest activity first (or nearest SLA deadline first with
    sort="sla_due", and always in the at-risk view). One query per page plus one for tags.

    The SLA columns are the ticket's own (sla_state, sla_due_at, kept by the SLA services):
    no view or sort here reads a clock.
    """
    qs = tickets_for_agent(user)
    if view == "at_risk":
        soon = (now or timezone.now()) + AT_RISK_WITHIN
        # The deadline arm is a range on the ticket_sla_due index; the state arm catches a
        # warning whose deadline is further out and a breach on a paused clock (no deadline).
        qs = qs.filter(Q(sla_due_at__lte=soon) | Q(sla_state__in=AT_RISK_STATES), status__in=Ticket.OPEN_STATUSES)
        sort = "sla_due"
    elif view == "open":
        qs = qs.filter(status__in=Ticket.OPEN_STATUSES)
    elif view == "mine":
        qs = qs.filter(status__in=Ticket.OPEN_STATUSES, assignee=user)
    elif view == "unassigned":
        qs = qs.filter(status__in=Ticket.OPEN_STATUSES, assignee__isnull=True)
    elif view == "pending":
        qs = qs.filter(status=Ticket.Status.PENDING)
    elif view == "solved":
        qs = qs.filter(status__in=(Ticket.Status.SOLVED, Ticket.Status.CLOSED))
    if status:
        qs = qs.filter(status=status)
    if inbox_id:
        qs = qs.filter(conversation__inbox_id=inbox_id)
    if assignee_id:
        qs = qs.filter(assignee_id=assignee_id)
    if channel:
        qs = qs.filter(conversation__last_message_channel=channel)
    if sort == "sla_due":
        # Overdue first, then the nearest deadline; tickets without a running clock last.
        ordering = (F("sla_due_at").asc(nulls_last=True), "conversation_id")
    else:
        ordering = ("-conversation__last_message_at", "-conversation_id")
    return (
        qs.select_related("conversation__contact", "conversation__inbox", "assignee", "team")
        .prefetch_related(Prefetch("tags", queryset=Tag.objects.order_by("name")))
        .order_by(*ordering)
    )


def ticket_get_for_agent(*, user: AbstractBaseUser, ticket_id: int) -> Ticket:
    """The ticket, or 404 when it does not exist or lies in an inbox the agent is not in.

    The inbox's channel configs come along (outer joins, no extra query): the reply channels
    and the header need them, and conversations must not import channels_in to ask.
    """
    qs = tickets_for_agent(user).select_related("conversation__contact", "assignee", "team", *INBOX_CHANNEL_CONFIGS)
    try:
        return qs.get(pk=ticket_id)
    except Ticket.DoesNotExist:
        raise Http404("No such conversation.") from None


def timeline(*, conversation_id: int) -> QuerySet[Message]:
    """Every message of a conversation in order, with authors and attachments: two queries."""
    return (
        Message.objects.filter(conversation_id=conversation_id)
        .select_related("author_user", "author_contact")
        .prefetch_related("attachments")
        .order_by("created_at", "id")
    )


def events_after(*, user: AbstractBaseUser, after: int, limit: int = 500) -> QuerySet[Event]:
    """Realtime events the agent may see with a sequence above `after` (catch-up)."""
    qs = Event.objects.filter(id__gt=after)
    inbox_ids = inbox_ids_for_agent(user)
    if inbox_ids is not None:
        qs = qs.filter(inbox_id__in=inbox_ids)
    return qs.order_by("id")[:limit]


# --- Read helpers for the REST API (tickets/apis.py) ---------------------------------------


def message_get_for_agent(*, user: AbstractBaseUser, message_id: int) -> Message:
    """A message, or 404 when it does not exist or its conversation lies outside the agent's inboxes."""
    qs = Message.objects.select_related("conversation", "author_user", "author_contact")
    inbox_ids = inbox_ids_for_agent(user)
    if inbox_ids is not None:
        qs = qs.filter(conversation__inbox_id__in=inbox_ids)
    try:
        return qs.get(pk=message_id)
    except Message.DoesNotExist:
        raise Http404("No such message.") from None


def assignee_get_for_ticket(*, ticket: Ticket, user_id: int) -> AbstractBaseUser | None:
    """The active user with this id if they may own the ticket (member of its inbox, or a
    manager); None otherwise. One query."""
    member = Inbox.members.through.objects.filter(user_id=OuterRef("pk"), inbox_id=ticket.conversation.inbox_id)
    manager = Group.objects.filter(user=OuterRef("pk"), name=MANAGERS_GROUP)
    return (
        get_user_model().objects.filter(pk=user_id, is_active=True)
        .filter(Q(is_superuser=True) | Exists(manager) | Exists(member))
        .first()
    )


def ticket_list_for_contact(*, user: AbstractBaseUser, contact_id: int, limit: int = 100) -> list[Ticket]:
    """A contact's conversations the agent may see, newest activity first (capped: a noisy
    auto-mailer can have thousands)."""
    return list(
        tickets_for_agent(user).filter(conversation__contact_id=contact_id)
        .select_related("conversation__inbox")
        .order_by(F("conversation__last_message_at").desc(nulls_last=True), "-conversation_id")[:limit]
    )


# --- SLA: a ticket's clocks and why they read what they read ------------------------------


@dataclass(frozen=True)
class ClockReading:
    """One SLA clock as the agent sees it now: the stored clock with its figures worked out."""

    clock: SlaClock
    used: timedelta  # counted time (business time on a business clock)
    left: timedelta  # target minus used; negative once the target has passed
    events: list[SlaEvent]

    @property
    def breached(self) -> bool:
        return self.clock.breached_at is not None or self.left < timedelta(0)


def sla_clocks_for_ticket(*, ticket: Ticket, now: datetime | None = None) -> list[ClockReading]:
    """Every SLA clock of the ticket (running or done), oldest first, each with its event log.

    Two queries: the clocks (with their calendars joined), their events (prefetch); a third
    for the calendars' holidays only when a clock counts business time.
    """
    now = now or timezone.now()
    clocks = list(
        SlaClock.objects.filter(ticket_id=ticket.pk)
        .select_related("calendar")
        .prefetch_related(
            Prefetch("events", queryset=SlaEvent.objects.order_by("at", "id")),
            Prefetch("calendar__holidays", queryset=Holiday.objects.only("id", "calendar_id", "date")),
        )
        .order_by("started_at", "id")
    )
    hours: dict[int, WorkingHours] = {}
    readings = []
    for clock in clocks:
        calendar_hours = None
        if clock.business_hours and clock.calendar is not None:
            calendar_hours = hours.setdefault(clock.calendar_id, _working_hours(clock.calendar))
        used = elapsed_at(clock, now, calendar_hours)
        readings.append(ClockReading(clock=clock, used=used, left=timedelta(seconds=clock.target_seconds) - used,
                                     events=list(clock.events.all())))
    return readings


def _working_hours(calendar: BusinessCalendar) -> WorkingHours:
    # tickets.calendars.working_hours reads the holidays again; these came with the prefetch.
    return WorkingHours(time_zone=calendar.time_zone, intervals=intervals_from_json(calendar.intervals),
                        holidays=frozenset(holiday.date for holiday in calendar.holidays.all()))


# --- Notifications ------------------------------------------------------------------------

NOTIFICATIONS_SHOWN = 20


def notifications_for_user(*, user: AbstractBaseUser, limit: int = NOTIFICATIONS_SHOWN) -> list[Notification]:
    """The user's latest notifications, newest first (the notification_user index)."""
    return list(Notification.objects.filter(user=user).order_by("-id")[:limit])


def notifications_unread_count(*, user: AbstractBaseUser) -> int:
    return Notification.objects.filter(user=user, read_at__isnull=True).count()
