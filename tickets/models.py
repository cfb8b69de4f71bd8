"""The work: a ticket's state (status, priority, assignee, team, tags) per conversation."""
from __future__ import annotations

from django.conf import settings
from django.db import models

from conversations.models import Conversation


class Team(models.Model):
    name = models.CharField(max_length=120, unique=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="teams")

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    name = models.SlugField(max_length=60, unique=True)

    def __str__(self) -> str:
        return self.name


class Ticket(models.Model):
    """Shares its primary key with the conversation, so #123 names both."""

    class Status(models.TextChoices):
        NEW = "new", "New"
        OPEN = "open", "Open"
        PENDING = "pending", "Pending"
        ON_HOLD = "on_hold", "On hold"
        SOLVED = "solved", "Solved"
        CLOSED = "closed", "Closed"

    class Priority(models.TextChoices):
        LOW = "low", "Low"
        NORMAL = "normal", "Normal"
        HIGH = "high", "High"
        URGENT = "urgent", "Urgent"

    OPEN_STATUSES = (Status.NEW, Status.OPEN, Status.PENDING, Status.ON_HOLD)

    conversation = models.OneToOneField(Conversation, on_delete=models.CASCADE, primary_key=True, related_name="ticket")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    priority = models.CharField(max_length=16, choices=Priority.choices, default=Priority.NORMAL)
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="assigned_tickets")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="tickets")
    tags = models.ManyToManyField(Tag, blank=True, related_name="tickets")
    # The channel the customer first wrote through: SLA policies and reports group by it.
    channel = models.CharField(max_length=16, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    solved_at = models.DateTimeField(null=True, blank=True)
    # The nearest deadline among the running SLA clocks and how they stand, kept by the SLA
    # services so the list sorts and badges without touching the clocks.
    sla_due_at = models.DateTimeField(null=True, blank=True)
    sla_state = models.CharField(max_length=10, blank=True, choices=[
        ("", "No SLA"), ("ok", "On track"), ("warning", "At risk"), ("breached", "Breached"), ("paused", "Paused")])
    # Snooze is beside the status, not one of them: a snoozed ticket keeps its status (and its
    # SLA clocks) and only leaves the working views until it wakes. snoozed_at set = snoozed;
    # snoozed_until empty while snoozed = until the customer writes again.
    snoozed_at = models.DateTimeField(null=True, blank=True)
    snoozed_until = models.DateTimeField(null=True, blank=True)
    snoozed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        indexes = [
            models.Index(fields=["status", "assignee"], name="ticket_status_assignee"),
            models.Index(fields=["sla_due_at"], name="ticket_sla_due", condition=models.Q(sla_due_at__isnull=False)),
            # The "SLA at risk" view: tickets already warned or breached, besides those due soon.
            models.Index(fields=["sla_state"], name="ticket_sla_alert", condition=models.Q(sla_state__in=["warning", "breached"])),
            # The wake-up sweep reads only snoozes that end at a time.
            models.Index(fields=["snoozed_until"], name="ticket_snooze_due", condition=models.Q(snoozed_until__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"Ticket #{self.pk}"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    @property
    def is_snoozed(self) -> bool:
        return self.snoozed_at is not None


class BusinessCalendar(models.Model):
    """When the team works: a time zone, weekly intervals and holidays.

    `intervals` is a list of {"weekday": 0-6 (Monday=0), "start": "HH:MM", "end": "HH:MM"}
    in the calendar's time zone; an end at or before its start runs past midnight into the
    next day. Several intervals per day are allowed (split shifts).
    """

    name = models.CharField(max_length=120, unique=True)
    time_zone = models.CharField(max_length=64, default="UTC", help_text="An IANA name, e.g. Europe/Berlin.")
    intervals = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return self.name


class Holiday(models.Model):
    calendar = models.ForeignKey(BusinessCalendar, on_delete=models.CASCADE, related_name="holidays")
    date = models.DateField()
    name = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["calendar", "date"], name="holiday_unique_date")]
        ordering = ["date"]

    def __str__(self) -> str:
        return f"{self.date} {self.name}"


class InboxCalendar(models.Model):
    """The business hours an inbox keeps: its SLA clocks and reports run on this calendar
    unless the matching policy names its own."""

    inbox = models.OneToOneField("conversations.Inbox", on_delete=models.CASCADE, related_name="business_calendar")
    calendar = models.ForeignKey(BusinessCalendar, on_delete=models.PROTECT, related_name="+")

    def __str__(self) -> str:
        return f"{self.inbox} on {self.calendar}"


class SlaMetric(models.TextChoices):
    FIRST_RESPONSE = "first_response", "First response"
    NEXT_RESPONSE = "next_response", "Next response"
    PERIODIC_UPDATE = "periodic_update", "Periodic update"
    RESOLUTION = "resolution", "Resolution"


def _default_pauses() -> dict[str, list[str]]:
    # Waiting on the customer stops the clocks that measure us, not the ones that measure
    # whether we answered them (Zendesk's "pausable update" and "requester wait time").
    return {SlaMetric.RESOLUTION: [Ticket.Status.PENDING], SlaMetric.PERIODIC_UPDATE: [Ticket.Status.PENDING]}


class SlaPolicy(models.Model):
    """A promise: the first active policy (by position) whose conditions all match applies.

    An empty condition matches anything. Tags match when the ticket has any of them. Targets
    are per priority; a priority without a target has no clock for that metric. A clock
    copies what it needs when it starts, so editing a policy never rewrites history: it
    reaches a ticket on the ticket's next update.
    """

    name = models.CharField(max_length=120, unique=True)
    position = models.PositiveIntegerField(default=0, help_text="Lower comes first.")
    active = models.BooleanField(default=True)
    inboxes = models.ManyToManyField("conversations.Inbox", blank=True, related_name="+")
    channels = models.JSONField(default=list, blank=True, help_text='e.g. ["email", "sms"]; empty: any channel.')
    priorities = models.JSONField(default=list, blank=True, help_text='e.g. ["high", "urgent"]; empty: any priority.')
    tags = models.ManyToManyField(Tag, blank=True, related_name="+")
    calendar = models.ForeignKey(BusinessCalendar, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                 help_text="Empty: the inbox's calendar, else round the clock.")
    warn_at_percent = models.PositiveSmallIntegerField(default=75, help_text="Warn when this share of a target is used up.")
    pause_statuses = models.JSONField(default=_default_pauses, blank=True,
                                      help_text='Statuses that pause each metric, e.g. {"resolution": ["pending"]}. '
                                                "Solved and closed stop every clock.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "id"]
        verbose_name_plural = "SLA policies"

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from conversations.models import Channel

        errors = {}
        if not isinstance(self.channels, list) or not set(self.channels) <= set(Channel.values):
            errors["channels"] = f"A list of channels among {', '.join(Channel.values)}."
        if not isinstance(self.priorities, list) or not set(self.priorities) <= set(Ticket.Priority.values):
            errors["priorities"] = f"A list of priorities among {', '.join(Ticket.Priority.values)}."
        pausable = set(Ticket.OPEN_STATUSES)
        pauses = self.pause_statuses
        if not isinstance(pauses, dict) or not set(pauses) <= set(SlaMetric.values) or not all(
                isinstance(v, list) and set(v) <= pausable for v in pauses.values()):
            errors["pause_statuses"] = (f"A mapping of metric ({', '.join(SlaMetric.values)}) to a list of statuses "
                                        f"among {', '.join(sorted(pausable))}.")
        if not 1 <= self.warn_at_percent <= 99:
            errors["warn_at_percent"] = "Between 1 and 99."
        if errors:
            raise ValidationError(errors)


class SlaTarget(models.Model):
    policy = models.ForeignKey(SlaPolicy, on_delete=models.CASCADE, related_name="targets")
    metric = models.CharField(max_length=20, choices=SlaMetric.choices)
    priority = models.CharField(max_length=16, choices=Ticket.Priority.choices)
    minutes = models.PositiveIntegerField()
    business_hours = models.BooleanField(default=True, help_text="Count only the calendar's working time.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["policy", "metric", "priority"], name="sla_target_unique")]

    def __str__(self) -> str:
        kind = "business" if self.business_hours else "calendar"
        return f"{self.get_metric_display()} {self.get_priority_display()}: {self.minutes} min ({kind})"


class SlaEscalation(models.Model):
    """What happens when a clock of this policy warns or breaches."""

    class On(models.TextChoices):
        WARN = "warn", "Warning"
        BREACH = "breach", "Breach"

    class Action(models.TextChoices):
        NOTIFY = "notify", "Notify the assignee (or the team, or the inbox's agents)"
        NOTIFY_MANAGERS = "notify_managers", "Notify the managers"
        RAISE_PRIORITY = "raise_priority", "Raise the priority one step"
        MOVE_TO_TEAM = "move_to_team", "Move to a team"

    policy = models.ForeignKey(SlaPolicy, on_delete=models.CASCADE, related_name="escalations")
    on = models.CharField(max_length=8, choices=On.choices)
    metric = models.CharField(max_length=20, choices=SlaMetric.choices, blank=True, help_text="Empty: any metric.")
    action = models.CharField(max_length=20, choices=Action.choices)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="+")

    def __str__(self) -> str:
        return f"on {self.on}: {self.get_action_display()}"


class SlaClock(models.Model):
    """One measured promise on one ticket. Elapsed time accumulates per running segment;
    `deadline` is when it breaches if it keeps running, stored so the sweep finds what is
    due by index (`next_check_at`), never by scanning open tickets."""

    class State(models.TextChoices):
        ACTIVE = "active", "Running"
        PAUSED = "paused", "Paused"
        FULFILLED = "fulfilled", "Fulfilled"
        STOPPED = "stopped", "Stopped"

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="sla_clocks")
    metric = models.CharField(max_length=20, choices=SlaMetric.choices)
    state = models.CharField(max_length=10, choices=State.choices, default=State.ACTIVE)
    # Copied from the policy when the clock starts or is retargeted: edits never rewrite history.
    policy = models.ForeignKey(SlaPolicy, null=True, on_delete=models.SET_NULL, related_name="+")
    policy_name = models.CharField(max_length=120)
    target_seconds = models.PositiveIntegerField()
    warn_seconds = models.PositiveIntegerField()
    business_hours = models.BooleanField()
    calendar = models.ForeignKey(BusinessCalendar, null=True, on_delete=models.SET_NULL, related_name="+")
    pause_statuses = models.JSONField(default=list)
    started_at = models.DateTimeField()
    # The customer message a next-response clock answers to.
    message = models.ForeignKey("conversations.Message", null=True, on_delete=models.SET_NULL, related_name="+")
    elapsed = models.DurationField(help_text="Counted time up to running_since.")
    running_since = models.DateTimeField(null=True)
    warn_at = models.DateTimeField(null=True)
    deadline = models.DateTimeField(null=True)
    next_check_at = models.DateTimeField(null=True)
    warned_at = models.DateTimeField(null=True)
    breached_at = models.DateTimeField(null=True)
    ended_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["started_at", "id"]
        indexes = [
            models.Index(fields=["next_check_at"], name="sla_clock_due", condition=models.Q(next_check_at__isnull=False)),
            models.Index(fields=["ticket", "metric", "state"], name="sla_clock_ticket"),
        ]

    def __str__(self) -> str:
        return f"{self.get_metric_display()} on #{self.ticket_id} ({self.state})"

    @property
    def is_running(self) -> bool:
        return self.state in (self.State.ACTIVE, self.State.PAUSED)


class SlaEvent(models.Model):
    """The clock's log: why it reads what it reads."""

    class Kind(models.TextChoices):
        START = "start", "Started"
        PAUSE = "pause", "Paused"
        RESUME = "resume", "Resumed"
        FULFIL = "fulfil", "Fulfilled"
        WARN = "warn", "Warning"
        BREACH = "breach", "Breached"
        RETARGET = "retarget", "Target changed"
        STOP = "stop", "Stopped"

    clock = models.ForeignKey(SlaClock, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    at = models.DateTimeField()
    elapsed = models.DurationField()
    reason = models.CharField(max_length=300)

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            # One warning and one breach per clock, whatever the sweep or a restart does.
            models.UniqueConstraint(fields=["clock", "kind"], condition=models.Q(kind__in=["warn", "breach"]),
                                    name="sla_event_once"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.reason}"


class Notification(models.Model):
    class Kind(models.TextChoices):
        SLA_WARNING = "sla_warning", "SLA warning"
        SLA_BREACH = "sla_breach", "SLA breach"
        ASSIGNMENT = "assignment", "Assignment"
        MENTION = "mention", "Mention"
        MESSAGE = "message", "New message"
        SNOOZE = "snooze", "Snooze ended"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    ticket = models.ForeignKey(Ticket, null=True, on_delete=models.CASCADE, related_name="+")
    text = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["user", "-id"], name="notification_user")]

    def __str__(self) -> str:
        return self.text


class ReportFact(models.Model):
    """What the reports count, written when it happens: a report is an aggregate over these
    indexed rows, never a scan of the timeline. Dimensions are copied as they were then."""

    class Kind(models.TextChoices):
        CREATED = "created", "Conversation created"
        SOLVED = "solved", "Solved"
        REOPENED = "reopened", "Reopened"
        MERGED = "merged", "Merged away"
        REPLY = "reply", "Agent reply"
        FIRST_RESPONSE = "first_response", "First response"
        NEXT_RESPONSE = "next_response", "Next response"
        RESOLUTION = "resolution", "Resolution"
        SLA = "sla", "SLA outcome"
        CSAT = "csat", "CSAT answer"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    at = models.DateTimeField()
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="+")
    inbox = models.ForeignKey("conversations.Inbox", on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(max_length=16, blank=True)
    team = models.ForeignKey(Team, null=True, on_delete=models.SET_NULL, related_name="+")
    agent = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    priority = models.CharField(max_length=16, blank=True)
    metric = models.CharField(max_length=20, choices=SlaMetric.choices, blank=True)
    clock = models.OneToOneField(SlaClock, null=True, on_delete=models.SET_NULL, related_name="fact")
    calendar_seconds = models.PositiveIntegerField(null=True)
    business_seconds = models.PositiveIntegerField(null=True)
    breached = models.BooleanField(null=True)
    rating = models.PositiveSmallIntegerField(null=True)

    class Meta:
        indexes = [models.Index(fields=["kind", "at"], name="fact_kind_at")]
        constraints = [
            # Per conversation: created once, a first response once, one (latest) resolution
            # and one CSAT answer.
            models.UniqueConstraint(fields=["ticket", "kind"], name="fact_once_per_ticket",
                                    condition=models.Q(kind__in=["created", "first_response", "resolution", "csat"])),
        ]


class CsatSurvey(models.Model):
    """One satisfaction question per conversation, asked on the channel the customer used."""

    ticket = models.OneToOneField(Ticket, on_delete=models.CASCADE, related_name="csat")
    token = models.UUIDField(unique=True)
    channel = models.CharField(max_length=16)
    message = models.ForeignKey("conversations.Message", null=True, on_delete=models.SET_NULL, related_name="+")
    asked_at = models.DateTimeField()
    rating = models.PositiveSmallIntegerField(null=True)
    comment = models.TextField(blank=True)
    answered_at = models.DateTimeField(null=True)

    def __str__(self) -> str:
        return f"CSAT #{self.ticket_id}: {self.rating or '-'}"


class AgentStatus(models.Model):
    """An agent's availability and how many open conversations they carry at most."""

    class Availability(models.TextChoices):
        ONLINE = "online", "Online"
        AWAY = "away", "Away"
        OFFLINE = "offline", "Offline"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="desk_status")
    availability = models.CharField(max_length=8, choices=Availability.choices, default=Availability.OFFLINE)
    capacity = models.PositiveSmallIntegerField(default=10, help_text="Open conversations assigned at most by routing.")
    last_assigned_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "agent statuses"

    def __str__(self) -> str:
        return f"{self.user}: {self.availability}"


