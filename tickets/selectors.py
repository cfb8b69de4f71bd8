"""Reads for the dashboard and the API: permission-scoped, with fixed query counts."""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import connection
from django.db.models import BooleanField, Count, Exists, ExpressionWrapper, F, OuterRef, Prefetch, Q, QuerySet, Value
from django.db.models.expressions import RawSQL
from django.http import Http404
from django.utils import timezone

from conversations.models import Conversation, Event, Inbox, Message
from helpdesk.roles import MANAGERS_GROUP, is_manager
from tickets.calendars import WorkingHours, intervals_from_json
from tickets.models import BusinessCalendar, Holiday, Notification, SlaClock, SlaEvent, Tag, Team, Ticket, TicketRead
from tickets.sla import elapsed_at

# The list's views: fixed ones, plus "team:<id>" and "inbox:<id>" (see view_parse).
VIEWS = ("open", "mine", "unassigned", "pending", "snoozed", "at_risk", "solved", "all")
TEAM_VIEW, INBOX_VIEW = "team", "inbox"
# Views whose counts the tabs show: the working sets. "solved" and "all" grow without end
# and counting them would cost a scan of every ticket on each list refresh.
COUNTED_VIEWS = ("open", "mine", "unassigned", "pending", "snoozed", "at_risk")
SORTS = ("activity", "waiting", "sla_due", "created")
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


def view_parse(view: str) -> tuple[str, int | None] | None:
    """("mine", None), ("team", 3) for "team:3", ("inbox", 7) for "inbox:7"; None when not a view."""
    if view in VIEWS:
        return view, None
    kind, sep, ref = view.partition(":")
    if sep and kind in (TEAM_VIEW, INBOX_VIEW) and ref.isdigit() and len(ref) < 19:
        return kind, int(ref)
    return None


def _view_condition(kind: str, ref_id: int | None, *, user: AbstractBaseUser, now: datetime) -> Q:
    """Which tickets a view holds. A snoozed ticket leaves every view but "snoozed" until it
    wakes; the team and inbox views hold their open tickets."""
    awake = Q(snoozed_at__isnull=True)
    working = Q(status__in=Ticket.OPEN_STATUSES) & awake
    if kind == "snoozed":
        return Q(snoozed_at__isnull=False)
    if kind == "mine":
        return working & Q(assignee_id=user.pk)
    if kind == "unassigned":
        return working & Q(assignee__isnull=True)
    if kind == "pending":
        return Q(status=Ticket.Status.PENDING) & awake
    if kind == "at_risk":
        # The deadline arm is a range on the ticket_sla_due index; the state arm catches a
        # warning whose deadline is further out and a breach on a paused clock (no deadline).
        return working & (Q(sla_due_at__lte=now + AT_RISK_WITHIN) | Q(sla_state__in=AT_RISK_STATES))
    if kind == "solved":
        return Q(status__in=(Ticket.Status.SOLVED, Ticket.Status.CLOSED)) & awake
    if kind == "all":
        return awake
    if kind == TEAM_VIEW:
        return working & Q(team_id=ref_id)
    if kind == INBOX_VIEW:
        return working & Q(conversation__inbox_id=ref_id)
    return working  # "open"


NONE = "none"  # the assignee or team filter's value for "nobody"


def ticket_list(*, user: AbstractBaseUser, view: str = "open", status: str = "", inbox_id: int | None = None,
                assignee_id: int | str | None = None, channel: str = "", sort: str = "activity",
                now: datetime | None = None, priority: str = "", tags: Collection[str] = (),
                team_id: int | str | None = None, created_after: date | None = None, created_before: date | None = None,
                ticket_ids: Collection[int] | None = None, with_unread: bool = False) -> QuerySet[Ticket]:
    """The agent's inbox list: one view (see _view_condition) narrowed by the filters, in the
    sort's order. One query per page plus one for tags.

    assignee_id / team_id take an id or NONE. tags: tickets with any of these tags.
    created_after / created_before: days in the desk's time zone, both included.
    ticket_ids: search results (tickets.search); they replace the view (a search looks in
    every status, snoozed tickets included) while the filters still apply.
    with_unread: annotate `unread` for this agent (activity after their read mark, or never
    read) inside the same query.

    The SLA columns are the ticket's own (sla_state, sla_due_at, kept by the SLA services):
    no view or sort here reads a clock.
    """
    now = now or timezone.now()
    qs = tickets_for_agent(user)
    parsed = view_parse(view) or ("open", None)
    if ticket_ids is not None:
        qs = qs.filter(pk__in=list(ticket_ids))
    else:
        qs = qs.filter(_view_condition(*parsed, user=user, now=now))
        if parsed[0] == "at_risk":
            sort = "sla_due"
    qs = qs.filter(_filter_condition(status=status, inbox_id=inbox_id, assignee_id=assignee_id, channel=channel,
                                     priority=priority, tags=tags, team_id=team_id, created_after=created_after,
                                     created_before=created_before))
    if with_unread:
        qs = qs.annotate(unread=ExpressionWrapper(_unread_condition(user), output_field=BooleanField()))
    return (
        qs.select_related("conversation__contact", "conversation__inbox", "assignee", "team")
        .prefetch_related(Prefetch("tags", queryset=Tag.objects.order_by("name")))
        .order_by(*_ordering(sort))
    )


