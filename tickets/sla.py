"""SLA clocks: which promise applies, how long each has run, and when it warns or breaches.

Semantics follow Zendesk's (PEERS.md §2.1), with our defaults from §2.4:
- first response: from the ticket's creation to the first public agent reply;
- next response: from the oldest unanswered customer message (after the first response) to
  the next public agent reply; a new one starts with the next unanswered message;
- periodic update: from a public agent reply to the next one;
- resolution: from creation to solved; a reopened ticket resumes it.
A policy's `pause_statuses` pause the listed metrics; solved and closed stop every clock.

A clock counts time per running segment (business time on its calendar, or real time) and
stores when it will warn and breach. The periodic sweep (`sla_sweep`) finds clocks through the
indexed `next_check_at`, locks each one's ticket, and records the warning and the breach
exactly once (the lock, a re-check and a unique constraint on the event). No ETA tasks: with
Redis they run more than once (RELIABILITY.md §4).

Every function here runs inside the caller's transaction with the ticket row locked.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from conversations import realtime
from conversations.models import Message
from conversations.services import system_event_create
from helpdesk.roles import MANAGERS_GROUP
from tickets.calendars import WorkingHours, business_deadline, business_seconds, working_hours
from tickets.models import (
    BusinessCalendar,
    InboxCalendar,
    Notification,
    ReportFact,
    SlaClock,
    SlaEscalation,
    SlaEvent,
    SlaMetric,
    SlaPolicy,
    Ticket,
)
from tickets.notifications import notifications_create

State = SlaClock.State
RUNNING = (State.ACTIVE, State.PAUSED)
DONE_STATUSES = (Ticket.Status.SOLVED, Ticket.Status.CLOSED)
PRIORITY_UP = {"low": "normal", "normal": "high", "high": "urgent"}
ZERO = timedelta(0)


@dataclass(frozen=True)
class Target:
    """A policy's promise for one metric at the ticket's priority, as copied onto a clock."""

    policy: SlaPolicy
    metric: str
    seconds: int
    business_hours: bool
    calendar_id: int | None

    @property
    def warn_seconds(self) -> int:
        return self.seconds * min(max(self.policy.warn_at_percent, 1), 99) // 100

    @property
    def pause_statuses(self) -> list[str]:
        return list((self.policy.pause_statuses or {}).get(self.metric, []))

    def differs_from(self, clock: SlaClock) -> bool:
        return (clock.policy_id, clock.target_seconds, clock.business_hours, clock.calendar_id) != (
            self.policy.pk, self.seconds, self.business_hours, self.calendar_id)


# --- which policy ---------------------------------------------------------------------------

def policy_match(*, ticket: Ticket) -> SlaPolicy | None:
    """The first active policy (by position) whose conditions all hold for the ticket."""
    tag_ids: set[int] | None = None  # read only if a policy asks: most have no tag condition
    policies = SlaPolicy.objects.filter(active=True).prefetch_related("inboxes", "tags", "targets")
    for policy in policies:
        inbox_ids = {inbox.pk for inbox in policy.inboxes.all()}
        if inbox_ids and ticket.conversation.inbox_id not in inbox_ids:
            continue
        if policy.channels and ticket.channel not in policy.channels:
            continue
        if policy.priorities and ticket.priority not in policy.priorities:
            continue
        policy_tags = {tag.pk for tag in policy.tags.all()}
        if policy_tags:
            if tag_ids is None:
                tag_ids = set(ticket.tags.values_list("id", flat=True))
            if not policy_tags & tag_ids:
                continue
        return policy
    return None


# What a ticket's matching costs is paid once per ticket instance (a hook may need the
# targets, then the report calendar); sla_ticket_changed forgets it when the match may change.
_CACHED = ("_sla_policy", "_sla_calendar_id", "_sla_targets", "_sla_report_hours")


def _cached(ticket: Ticket, name: str, compute: Callable[[], object]) -> object:
    if name not in ticket.__dict__:
        ticket.__dict__[name] = compute()
    return ticket.__dict__[name]


def _forget(ticket: Ticket) -> None:
    for name in _CACHED:
        ticket.__dict__.pop(name, None)


def _policy(ticket: Ticket) -> SlaPolicy | None:
    return _cached(ticket, "_sla_policy", lambda: policy_match(ticket=ticket))


def _calendar_id(ticket: Ticket) -> int | None:
    """The calendar a ticket's business time runs on: its policy's, else its inbox's."""
    def compute() -> int | None:
        policy = _policy(ticket)
        if policy is not None and policy.calendar_id is not None:
            return policy.calendar_id
        return InboxCalendar.objects.filter(inbox_id=ticket.conversation.inbox_id).values_list(
            "calendar_id", flat=True).first()
    return _cached(ticket, "_sla_calendar_id", compute)