class InboxRouting(models.Model):
    """How an inbox's new and waiting conversations find an agent."""

    class Mode(models.TextChoices):
        MANUAL = "manual", "Manual"
        ROUND_ROBIN = "round_robin", "Round robin"
        LEAST_LOADED = "least_loaded", "Least loaded"

    inbox = models.OneToOneField("conversations.Inbox", on_delete=models.CASCADE, related_name="routing")
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.MANUAL)
    # Round robin: the agent who got the last conversation; the next goes to the one after.
    last_agent = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    def __str__(self) -> str:
        return f"{self.inbox}: {self.get_mode_display()}"


class CannedResponse(models.Model):
    """A saved reply with placeholders ({{ contact.first_name }}, {{ agent.name }}, …), for
    every inbox or one; picked by title or by its shortcut."""

    title = models.CharField(max_length=120)
    shortcut = models.SlugField(max_length=40, help_text="Typed after a slash in the composer: /refund")
    body = models.TextField()
    inbox = models.ForeignKey("conversations.Inbox", null=True, blank=True, on_delete=models.CASCADE, related_name="canned_responses",
                              help_text="Empty: offered in every inbox.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title", "id"]
        constraints = [models.UniqueConstraint(fields=["shortcut"], name="canned_response_shortcut")]

    def __str__(self) -> str:
        return self.title


class TicketRead(models.Model):
    """How far one agent has read one conversation: newer activity marks it unread in their list."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="reads")
    read_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "ticket"], name="ticket_read_once")]

    def __str__(self) -> str:
        return f"{self.user_id} read #{self.ticket_id} at {self.read_at:%Y-%m-%d %H:%M}"
