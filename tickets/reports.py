"""The manager's reports: aggregates over ReportFact rows, never over the timeline.

Every selector takes a ReportFilter and reads the facts whose `at` lies in the filter's range
(its start and end are dates in the report's time zone; the range is [start 00:00, the day
after end 00:00)), narrowed by the dimensions the fact carried when it happened (inbox,
channel, team, agent, priority). Each selector reads the facts by one or two range scans of
`fact_kind_at` (kind, at), grouped in the database, plus primary-key lookups of the few names
it shows; the counts are pinned by assertNumQueries in the tests.

Percentiles use the nearest-rank definition (see `percentile`): the value at rank
ceil(p/100 * n) of the sorted values, always one of the measured values. The CSV export
carries each conversation's measured values, so its totals recompute to the page's figures
exactly.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connections, transaction
from django.db.models import Avg, Count, Max, Model, Q, QuerySet, Sum
from django.db.models.functions import ExtractHour, ExtractIsoWeekDay, TruncDate

from conversations.models import Channel, Conversation, Inbox
from tickets.models import ReportFact, SlaMetric, Team, Ticket

Kind = ReportFact.Kind
MAX_RANGE_DAYS = 731  # the backlog has one point a day: two years stay readable and cheap
RESPONSE_METRICS = (Kind.FIRST_RESPONSE, Kind.NEXT_RESPONSE, Kind.RESOLUTION)
BACKLOG_KINDS = (Kind.CREATED, Kind.REOPENED, Kind.SOLVED, Kind.MERGED)
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def report_time_zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


@dataclass(frozen=True)
class ReportFilter:
    """What a report covers. start and end are inclusive dates in `tz`."""

    start: date
    end: date
    tz: ZoneInfo = field(default_factory=report_time_zone)
    inbox_id: int | None = None
    channel: str = ""
    team_id: int | None = None
    agent_id: int | None = None
    priority: str = ""

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError("The end date is before the start date.")
        if self.days > MAX_RANGE_DAYS:
            raise ValueError(f"A report covers at most {MAX_RANGE_DAYS} days.")

    @classmethod
    def last_days(cls, days: int = 30, *, tz: ZoneInfo | None = None, today: date | None = None) -> ReportFilter:
        tz = tz or report_time_zone()
        today = today or datetime.now(tz).date()
        return cls(start=today - timedelta(days=days - 1), end=today, tz=tz)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def moment(self, day: date) -> datetime:
        """Midnight starting `day` in the report's zone (the first instant of that day)."""
        return datetime.combine(day, time.min, tzinfo=self.tz)

    @property
    def since(self) -> datetime:
        return self.moment(self.start)

    @property
    def until(self) -> datetime:
        """Exclusive upper bound: midnight after the end date."""
        return self.moment(self.end + timedelta(days=1))

    def dimensions(self) -> Q:
        q = Q()
        if self.inbox_id is not None:
            q &= Q(inbox_id=self.inbox_id)
        if self.channel:
            q &= Q(channel=self.channel)
        if self.team_id is not None:
            q &= Q(team_id=self.team_id)
        if self.agent_id is not None:
            q &= Q(agent_id=self.agent_id)
        if self.priority:
            q &= Q(priority=self.priority)
        return q

    def facts(self, *kinds: str) -> QuerySet[ReportFact]:
        """Facts of these kinds in the range: a range scan of fact_kind_at per kind."""
        kind_q = Q(kind=kinds[0]) if len(kinds) == 1 else Q(kind__in=kinds)
        return ReportFact.objects.filter(kind_q, self.dimensions(), at__gte=self.since, at__lt=self.until)


# --- Statistics ---------------------------------------------------------------------------