def _filter_condition(*, status: str, inbox_id: int | None, assignee_id: int | str | None, channel: str, priority: str,
                      tags: Collection[str], team_id: int | str | None, created_after: date | None,
                      created_before: date | None) -> Q:
    condition = Q()
    if status:
        condition &= Q(status=status)
    if inbox_id:
        condition &= Q(conversation__inbox_id=inbox_id)
    if assignee_id == NONE:
        condition &= Q(assignee__isnull=True)
    elif assignee_id:
        condition &= Q(assignee_id=assignee_id)
    if team_id == NONE:
        condition &= Q(team__isnull=True)
    elif team_id:
        condition &= Q(team_id=team_id)
    if channel:
        condition &= Q(conversation__last_message_channel=channel)
    if priority:
        condition &= Q(priority=priority)
    if tags:
        # A semi-join: a ticket with two of the tags is still one row.
        tagged = Ticket.tags.through.objects.filter(ticket_id=OuterRef("pk"), tag__name__in=list(tags))
        condition &= Q(Exists(tagged))
    if created_after:
        condition &= Q(conversation__created_at__gte=_day_start(created_after))
    if created_before:
        condition &= Q(conversation__created_at__lt=_day_start(created_before + timedelta(days=1)))
    return condition


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_default_timezone())


def _unread_condition(user: AbstractBaseUser) -> Q:
    """Activity (a customer message or a reply) after the agent's read mark, or never read."""
    read = TicketRead.objects.filter(user_id=user.pk, ticket_id=OuterRef("pk"),
                                     read_at__gte=OuterRef("conversation__last_message_at"))
    return Q(conversation__last_message_at__isnull=False) & ~Exists(read)


def conversation_id_column() -> RawSQL:
    """The joined conversation's own id column, for tie-breaks in an order that an index of
    the conversation table serves. The ORM writes "conversation__id" as the ticket's column
    (the same value), and SQLite's planner then cannot walk the index (last_message_at, id):
    it reads and sorts every ticket of the agent's inboxes instead of stopping after a page."""
    qn = connection.ops.quote_name
    return RawSQL(f"{qn(Conversation._meta.db_table)}.{qn('id')}", ())


def _ordering(sort: str) -> tuple:
    newest_id = conversation_id_column().desc()
    if sort == "sla_due":
        # Overdue first, then the nearest deadline; tickets without a running clock last.
        return F("sla_due_at").asc(nulls_last=True), "conversation_id"
    if sort == "waiting":
        # The longest-waiting customer first; conversations nobody waits on last, newest first.
        return (F("conversation__waiting_since").asc(nulls_last=True), F("conversation__last_message_at").desc(nulls_last=True),
                newest_id)
    if sort == "created":
        return "-conversation__created_at", newest_id
    return "-conversation__last_message_at", newest_id


def view_counts(*, user: AbstractBaseUser, team_ids: Collection[int] = (), inbox_ids: Collection[int] = (),
                now: datetime | None = None) -> dict[str, int]:
    """How many tickets each counted view holds (COUNTED_VIEWS, plus "team:<id>" and
    "inbox:<id>" for the ids given), in one query: conditional counts over the agent's open
    tickets (the status index), never one query per tab. Snoozed tickets are open ones: only
    those can be snoozed, and solving one ends its snooze."""
    now = now or timezone.now()
    keys: dict[str, str] = {}  # aggregate alias -> view
    aggregates = {}
    views = [(kind, None) for kind in COUNTED_VIEWS]
    views += [(TEAM_VIEW, ref) for ref in team_ids] + [(INBOX_VIEW, ref) for ref in inbox_ids]
    for kind, ref in views:
        alias = kind if ref is None else f"{kind}_{ref}"
        keys[alias] = kind if ref is None else f"{kind}:{ref}"
        aggregates[alias] = Count("pk", filter=_view_condition(kind, ref, user=user, now=now))
    counted = tickets_for_agent(user).filter(status__in=Ticket.OPEN_STATUSES).aggregate(**aggregates)
    return {view: counted[alias] or 0 for alias, view in keys.items()}