def _targets(ticket: Ticket) -> dict[str, Target]:
    """The matched policy's targets at the ticket's priority, by metric."""
    def compute() -> dict[str, Target]:
        policy = _policy(ticket)
        if policy is None:
            return {}
        return {
            t.metric: Target(policy=policy, metric=t.metric, seconds=t.minutes * 60, business_hours=t.business_hours,
                             calendar_id=_calendar_id(ticket) if t.business_hours else None)
            for t in policy.targets.all() if t.priority == ticket.priority
        }
    return _cached(ticket, "_sla_targets", compute)


def report_hours(*, ticket: Ticket) -> WorkingHours | None:
    """The calendar a ticket's business-time figures use: its policy's, else its inbox's."""
    return _cached(ticket, "_sla_report_hours", lambda: _hours_for(_calendar_id(ticket)))


def _hours_for(calendar_id: int | None) -> WorkingHours | None:
    if calendar_id is None:
        return None
    calendar = BusinessCalendar.objects.filter(pk=calendar_id).first()
    return working_hours(calendar) if calendar else None


def _clock_hours(clock: SlaClock, cache: dict | None = None) -> WorkingHours | None:
    if not clock.business_hours or clock.calendar_id is None:
        return None
    cache = cache if cache is not None else {}
    if clock.calendar_id not in cache:
        cache[clock.calendar_id] = _hours_for(clock.calendar_id)
    return cache[clock.calendar_id]


# --- clock arithmetic -----------------------------------------------------------------------

def counted(hours: WorkingHours | None, start: datetime, end: datetime) -> timedelta:
    if end <= start:
        return ZERO
    return timedelta(seconds=business_seconds(hours, start, end)) if hours is not None else end - start


def _point(hours: WorkingHours | None, start: datetime, seconds: float) -> datetime | None:
    if hours is None:
        return start + timedelta(seconds=seconds)
    return business_deadline(hours, start, seconds)


def elapsed_at(clock: SlaClock, now: datetime, hours: WorkingHours | None) -> timedelta:
    if clock.state == State.ACTIVE and clock.running_since is not None:
        return clock.elapsed + counted(hours, clock.running_since, now)
    return clock.elapsed


def _schedule(clock: SlaClock, hours: WorkingHours | None, now: datetime) -> None:
    """Set warn_at, deadline and next_check_at from the clock's state and elapsed time."""
    if clock.state != State.ACTIVE:
        clock.warn_at = clock.deadline = clock.next_check_at = None
        return
    since = clock.running_since
    used = clock.elapsed.total_seconds()
    left = clock.target_seconds - used
    clock.deadline = _point(hours, since, left) if left > 0 else min(clock.deadline or now, now)
    warn_left = clock.warn_seconds - used
    clock.warn_at = _point(hours, since, warn_left) if warn_left > 0 else min(clock.warn_at or now, now)
    due = []
    if clock.warned_at is None and clock.breached_at is None and clock.warn_at is not None:
        due.append(clock.warn_at)
    if clock.breached_at is None and clock.deadline is not None:
        due.append(clock.deadline)
    clock.next_check_at = min(due) if due else None