def percentile(ordered: Sequence[int], p: int) -> int | None:
    """Nearest rank: the smallest value with at least p% of the values at or below it.

    `ordered` is sorted ascending; p is 1-100. None when there are no values. The median is
    percentile(values, 50): for an even count the lower middle value, never an average.
    """
    if not ordered:
        return None
    rank = max(1, -(-p * len(ordered) // 100))  # ceil(p * n / 100) in integers: no float rounding
    return ordered[rank - 1]


def mean(values: Sequence[int]) -> float | None:
    """Arithmetic mean rounded to 0.1 s (the same rounding in the page, the API and the CSV check)."""
    return round(sum(values) / len(values), 1) if values else None


@dataclass(frozen=True)
class Distribution:
    count: int
    median: int | None
    p90: int | None
    mean: float | None

    @classmethod
    def of(cls, values: Iterable[int]) -> Distribution:
        ordered = sorted(values)
        return cls(count=len(ordered), median=percentile(ordered, 50), p90=percentile(ordered, 90), mean=mean(ordered))


@dataclass(frozen=True)
class ResponseTime:
    metric: str
    label: str
    calendar: Distribution
    business: Distribution


def response_times(f: ReportFilter) -> list[ResponseTime]:
    """First response, next response and resolution times: one query per metric.

    The business variant counts only the facts that carry business seconds (they all do when
    the SLA code measured them; round-the-clock tickets carry the calendar seconds there).
    """
    result = []
    for kind in RESPONSE_METRICS:
        rows = list(f.facts(kind).values_list("calendar_seconds", "business_seconds"))
        result.append(ResponseTime(
            metric=kind.value, label=kind.label,
            calendar=Distribution.of(c for c, _ in rows if c is not None),
            business=Distribution.of(b for _, b in rows if b is not None),
        ))
    return result


# --- SLA and CSAT -------------------------------------------------------------------------


@dataclass(frozen=True)
class SlaAttainment:
    metric: str
    label: str
    achieved: int
    breached: int

    @property
    def total(self) -> int:
        return self.achieved + self.breached

    @property
    def percent(self) -> float | None:
        return round(100 * self.achieved / self.total, 1) if self.total else None


def sla_attainment(f: ReportFilter) -> list[SlaAttainment]:
    """Per metric, the clocks whose outcome fell in the range: one query."""
    rows = {
        row["metric"]: row
        for row in f.facts(Kind.SLA).values("metric").annotate(
            achieved=Count("id", filter=Q(breached=False)), breached_n=Count("id", filter=Q(breached=True)))
    }
    return [
        SlaAttainment(metric=m.value, label=m.label, achieved=rows.get(m.value, {}).get("achieved", 0),
                      breached=rows.get(m.value, {}).get("breached_n", 0))
        for m in SlaMetric
    ]


@dataclass(frozen=True)
class CsatSummary:
    count: int
    average: float | None  # rounded to 0.01
    distribution: dict[int, int]  # rating 1-5 -> answers
    satisfied_percent: float | None  # share of 4 and 5, rounded to 0.1


def csat(f: ReportFilter) -> CsatSummary:
    """Answers received in the range: one query."""
    distribution = dict.fromkeys(range(1, 6), 0)
    for rating, n in f.facts(Kind.CSAT).filter(rating__isnull=False).values_list("rating").annotate(n=Count("id")):
        distribution[rating] = distribution.get(rating, 0) + n
    count = sum(distribution.values())
    total = sum(r * n for r, n in distribution.items())
    satisfied = distribution[4] + distribution[5]
    return CsatSummary(
        count=count,
        average=round(total / count, 2) if count else None,
        distribution=distribution,
        satisfied_percent=round(100 * satisfied / count, 1) if count else None,
    )


# --- Volume, agents -----------------------------------------------------------------------


@dataclass(frozen=True)
class VolumeRow:
    key: str  # the id (or channel name); "" for none
    label: str
    created: int
    solved: int


@dataclass(frozen=True)
class Volume:
    created: int
    solved: int
    by_channel: list[VolumeRow]
    by_inbox: list[VolumeRow]
    by_team: list[VolumeRow]
    by_agent: list[VolumeRow]


def _user_label(first: str | None, last: str | None, username: str | None) -> str:
    return f"{first or ''} {last or ''}".strip() or username or ""


def _user_names(ids: set[int]) -> dict[int, str]:
    """Display names of these users: one query (none when there are no ids)."""
    if not ids:
        return {}
    rows = get_user_model().objects.filter(pk__in=ids).values_list("pk", "first_name", "last_name", "username")
    return {pk: _user_label(first, last, username) for pk, first, last, username in rows}


def _names(model: type[Model], ids: set[int]) -> dict[int, str]:
    return dict(model.objects.filter(pk__in=ids).values_list("pk", "name")) if ids else {}


def volume(f: ReportFilter) -> Volume:
    """Conversations created and solved per channel, inbox, team and agent.

    One grouped query over every combination of the four ids (the combinations are few),
    rolled up here, then one query each for the inbox, team and agent names seen. The names
    are not joined into the grouped query: joining before grouping doubles its cost.
    """
    rows = list(f.facts(Kind.CREATED, Kind.SOLVED).values("kind", "channel", "inbox_id", "team_id", "agent_id")
                .annotate(n=Count("id")).order_by())
    inboxes = _names(Inbox, {r["inbox_id"] for r in rows})
    teams = _names(Team, {r["team_id"] for r in rows if r["team_id"] is not None})
    users = _user_names({r["agent_id"] for r in rows if r["agent_id"] is not None})
    channel_labels = dict(Channel.choices)
    buckets: dict[str, dict[str, list]] = {"channel": {}, "inbox": {}, "team": {}, "agent": {}}
    totals = {Kind.CREATED.value: 0, Kind.SOLVED.value: 0}
    for row in rows:
        keys = {
            "channel": (row["channel"], channel_labels.get(row["channel"], row["channel"]) or "Unknown"),
            "inbox": (str(row["inbox_id"]), inboxes.get(row["inbox_id"], "")),
            "team": (str(row["team_id"] or ""), teams.get(row["team_id"], "No team")),
            "agent": (str(row["agent_id"] or ""), users.get(row["agent_id"], "Nobody")),
        }
        column = 0 if row["kind"] == Kind.CREATED else 1
        totals[row["kind"]] += row["n"]
        for dimension, (key, label) in keys.items():
            entry = buckets[dimension].setdefault(key, [label, 0, 0])
            entry[1 + column] += row["n"]

    def ordered(dimension: str) -> list[VolumeRow]:
        items = [VolumeRow(key=k, label=v[0], created=v[1], solved=v[2]) for k, v in buckets[dimension].items()]
        return sorted(items, key=lambda r: (-r.created, -r.solved, r.label))

    return Volume(created=totals[Kind.CREATED], solved=totals[Kind.SOLVED], by_channel=ordered("channel"),
                  by_inbox=ordered("inbox"), by_team=ordered("team"), by_agent=ordered("agent"))


@dataclass(frozen=True)
class AgentActivity:
    agent_id: int
    name: str
    replies: int
    solved: int
    first_responses: int
    csat_count: int
    csat_average: float | None


def agent_activity(f: ReportFilter) -> list[AgentActivity]:
    """Per agent: public replies, solves, first responses and the CSAT of what they solved.

    Two queries: the facts grouped by agent id, then the agents' names. (Joined names made
    SQLite drive the query from the user table, scanning the range once per user.)
    """
    rows = [row for row in f.facts(Kind.REPLY, Kind.SOLVED, Kind.FIRST_RESPONSE, Kind.CSAT).values("agent_id").annotate(
        replies=Count("id", filter=Q(kind=Kind.REPLY)),
        solved=Count("id", filter=Q(kind=Kind.SOLVED)),
        first_responses=Count("id", filter=Q(kind=Kind.FIRST_RESPONSE)),
        csat_count=Count("id", filter=Q(kind=Kind.CSAT, rating__isnull=False)),
        csat_avg=Avg("rating", filter=Q(kind=Kind.CSAT)),
    ).order_by() if row["agent_id"] is not None]
    names = _user_names({row["agent_id"] for row in rows})
    result = [
        AgentActivity(
            agent_id=row["agent_id"], name=names.get(row["agent_id"], ""),
            replies=row["replies"], solved=row["solved"], first_responses=row["first_responses"],
            csat_count=row["csat_count"], csat_average=None if row["csat_avg"] is None else round(row["csat_avg"], 2),
        )
        for row in rows
    ]
    return sorted(result, key=lambda a: (-a.replies, -a.solved, a.name))


# --- Time: heatmap and backlog ------------------------------------------------------------


@dataclass(frozen=True)
class Heatmap:
    cells: list[list[int]]  # [weekday 0=Monday][hour 0-23] -> conversations created
    max: int
    total: int


def heatmap(f: ReportFilter) -> Heatmap:
    """Conversations created per hour of the week in the report's time zone: one query; the
    database converts each moment to local time (AT TIME ZONE on PostgreSQL, Django's zone
    functions on SQLite), so DST shifts land in the right local hour."""
    cells = [[0] * 24 for _ in range(7)]
    rows = f.facts(Kind.CREATED).annotate(
        wd=ExtractIsoWeekDay("at", tzinfo=f.tz), hour=ExtractHour("at", tzinfo=f.tz),
    ).values_list("wd", "hour").annotate(n=Count("id")).order_by()
    for wd, hour, n in rows:
        cells[wd - 1][hour] += n
    flat = [n for row in cells for n in row]
    return Heatmap(cells=cells, max=max(flat), total=sum(flat))


@dataclass(frozen=True)
class BacklogDay:
    day: date
    created: int
    solved: int
    reopened: int
    merged: int
    backlog: int  # open conversations at the end of the day


@dataclass(frozen=True)
class Backlog:
    opening: int  # open at the start of the range
    days: list[BacklogDay]


def backlog(f: ReportFilter) -> Backlog:
    """Open conversations at the end of each day: created + reopened - solved - merged.

    Two queries: the opening value is one aggregate over every fact before the range (an
    index range scan per kind), then one grouped query gives each day's changes in the
    report's time zone. Dimension filters narrow both, by the dimensions each fact carried.
    """
    before = ReportFact.objects.filter(f.dimensions(), kind__in=BACKLOG_KINDS, at__lt=f.since).aggregate(
        **{k.value: Count("id", filter=Q(kind=k)) for k in BACKLOG_KINDS})
    opening = before["created"] + before["reopened"] - before["solved"] - before["merged"]
    deltas: dict[date, dict[str, int]] = {}
    rows = f.facts(*BACKLOG_KINDS).annotate(day=TruncDate("at", tzinfo=f.tz)).values_list("day", "kind").annotate(
        n=Count("id")).order_by()
    for day, kind, n in rows:
        deltas.setdefault(day, {})[kind] = n
    days = []
    level = opening
    for offset in range(f.days):
        day = f.start + timedelta(days=offset)
        d = deltas.get(day, {})
        created, solved, reopened, merged = (d.get(k.value, 0) for k in (Kind.CREATED, Kind.SOLVED, Kind.REOPENED, Kind.MERGED))
        level += created + reopened - solved - merged
        days.append(BacklogDay(day=day, created=created, solved=solved, reopened=reopened, merged=merged, backlog=level))
    return Backlog(opening=opening, days=days)


# --- Per conversation (the CSV export) ----------------------------------------------------

CSV_SLA_METRICS = tuple(m.value for m in SlaMetric)


CSV_CHUNK = 2000


def conversation_rows(f: ReportFilter) -> Iterator[dict]:
    """One row per conversation with any fact in range, from the same facts the reports count.

    Each measured value is the fact's own (a conversation has at most one first response,
    one resolution and one CSAT answer), so sums, medians and counts over these rows equal
    the report figures exactly. The descriptive columns are the conversation's as it stands
    (inbox, team, assignee, priority, status, when it was created); `channel` is the one it
    came in on when it was created in the range, else the channel of its latest message.

    One query, streamed CSV_CHUNK rows at a time: the ORM's grouped scan of the facts in
    range as a derived table, joined to the ticket and its names AFTER grouping. Joining in
    the ORM query would join every fact row (twice the cost); looking the tickets up per
    chunk made PostgreSQL scan the ticket table once per chunk.
    """
    sla = {}
    for metric in CSV_SLA_METRICS:
        on = Q(kind=Kind.SLA, metric=metric)
        sla[f"sla_{metric}_achieved"] = Count("id", filter=on & Q(breached=False))
        sla[f"sla_{metric}_breached"] = Count("id", filter=on & Q(breached=True))
    facts = f.facts(*Kind.values).values("ticket_id").annotate(
        created_channel=Max("channel", filter=Q(kind=Kind.CREATED)),
        created=Count("id", filter=Q(kind=Kind.CREATED)),
        solved=Count("id", filter=Q(kind=Kind.SOLVED)),
        reopened=Count("id", filter=Q(kind=Kind.REOPENED)),
        replies=Count("id", filter=Q(kind=Kind.REPLY)),
        first_response_seconds=Max("calendar_seconds", filter=Q(kind=Kind.FIRST_RESPONSE)),
        first_response_business_seconds=Max("business_seconds", filter=Q(kind=Kind.FIRST_RESPONSE)),
        next_responses=Count("id", filter=Q(kind=Kind.NEXT_RESPONSE)),
        next_response_seconds=Sum("calendar_seconds", filter=Q(kind=Kind.NEXT_RESPONSE)),
        next_response_business_seconds=Sum("business_seconds", filter=Q(kind=Kind.NEXT_RESPONSE)),
        resolution_seconds=Max("calendar_seconds", filter=Q(kind=Kind.RESOLUTION)),
        resolution_business_seconds=Max("business_seconds", filter=Q(kind=Kind.RESOLUTION)),
        **sla,
        csat_rating=Max("rating", filter=Q(kind=Kind.CSAT)),
    ).order_by()
    connection = connections[facts.db]
    grouped, params = facts.query.sql_with_params()
    sql = _with_ticket_columns_sql(grouped, connection.ops.quote_name)
    # Raw rows skip the ORM's conversions: SQLite returns the time as naive UTC text.
    created_at = Ticket._meta.get_field("created_at")
    converters = connection.ops.get_db_converters(created_at.get_col(Ticket._meta.db_table))
    with transaction.atomic(using=facts.db):
        if connection.vendor == "postgresql":
            # A cursor makes PostgreSQL plan for the first rows (a walk of the ticket_id index
            # through every fact); planning for all rows scans fact_kind_at once.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL cursor_tuple_fraction = 1.0")
        with connection.chunked_cursor() as cursor:
            cursor.execute(sql, params)
            columns = [d[0] for d in cursor.description]
            while rows := cursor.fetchmany(CSV_CHUNK):
                for values in rows:
                    row = dict(zip(columns, values, strict=True))
                    for convert in converters:
                        row["created_at"] = convert(row["created_at"], created_at, connection)
                    row["channel"] = row["created_channel"] or row.pop("last_channel")
                    yield row


def _with_ticket_columns_sql(grouped: str, qn: Callable[[str], str]) -> str:
    """The grouped facts (a derived table `g`) joined to the ticket, conversation, inbox, team
    and assignee, in ticket order; table and column names from the models."""
    User = get_user_model()
    table = lambda model: qn(model._meta.db_table)
    column = lambda model, name: qn(model._meta.get_field(name).column)
    ticket_pk = column(Ticket, "conversation")
    select = {
        "created_at": f"t.{column(Ticket, 'created_at')}",
        "priority": f"t.{column(Ticket, 'priority')}",
        "status": f"t.{column(Ticket, 'status')}",
        "inbox": f"i.{column(Inbox, 'name')}",
        "last_channel": f"c.{column(Conversation, 'last_message_channel')}",
        "team": f"COALESCE(tm.{column(Team, 'name')}, '')",
        "assignee": f"COALESCE(u.{column(User, 'username')}, '')",
    }
    sql = (
        f"SELECT g.*, {', '.join(f'{expr} AS {qn(name)}' for name, expr in select.items())} FROM ({grouped}) g "
        f"JOIN {table(Ticket)} t ON t.{ticket_pk} = g.{qn('ticket_id')} "
        f"JOIN {table(Conversation)} c ON c.{qn(Conversation._meta.pk.column)} = t.{ticket_pk} "
        f"JOIN {table(Inbox)} i ON i.{qn(Inbox._meta.pk.column)} = c.{column(Conversation, 'inbox')} "
        f"LEFT JOIN {table(Team)} tm ON tm.{qn(Team._meta.pk.column)} = t.{column(Ticket, 'team')} "
        f"LEFT JOIN {table(User)} u ON u.{qn(User._meta.pk.column)} = t.{column(Ticket, 'assignee')} "
        f"ORDER BY g.{qn('ticket_id')}"
    )
    return sql