@dataclass(frozen=True)
class ListTab:
    kind: str  # TEAM_VIEW or INBOX_VIEW
    ref: int  # the team's or inbox's id
    label: str

    @property
    def view(self) -> str:
        return f"{self.kind}:{self.ref}"  # "team:3", "inbox:7"


def list_tabs(*, user: AbstractBaseUser) -> tuple[list[ListTab], list[ListTab]]:
    """The agent's own teams and inboxes as list views, by name: (teams, inboxes). One query.

    An agent's inboxes are also the ones they may see: the ids are kept for
    inbox_ids_for_agent, which then asks nothing more in this request.
    """
    inboxes = Inbox.objects.filter(members=user).annotate(kind_of=Value(INBOX_VIEW)).values_list("kind_of", "id", "name")
    teams = Team.objects.filter(members=user).annotate(kind_of=Value(TEAM_VIEW)).values_list("kind_of", "id", "name")
    rows = sorted(inboxes.union(teams, all=True), key=lambda row: (row[2].lower(), row[1]))
    if not is_manager(user):
        user._inbox_ids = sorted(ref for kind, ref, _name in rows if kind == INBOX_VIEW)
    tabs = [ListTab(kind, ref, name) for kind, ref, name in rows]
    return [t for t in tabs if t.kind == TEAM_VIEW], [t for t in tabs if t.kind == INBOX_VIEW]


def agents_for_user(*, user: AbstractBaseUser) -> list[AbstractBaseUser]:
    """Who the agent may hand conversations to: the members of the inboxes they see."""
    inbox_ids = inbox_ids_for_agent(user)
    members = Inbox.members.through.objects.filter(user_id=OuterRef("pk"))
    if inbox_ids is not None:
        members = members.filter(inbox_id__in=inbox_ids)
    return list(get_user_model().objects.filter(Exists(members), is_active=True).order_by("first_name", "last_name", "username"))


def inboxes_for_user(*, user: AbstractBaseUser) -> list[Inbox]:
    """The inboxes the agent sees (every inbox for managers), by name."""
    inbox_ids = inbox_ids_for_agent(user)
    qs = Inbox.objects.all() if inbox_ids is None else Inbox.objects.filter(pk__in=inbox_ids)
    return list(qs.order_by("name", "id"))


def teams_all() -> list[Team]:
    return list(Team.objects.order_by("name"))


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


CONFLICTS_SHOWN = 20


def messages_since_conflicting(*, conversation_id: int, after_id: int, user: AbstractBaseUser) -> list[Message]:
    """What arrived while the agent was writing that could change their reply: customer
    messages, and replies by anyone else (not automated ones), newer than the message they
    last saw (ids grow with time). Newest first, at most CONFLICTS_SHOWN. One query."""
    by_someone_else = Q(kind=Message.Kind.OUTBOUND, author_user__isnull=False) & ~Q(author_user_id=user.pk)
    return list(
        Message.objects.filter(Q(kind=Message.Kind.INBOUND) | by_someone_else, conversation_id=conversation_id, id__gt=after_id)
        .select_related("author_user", "author_contact")
        .order_by("-id")[:CONFLICTS_SHOWN]
    )


def collision_report(*, messages: list[Message]) -> dict:
    """The 409 answer of a reply or note held back by messages_since_conflicting: why, and
    what arrived (newest first)."""
    customer = sum(1 for m in messages if m.kind == Message.Kind.INBOUND)
    agents = list(dict.fromkeys(_author_name(m) for m in messages if m.kind == Message.Kind.OUTBOUND))
    news = ([f"the customer wrote {customer} new message{'s' if customer > 1 else ''}"] if customer else [])
    news += [f"{', '.join(agents)} replied"] if agents else []
    return {
        "error": f"Since you started writing, {' and '.join(news)}. Review them, or send anyway.",
        "conflict": [{"id": m.pk, "kind": m.kind, "author": _author_name(m),
                      "preview": " ".join((m.text_display or m.text).split())[:200], "created_at": m.created_at.isoformat()}
                     for m in messages],
    }


def _author_name(message: Message) -> str:
    if message.author_user_id is not None:
        return message.author_user.get_full_name() or message.author_user.get_username()
    if message.author_contact_id is not None:
        return message.author_contact.display_name
    return "Someone"


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