def _log(clock: SlaClock, kind: str, *, at: datetime, reason: str, hours: WorkingHours | None) -> SlaEvent:
    return SlaEvent.objects.create(clock=clock, kind=kind, at=at, elapsed=elapsed_at(clock, at, hours), reason=reason[:300])


def _minutes(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


# --- clock transitions ----------------------------------------------------------------------

def clock_start(*, ticket: Ticket, target: Target, at: datetime, now: datetime, reason: str,
                message: Message | None = None) -> SlaClock:
    return clocks_start(ticket=ticket, targets=[target], at=at, now=now, reason=reason, message=message)[0]


def clocks_start(*, ticket: Ticket, targets: list[Target], at: datetime, now: datetime, reason: str,
                 message: Message | None = None) -> list[SlaClock]:
    """Start a clock per target, written together: one insert for the clocks, one for their
    start events."""
    clocks, hours = [], []
    for target in targets:
        paused = ticket.status in target.pause_statuses
        clock = SlaClock(
            ticket=ticket, metric=target.metric, policy=target.policy, policy_name=target.policy.name,
            target_seconds=target.seconds, warn_seconds=target.warn_seconds, business_hours=target.business_hours,
            calendar_id=target.calendar_id, pause_statuses=target.pause_statuses, started_at=at, message=message,
            elapsed=ZERO, running_since=None if paused else at, state=State.PAUSED if paused else State.ACTIVE,
        )
        hours.append(_clock_hours(clock))
        # Started in the past (a target applied later, a replayed history) it may be due
        # already: its deadline is still the moment the target passed, not now.
        _schedule(clock, hours[-1], now)
        clocks.append(clock)
    if not clocks:
        return []
    SlaClock.objects.bulk_create(clocks)
    SlaEvent.objects.bulk_create([
        SlaEvent(clock=clock, kind=SlaEvent.Kind.START, at=at, elapsed=ZERO,
                 reason=f"{reason}; target {_minutes(clock.target_seconds)} "
                        f"({'business' if clock.business_hours else 'calendar'} time, {clock.policy_name})")
        for clock in clocks
    ])
    for clock, clock_hours in zip(clocks, hours, strict=True):
        if clock.state == State.PAUSED:
            _log(clock, SlaEvent.Kind.PAUSE, at=at, reason=f"the ticket is {ticket.get_status_display()}", hours=clock_hours)
    return clocks


def _clock_pause(clock: SlaClock, *, now: datetime, reason: str) -> None:
    hours = _clock_hours(clock)
    clock.elapsed = elapsed_at(clock, now, hours)
    clock.state, clock.running_since = State.PAUSED, None
    _schedule(clock, hours, now)
    clock.save()
    _log(clock, SlaEvent.Kind.PAUSE, at=now, reason=reason, hours=hours)


def _clock_resume(clock: SlaClock, *, now: datetime, reason: str) -> None:
    hours = _clock_hours(clock)
    clock.state, clock.running_since, clock.ended_at = State.ACTIVE, now, None
    _schedule(clock, hours, now)
    clock.save()
    _log(clock, SlaEvent.Kind.RESUME, at=now, reason=reason, hours=hours)


def _clock_end(clock: SlaClock, *, state: str, now: datetime, reason: str, ticket: Ticket) -> None:
    """Fulfil or stop. A target passed before the sweep noticed still counts as a breach."""
    hours = _clock_hours(clock)
    clock.elapsed = elapsed_at(clock, now, hours)
    if clock.breached_at is None and clock.elapsed.total_seconds() > clock.target_seconds:
        _breach_record(clock, ticket=ticket, now=now, hours=hours,
                       reason=f"the target of {_minutes(clock.target_seconds)} passed before this")
    clock.state, clock.running_since, clock.ended_at = state, None, now
    _schedule(clock, hours, now)
    clock.save()
    kind = SlaEvent.Kind.FULFIL if state == State.FULFILLED else SlaEvent.Kind.STOP
    _log(clock, kind, at=now, reason=reason, hours=hours)
    if state == State.FULFILLED and clock.breached_at is None:
        _fact_write(kind=ReportFact.Kind.SLA, ticket=ticket, at=now, metric=clock.metric, clock=clock, breached=False)


def _clock_retarget(clock: SlaClock, *, target: Target, now: datetime, reason: str) -> None:
    old = _minutes(clock.target_seconds)
    hours = _clock_hours(clock)
    clock.elapsed = elapsed_at(clock, now, hours)
    if clock.state == State.ACTIVE:
        clock.running_since = now
    clock.policy, clock.policy_name = target.policy, target.policy.name
    clock.target_seconds, clock.warn_seconds = target.seconds, target.warn_seconds
    clock.business_hours, clock.calendar_id = target.business_hours, target.calendar_id
    clock.pause_statuses = target.pause_statuses
    hours = _clock_hours(clock)
    _schedule(clock, hours, now)
    clock.save()
    _log(clock, SlaEvent.Kind.RETARGET, at=now, hours=hours,
         reason=f"{reason}: target {old} → {_minutes(clock.target_seconds)} ({clock.policy_name})")


def _breach_record(clock: SlaClock, *, ticket: Ticket, now: datetime, hours: WorkingHours | None, reason: str) -> bool:
    """Record the breach once; False when it was already recorded (by a concurrent sweep)."""
    try:
        with transaction.atomic():
            _log(clock, SlaEvent.Kind.BREACH, at=now, reason=reason, hours=hours)
    except IntegrityError:
        clock.breached_at = clock.breached_at or now  # recorded already: never due for it again
        return False
    clock.breached_at = now
    _fact_write(kind=ReportFact.Kind.SLA, ticket=ticket, at=clock.deadline or now, metric=clock.metric, clock=clock,
                breached=True)
    return True


# --- reactions to what happens on a ticket ---------------------------------------------------

def sla_ticket_created(*, ticket: Ticket, now: datetime | None = None) -> None:
    """A new ticket (its first customer message): start first response and resolution."""
    now = now or timezone.now()
    _fact_write(kind=ReportFact.Kind.CREATED, ticket=ticket, at=ticket.created_at)
    targets = [t for t in (_targets(ticket).get(m) for m in (SlaMetric.FIRST_RESPONSE, SlaMetric.RESOLUTION)) if t is not None]
    clocks = clocks_start(ticket=ticket, targets=targets, at=ticket.created_at, now=now, reason="the conversation was created")
    # A new ticket has no clocks but these: its badge comes from them, with no read back.
    _ticket_sla_set(ticket, [{"state": c.state, "deadline": c.deadline, "warned_at": c.warned_at, "breached_at": c.breached_at}
                             for c in clocks])


def sla_customer_wrote(*, ticket: Ticket, message: Message, now: datetime | None = None) -> None:
    """A customer message on an open ticket: after the first response it starts a next-response
    clock, unless one is already running for an older unanswered message."""
    now = now or timezone.now()
    if ticket.status in DONE_STATUSES:
        return
    answered = ReportFact.objects.filter(ticket=ticket, kind=ReportFact.Kind.FIRST_RESPONSE).exists()
    # Before any reply the first response is what the customer waits for: its clock covers
    # the message, or starts again if it was stopped (solved without a reply, then reopened).
    metric = SlaMetric.NEXT_RESPONSE if answered else SlaMetric.FIRST_RESPONSE
    if ticket.sla_clocks.filter(metric=metric, state__in=RUNNING).exists():
        return
    target = _targets(ticket).get(metric)
    if target is not None:
        why = "the customer wrote and is waiting for an answer" if answered else "the customer wrote again before any reply"
        clock_start(ticket=ticket, target=target, at=message.created_at, now=now, message=message, reason=why)
    ticket_sla_refresh(ticket=ticket, now=now)


def sla_agent_replied(*, ticket: Ticket, message: Message, waiting_since: datetime | None, now: datetime | None = None) -> None:
    """A public agent reply: fulfils first/next response and the periodic update, records the
    response-time facts, and starts the next periodic update."""
    now = now or timezone.now()
    agent = message.author_user
    who = _name(agent)
    _fact_write(kind=ReportFact.Kind.REPLY, ticket=ticket, at=message.created_at, agent=agent, channel=message.channel)
    first = not ReportFact.objects.filter(ticket=ticket, kind=ReportFact.Kind.FIRST_RESPONSE).exists()
    hours = report_hours(ticket=ticket)
    if first:
        _fact_write(kind=ReportFact.Kind.FIRST_RESPONSE, ticket=ticket, at=message.created_at, agent=agent,
                    **_durations(hours, ticket.created_at, message.created_at))
    elif waiting_since is not None:
        _fact_write(kind=ReportFact.Kind.NEXT_RESPONSE, ticket=ticket, at=message.created_at, agent=agent,
                    **_durations(hours, waiting_since, message.created_at))
    running = ticket.sla_clocks.filter(state__in=RUNNING, metric__in=[
        SlaMetric.FIRST_RESPONSE, SlaMetric.NEXT_RESPONSE, SlaMetric.PERIODIC_UPDATE])
    for clock in running:
        _clock_end(clock, state=State.FULFILLED, now=now, reason=f"{who} replied", ticket=ticket)
    if ticket.status not in DONE_STATUSES:
        target = _targets(ticket).get(SlaMetric.PERIODIC_UPDATE)
        if target is not None:
            clock_start(ticket=ticket, target=target, at=message.created_at, now=now, reason=f"{who} replied")
    ticket_sla_refresh(ticket=ticket, now=now)


def sla_status_changed(*, ticket: Ticket, previous: str, by: AbstractBaseUser | None, now: datetime | None = None,
                       reason: str = "") -> None:
    """Solved/closed stop every clock (fulfilling resolution); a reopen resumes resolution;
    any other move pauses or resumes the metrics the policy pauses in that status."""
    now = now or timezone.now()
    status_name = ticket.get_status_display()
    reason = reason or f"{_name(by)} set the status to {status_name}"
    was_done, done = previous in DONE_STATUSES, ticket.status in DONE_STATUSES
    if done and not was_done:
        _fact_write(kind=ReportFact.Kind.SOLVED, ticket=ticket, at=now, agent=by)
        _fact_write(kind=ReportFact.Kind.RESOLUTION, ticket=ticket, at=now, agent=by,
                    **_durations(report_hours(ticket=ticket), ticket.created_at, now))
        for clock in ticket.sla_clocks.filter(state__in=RUNNING):
            if clock.metric == SlaMetric.RESOLUTION:
                _clock_end(clock, state=State.FULFILLED, now=now, reason=reason, ticket=ticket)
            else:
                _clock_end(clock, state=State.STOPPED, now=now, reason=f"{reason} before a reply", ticket=ticket)
    elif was_done and not done:
        _fact_write(kind=ReportFact.Kind.REOPENED, ticket=ticket, at=now, agent=by)
        resolution = ticket.sla_clocks.filter(metric=SlaMetric.RESOLUTION).order_by("-id").first()
        if resolution is not None and resolution.breached_at is None:
            # Its outcome is open again: it is decided at the next solve or breach.
            ReportFact.objects.filter(clock=resolution).delete()
        if resolution is not None:
            _clock_resume(resolution, now=now, reason=f"reopened: {reason}")
            if ticket.status in resolution.pause_statuses:
                _clock_pause(resolution, now=now, reason=f"the ticket is {status_name}")
        elif (target := _targets(ticket).get(SlaMetric.RESOLUTION)) is not None:
            clock_start(ticket=ticket, target=target, at=ticket.created_at, now=now, reason="reopened")
    elif not done:
        for clock in ticket.sla_clocks.filter(state__in=RUNNING):
            pause = ticket.status in clock.pause_statuses
            if pause and clock.state == State.ACTIVE:
                _clock_pause(clock, now=now, reason=reason)
            elif not pause and clock.state == State.PAUSED:
                _clock_resume(clock, now=now, reason=reason)
    ticket_sla_refresh(ticket=ticket, now=now)


def sla_ticket_changed(*, ticket: Ticket, reason: str, now: datetime | None = None) -> None:
    """Priority, tags or team changed: the policy is matched again. Running clocks take the
    new target from now on, keeping the time already counted (never retroactive); a metric
    that lost its target stops; first response and resolution start if they gained one."""
    now = now or timezone.now()
    _forget(ticket)
    targets = _targets(ticket)
    running = {c.metric: c for c in ticket.sla_clocks.filter(state__in=RUNNING)}
    for metric, clock in running.items():
        target = targets.get(metric)
        if target is None:
            _clock_end(clock, state=State.STOPPED, now=now, reason=f"{reason}: no target applies any more", ticket=ticket)
        elif target.differs_from(clock):
            _clock_retarget(clock, target=target, now=now, reason=reason)
    if ticket.status not in DONE_STATUSES:
        started = set(ticket.sla_clocks.values_list("metric", flat=True))
        for metric in (SlaMetric.FIRST_RESPONSE, SlaMetric.RESOLUTION):
            answered = metric == SlaMetric.FIRST_RESPONSE and ReportFact.objects.filter(
                ticket=ticket, kind=ReportFact.Kind.FIRST_RESPONSE).exists()
            if metric in targets and metric not in started and not answered:
                clock_start(ticket=ticket, target=targets[metric], at=ticket.created_at, now=now, reason=reason)
    ticket_sla_refresh(ticket=ticket, now=now)


def sla_merged_away(*, ticket: Ticket, into_id: int, by: AbstractBaseUser, now: datetime | None = None) -> None:
    now = now or timezone.now()
    _fact_write(kind=ReportFact.Kind.MERGED, ticket=ticket, at=now, agent=by)
    for clock in ticket.sla_clocks.filter(state__in=RUNNING):
        _clock_end(clock, state=State.STOPPED, now=now, reason=f"merged into #{into_id} by {_name(by)}", ticket=ticket)
    ticket_sla_refresh(ticket=ticket, now=now)


def ticket_sla_refresh(*, ticket: Ticket, now: datetime | None = None) -> None:
    """Keep the ticket's badge and nearest deadline in step with its running clocks."""
    _ticket_sla_set(ticket, list(ticket.sla_clocks.filter(state__in=RUNNING).values("state", "deadline", "warned_at", "breached_at")))


def _ticket_sla_set(ticket: Ticket, clocks: list[dict]) -> None:
    """The badge and nearest deadline of these running clocks (dicts of state, deadline,
    warned_at and breached_at), written when they changed."""
    active = [c for c in clocks if c["state"] == State.ACTIVE]
    if any(c["breached_at"] for c in clocks):
        state = "breached"
    elif any(c["warned_at"] for c in clocks):
        state = "warning"
    elif active:
        state = "ok"
    elif clocks:
        state = "paused"
    else:
        state = ""
    due = min((c["deadline"] for c in active if c["deadline"]), default=None)
    if (ticket.sla_state, ticket.sla_due_at) != (state, due):
        Ticket.objects.filter(pk=ticket.pk).update(sla_state=state, sla_due_at=due)
        ticket.sla_state, ticket.sla_due_at = state, due


# --- the sweep --------------------------------------------------------------------------------

@dataclass
class SweepResult:
    examined: int = 0
    warned: int = 0
    breached: int = 0


def sla_sweep(*, now: datetime | None = None, batch: int = 500) -> SweepResult:
    """Warn and breach every clock due by `now`. Finds them through the next_check_at index
    (cost O(due)), handles each in its own short transaction with its ticket locked."""
    now = now or timezone.now()
    result = SweepResult()
    cache: dict = {}
    while True:
        due = list(SlaClock.objects.filter(next_check_at__lte=now).order_by("next_check_at")
                   .values_list("id", "ticket_id")[:batch])
        for clock_id, ticket_id in due:
            result.examined += 1
            warned, breached = _clock_check(clock_id=clock_id, ticket_id=ticket_id, now=now, cache=cache)
            result.warned += warned
            result.breached += breached
        if len(due) < batch:
            return result


def _clock_check(*, clock_id: int, ticket_id: int, now: datetime, cache: dict) -> tuple[int, int]:
    with transaction.atomic():
        ticket = Ticket.objects.select_for_update(of=("self",)).select_related("conversation", "assignee", "team").filter(
            pk=ticket_id).first()
        clock = SlaClock.objects.select_for_update().filter(pk=clock_id, next_check_at__lte=now).first()
        if ticket is None or clock is None:
            return 0, 0  # handled meanwhile (another sweep, a reply)
        hours = _clock_hours(clock, cache)
        warned = breached = 0
        if clock.warned_at is None and clock.breached_at is None and clock.warn_at and clock.warn_at <= now:
            left = max(clock.target_seconds - elapsed_at(clock, now, hours).total_seconds(), 0)
            warned = _warn_record(clock, now=now, hours=hours,
                                  reason=f"{clock.get_metric_display()}: {_minutes(left)} left of {_minutes(clock.target_seconds)}")
        if clock.breached_at is None and clock.deadline and clock.deadline <= now:
            breached = _breach_record(clock, ticket=ticket, now=now, hours=hours,
                                      reason=f"{clock.get_metric_display()}: the {_minutes(clock.target_seconds)} "
                                             f"target passed with no {_awaited(clock.metric)}")
        if clock.warned_at is None and clock.breached_at is not None:
            clock.warned_at = clock.breached_at  # a breach found at once needs no separate warning
        _schedule(clock, hours, now)
        # Saved before escalating: an escalation may retarget this very clock.
        clock.save(update_fields=["warned_at", "breached_at", "warn_at", "deadline", "next_check_at"])
        for done, on, event in ((warned, SlaEscalation.On.WARN, "sla.warned"), (breached, SlaEscalation.On.BREACH, "sla.breached")):
            if done:
                _escalate(clock, ticket=ticket, on=on, now=now)
                realtime.publish(type=event, inbox_id=ticket.conversation.inbox_id, conversation_id=ticket.pk)
        ticket_sla_refresh(ticket=ticket, now=now)
    return warned, breached


def _warn_record(clock: SlaClock, *, now: datetime, hours: WorkingHours | None, reason: str) -> int:
    try:
        with transaction.atomic():
            _log(clock, SlaEvent.Kind.WARN, at=now, hours=hours, reason=reason)
    except IntegrityError:
        clock.warned_at = clock.warned_at or now  # recorded already: never due for it again
        return 0
    clock.warned_at = now
    return 1


def _awaited(metric: str) -> str:
    return "resolution" if metric == SlaMetric.RESOLUTION else "reply"


# --- escalations ------------------------------------------------------------------------------

def _escalate(clock: SlaClock, *, ticket: Ticket, on: str, now: datetime) -> None:
    if clock.policy_id is None:
        return
    rules = SlaEscalation.objects.filter(policy_id=clock.policy_id, on=on).filter(
        Q(metric="") | Q(metric=clock.metric)).select_related("team")
    what = "at risk" if on == SlaEscalation.On.WARN else "breached"
    text = f"SLA {what}: {clock.get_metric_display()} on #{ticket.pk} {ticket.conversation.subject}"[:300]
    kind = Notification.Kind.SLA_WARNING if on == SlaEscalation.On.WARN else Notification.Kind.SLA_BREACH
    for rule in rules:
        if rule.action == SlaEscalation.Action.NOTIFY:
            notifications_create(users=_responsible(ticket), kind=kind, ticket=ticket, text=text)
        elif rule.action == SlaEscalation.Action.NOTIFY_MANAGERS:
            managers = get_user_model().objects.filter(Q(groups__name=MANAGERS_GROUP) | Q(is_superuser=True), is_active=True)
            notifications_create(users=list(managers.distinct()), kind=kind, ticket=ticket, text=text)
        elif rule.action == SlaEscalation.Action.RAISE_PRIORITY and ticket.priority in PRIORITY_UP:
            before = ticket.get_priority_display()
            ticket.priority = PRIORITY_UP[ticket.priority]
            Ticket.objects.filter(pk=ticket.pk).update(priority=ticket.priority)
            system_event_create(conversation=ticket.conversation, text=(
                f"SLA {what} ({clock.get_metric_display()}): priority raised from {before} to {ticket.get_priority_display()}."))
            sla_ticket_changed(ticket=ticket, now=now, reason=f"priority raised to {ticket.get_priority_display()} by escalation")
        elif rule.action == SlaEscalation.Action.MOVE_TO_TEAM and rule.team_id and ticket.team_id != rule.team_id:
            ticket.team = rule.team
            Ticket.objects.filter(pk=ticket.pk).update(team=rule.team)
            system_event_create(conversation=ticket.conversation, text=(
                f"SLA {what} ({clock.get_metric_display()}): moved to the team {rule.team.name}."))
    if rules:
        realtime.publish(type="conversation.updated", inbox_id=ticket.conversation.inbox_id, conversation_id=ticket.pk)


def _responsible(ticket: Ticket) -> list[AbstractBaseUser]:
    if ticket.assignee_id is not None:
        return [ticket.assignee]
    if ticket.team_id is not None:
        return list(ticket.team.members.filter(is_active=True))
    return list(ticket.conversation.inbox.members.filter(is_active=True))


# --- report facts -----------------------------------------------------------------------------

def _durations(hours: WorkingHours | None, start: datetime, end: datetime) -> dict[str, int]:
    calendar = max(int((end - start).total_seconds()), 0)
    business = int(counted(hours, start, end).total_seconds()) if hours is not None else calendar
    return {"calendar_seconds": calendar, "business_seconds": business}


ONCE_PER_TICKET = (ReportFact.Kind.CREATED, ReportFact.Kind.FIRST_RESPONSE, ReportFact.Kind.CSAT)


def _fact_write(*, kind: str, ticket: Ticket, at: datetime, agent: AbstractBaseUser | None = None, channel: str = "",
                metric: str = "", clock: SlaClock | None = None, breached: bool | None = None,
                calendar_seconds: int | None = None, business_seconds: int | None = None) -> None:
    """One fact with the ticket's dimensions as they are now (see ReportFact)."""
    fields = {
        "at": at, "inbox_id": ticket.conversation.inbox_id, "channel": channel or ticket.channel,
        "team_id": ticket.team_id, "agent_id": agent.pk if agent is not None else ticket.assignee_id,
        "priority": ticket.priority, "metric": metric, "breached": breached,
        "calendar_seconds": calendar_seconds, "business_seconds": business_seconds,
    }
    if kind == ReportFact.Kind.RESOLUTION:
        ReportFact.objects.update_or_create(ticket=ticket, kind=kind, defaults=fields)
    elif clock is not None:
        ReportFact.objects.update_or_create(clock=clock, defaults=fields | {"ticket": ticket, "kind": kind})
    elif kind in ONCE_PER_TICKET:
        # One statement: the constraint fact_once_per_ticket keeps the first (a replay or a race).
        ReportFact.objects.bulk_create([ReportFact(ticket=ticket, kind=kind, **fields)], ignore_conflicts=True)
    else:
        ReportFact.objects.create(ticket=ticket, kind=kind, **fields)


def _name(user: AbstractBaseUser | None) -> str:
    if user is None:
        return "the desk"
    return user.get_full_name() or user.get_username()
