"""Business time on a calendar: is the team working, when does it next start, and how much
working time lies between two moments or ends a target.

A calendar is a time zone, weekly intervals in local wall-clock time and holidays. An
interval whose end is at or before its start runs past midnight into the next day; one that
starts on a holiday (local date) does not happen. Overlapping intervals count once.

Elapsed time is real time: a working span that contains a DST change is an hour shorter or
longer than its wall-clock length, as the people working it experience. All arithmetic is
done in UTC, because Python subtracts two datetimes of the same tzinfo by wall clock.

The functions take `WorkingHours`, a plain value, so they can be tested without a database;
`working_hours(calendar)` reads one from a BusinessCalendar (one query: its holidays).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from tickets.models import BusinessCalendar

# How far ahead a deadline or an opening is searched before giving up (a calendar of
# holidays only, or no intervals at all, never reaches one).
LOOKAHEAD_DAYS = 3 * 366


@dataclasses.dataclass(frozen=True)
class Interval:
    weekday: int  # Monday = 0
    start: time
    end: time  # at or before start: the interval ends on the next day


@dataclasses.dataclass(frozen=True)
class WorkingHours:
    time_zone: str
    intervals: tuple[Interval, ...]
    holidays: frozenset[date] = frozenset()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


def _hm(value: str) -> time:
    hours, _, minutes = value.partition(":")
    return time(int(hours), int(minutes or 0))


def intervals_from_json(items: list[dict]) -> tuple[Interval, ...]:
    return tuple(Interval(int(i["weekday"]), _hm(i["start"]), _hm(i["end"])) for i in items)


def working_hours(calendar: BusinessCalendar) -> WorkingHours:
    return WorkingHours(
        time_zone=calendar.time_zone,
        intervals=intervals_from_json(calendar.intervals),
        holidays=frozenset(calendar.holidays.values_list("date", flat=True)),
    )


def _spans_starting_on(hours: WorkingHours, day: date) -> list[tuple[datetime, datetime]]:
    """The working spans that start on local `day`, in UTC, sorted by start."""
    if day in hours.holidays:
        return []
    zone = hours.zone
    spans = []
    for interval in hours.intervals:
        if interval.weekday != day.weekday():
            continue
        end_day = day if interval.end > interval.start else day + timedelta(days=1)
        start = datetime.combine(day, interval.start, tzinfo=zone).astimezone(UTC)
        end = datetime.combine(end_day, interval.end, tzinfo=zone).astimezone(UTC)
        if end > start:  # a span inside a skipped DST hour has no length
            spans.append((start, end))
    return sorted(spans)


def spans(hours: WorkingHours, since: datetime, *, days: int = LOOKAHEAD_DAYS) -> Iterator[tuple[datetime, datetime]]:
    """Merged working spans (UTC) that end after `since`, in order, for `days` local days."""
    since = since.astimezone(UTC)
    # A span that began the day before may run past midnight into `since`'s day.
    first_day = since.astimezone(hours.zone).date() - timedelta(days=1)
    current: tuple[datetime, datetime] | None = None
    for offset in range(days + 1):
        for start, end in _spans_starting_on(hours, first_day + timedelta(days=offset)):
            if current is not None and start <= current[1]:
                current = (current[0], max(current[1], end))
                continue
            if current is not None and current[1] > since:
                yield current
            current = (start, end)
    if current is not None and current[1] > since:
        yield current


def is_open_at(hours: WorkingHours, at: datetime) -> bool:
    at = at.astimezone(UTC)
    for start, end in spans(hours, at, days=2):
        return start <= at < end
    return False


def next_opening_after(hours: WorkingHours, at: datetime) -> datetime | None:
    """The start of the next working span after `at` (None if there is none within reach)."""
    at = at.astimezone(UTC)
    for start, _end in spans(hours, at):
        if start > at:
            return start
    return None


def business_seconds(hours: WorkingHours, start: datetime, end: datetime) -> float:
    """Working seconds in [start, end); 0 when end is not after start."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        return 0.0
    days = (end - start).days + 2
    total = timedelta()  # summed exactly, in microseconds, then converted once
    for span_start, span_end in spans(hours, start, days=days):
        if span_start >= end:
            break
        total += min(span_end, end) - max(span_start, start)
    return total.total_seconds()


def business_deadline(hours: WorkingHours, start: datetime, seconds: float) -> datetime | None:
    """The moment `seconds` of working time after `start` have passed.

    A target of 0 is due at `start` itself. None when the calendar never accumulates that
    much within the lookahead (no intervals, or holidays all the way).
    """
    start = start.astimezone(UTC)
    if seconds <= 0:
        return start
    remaining = timedelta(seconds=seconds)
    for span_start, span_end in spans(hours, start):
        begin = max(span_start, start)
        available = span_end - begin
        if remaining <= available:
            return begin + remaining
        remaining -= available
    return None

