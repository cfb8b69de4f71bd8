"""Import holidays into a business calendar from an iCalendar (RFC 5545) feed.

Public-holiday feeds (and the "office closed" calendars people keep in their groupware) are
all-day VEVENTs: `DTSTART;VALUE=DATE`, an exclusive `DTEND` (or a `DURATION`; neither means
one day), sometimes an `RRULE` for fixed dates such as Christmas. Each day such an event
covers becomes one Holiday (a whole local day of the calendar, as tickets.calendars reads it).

Parsing is icalendar's; recurrences are expanded with python-dateutil's rrule (RRULE, RDATE,
EXDATE, and RECURRENCE-ID overrides, which replace the occurrence they name).
"""
from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dateutil.rrule import rruleset, rrulestr
from django.db import transaction
from icalendar import Calendar, Component
from icalendar.prop import vRecur

from conversations.services import ApplicationError
from tickets.models import BusinessCalendar, Holiday

MAX_ICAL_BYTES = 2 * 1024 * 1024
MAX_HOLIDAY_DAYS = 5000
# Occurrences of one recurring event walked through (from its DTSTART on) before giving up:
# a daily rule that began a century ago is fine, one that never ends inside the window is not.
MAX_OCCURRENCES_SCANNED = 100_000
DEFAULT_DAYS_BACK = 366
DEFAULT_DAYS_AHEAD = 3 * 366
# Properties whose damage makes the days of an event unknowable; errors elsewhere (a broken
# LAST-MODIFIED, say) do not matter to a holiday.
_DATE_PROPERTIES = {"DTSTART", "DTEND", "DURATION", "RRULE", "RDATE", "EXDATE", "RECURRENCE-ID"}
_DAILY_OR_COARSER = {"DAILY", "WEEKLY", "MONTHLY", "YEARLY"}

SKIP_TIMED = "timed event, not a whole day"
SKIP_OUTSIDE = "outside the import window"
SKIP_CANCELLED = "cancelled"
SKIP_NO_START = "no start date"
SKIP_BACKWARDS = "ends before it starts"
SKIP_SUB_DAILY = "repeats more often than daily"


@dataclasses.dataclass(frozen=True)
class SkippedEvent:
    summary: str
    start: str  # as written in the file (the event's first day or moment), for the report
    reason: str  # one of the SKIP_* phrases


@dataclasses.dataclass(frozen=True)
class HolidayImport:
    """Counts in days: `already_present` days were holidays of the calendar before."""

    added: int
    already_present: int
    skipped: tuple[SkippedEvent, ...]
    start: date
    end: date

    def skipped_by_reason(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.skipped:
            counts[item.reason] = counts.get(item.reason, 0) + 1
        return counts


def holidays_import_ical(
    *, calendar: BusinessCalendar, data: bytes, start: date | None = None, end: date | None = None
) -> HolidayImport:
    """Add a Holiday for every whole day the feed's all-day events cover in [start, end].

    The window (both ends included) defaults to a year back and three years ahead of today
    in the calendar's time zone; it bounds recurring events and plain ones alike, so a feed
    of many years imports only the years that matter. Timed events are skipped, not rounded
    to their date: a holiday here closes the whole day, and a two-hour meeting or a "closed
    from 14:00" entry would take a full day of business time off every SLA clock.

    Existing holidays are kept as they are (name included), so importing the same feed
    twice adds nothing. Two events on one day give one holiday named after both. A file
    that is too large, unreadable, or that covers more than MAX_HOLIDAY_DAYS days raises
    ApplicationError with the reason, and nothing is written.
    """
    start, end = _window(calendar, start, end)
    days, skipped = _holiday_days(_parse(data), zone=ZoneInfo(calendar.time_zone), start=start, end=end)
    name_length = Holiday._meta.get_field("name").max_length
    with transaction.atomic():
        # Serialises concurrent imports into one calendar so the counts stay true.
        BusinessCalendar.objects.select_for_update().filter(pk=calendar.pk).exists()
        existing = set()
        if days:
            existing = set(
                Holiday.objects.filter(calendar=calendar, date__gte=min(days), date__lte=max(days)).values_list("date", flat=True)
            )
        new = [Holiday(calendar=calendar, date=day, name=" / ".join(names)[:name_length]) for day, names in sorted(days.items())
               if day not in existing]
        Holiday.objects.bulk_create(new, ignore_conflicts=True)
    return HolidayImport(added=len(new), already_present=len(days) - len(new), skipped=tuple(skipped), start=start, end=end)


def _window(calendar: BusinessCalendar, start: date | None, end: date | None) -> tuple[date, date]:
    today = datetime.now(ZoneInfo(calendar.time_zone)).date()
    start = start or today - timedelta(days=DEFAULT_DAYS_BACK)
    end = end or today + timedelta(days=DEFAULT_DAYS_AHEAD)
    if end < start:
        raise ApplicationError(f"The import window ends ({end}) before it starts ({start}).")
    return start, end


def _parse(data: bytes) -> Calendar:
    if len(data) > MAX_ICAL_BYTES:
        raise ApplicationError(f"The iCalendar file is larger than {MAX_ICAL_BYTES // (1024 * 1024)} MB.")
    try:
        parsed = Calendar.from_ical(data)
    except ValueError as err:
        raise ApplicationError(f"Not a valid iCalendar file: {_short(str(err))}") from err
    if parsed.name != "VCALENDAR":
        raise ApplicationError(f"Not an iCalendar file: it holds a {parsed.name or 'nameless'} component, not a VCALENDAR.")
    for event in parsed.walk("VEVENT"):
        for name, problem in event.errors:
            if name in _DATE_PROPERTIES:
                raise ApplicationError(f"Event {_summary(event)!r}: unreadable {name} ({_short(str(problem))}).")
    return parsed


def _holiday_days(parsed: Calendar, *, zone: ZoneInfo, start: date, end: date) -> tuple[dict[date, list[str]], list[SkippedEvent]]:
    """Day → names of the events covering it, within [start, end]; and the events skipped."""
    events = parsed.walk("VEVENT")
    # A RECURRENCE-ID override stands in for that one occurrence of its series.
    overridden: dict[str, set[date]] = {}
    for event in events:
        if event.get("RECURRENCE-ID") is not None:
            overridden.setdefault(str(event.get("UID", "")), set()).add(_as_date(event["RECURRENCE-ID"].dt, zone))
    days: dict[date, list[str]] = {}
    skipped: list[SkippedEvent] = []
    for event in events:
        reason = _skip_reason(event, zone)
        covered = [] if reason else list(
            itertools.islice(_event_days(event, zone=zone, start=start, end=end, overridden=overridden), MAX_HOLIDAY_DAYS + 1)
        )
        if not reason and not covered:
            reason = SKIP_OUTSIDE
        if reason:
            skipped.append(SkippedEvent(_summary(event), _start_text(event), reason))
            continue
        for day in covered:
            names = days.setdefault(day, [])
            if _summary(event) not in names:
                names.append(_summary(event))
            if len(days) > MAX_HOLIDAY_DAYS:
                raise ApplicationError(
                    f"The file covers more than {MAX_HOLIDAY_DAYS} days between {start} and {end}; import a shorter window."
                )
    return days, skipped


def _skip_reason(event: Component, zone: ZoneInfo) -> str:
    if event.get("DTSTART") is None:
        return SKIP_NO_START
    if str(event.get("STATUS", "")).upper() == "CANCELLED":
        return SKIP_CANCELLED
    if isinstance(event["DTSTART"].dt, datetime):
        return SKIP_TIMED
    if _end(event, zone) < event.start:
        return SKIP_BACKWARDS
    if any(str(rule.get("FREQ", [""])[0]).upper() not in _DAILY_OR_COARSER for rule in _as_list(event.get("RRULE"))):
        return SKIP_SUB_DAILY
    return ""


def _event_days(event: Component, *, zone: ZoneInfo, start: date, end: date, overridden: dict[str, set[date]]) -> Iterator[date]:
    """The days in [start, end] covered by an all-day event (every occurrence of it)."""
    length = max((_end(event, zone) - event.start).days, 1)  # DTEND is exclusive; DTEND = DTSTART is still a day
    for occurrence in _occurrences(event, zone=zone, until=end, overridden=overridden):
        day, last = max(occurrence, start), min(occurrence + timedelta(days=length - 1), end)
        while day <= last:
            yield day
            day += timedelta(days=1)


def _occurrences(event: Component, *, zone: ZoneInfo, until: date, overridden: dict[str, set[date]]) -> Iterator[date]:
    first: date = event.start
    rules = _as_list(event.get("RRULE"))
    if not rules and event.get("RDATE") is None:
        yield first
        return
    dtstart = datetime.combine(first, time())
    series = rruleset()
    series.rdate(dtstart)  # DTSTART is the first occurrence even when the rule would not produce it
    try:
        for rule in rules:
            series.rrule(rrulestr(_naive_rule(rule, zone), dtstart=dtstart))
    except ValueError as err:
        raise ApplicationError(f"Event {_summary(event)!r}: unreadable RRULE ({_short(str(err))}).") from err
    for value in _dates_of(event, "RDATE", zone):
        series.rdate(datetime.combine(value, time()))
    excluded = set(_dates_of(event, "EXDATE", zone))
    if event.get("RECURRENCE-ID") is None:
        excluded |= overridden.get(str(event.get("UID", "")), set())
    for value in excluded:
        series.exdate(datetime.combine(value, time()))
    for count, occurrence in enumerate(series, start=1):
        if occurrence.date() > until:
            return
        if count > MAX_OCCURRENCES_SCANNED:
            raise ApplicationError(f"Event {_summary(event)!r} repeats too often to expand (more than {MAX_OCCURRENCES_SCANNED}).")
        yield occurrence.date()


def _naive_rule(rule: vRecur, zone: ZoneInfo) -> str:
    """The rule as text for a date-only series: an UNTIL given as a UTC moment becomes its
    local date (dateutil refuses an aware UNTIL with a naive start)."""
    rule = vRecur(rule)
    if "UNTIL" in rule:
        rule["UNTIL"] = [_as_date(value, zone) for value in rule["UNTIL"]]
    return rule.to_ical().decode()


def _dates_of(event: Component, name: str, zone: ZoneInfo) -> Iterator[date]:
    for values in _as_list(event.get(name)):
        for value in values.dts:
            moment = value.dt[0] if isinstance(value.dt, tuple) else value.dt  # a PERIOD starts at its first item
            yield _as_date(moment, zone)


def _end(event: Component, zone: ZoneInfo) -> date:
    """The exclusive end day (icalendar derives it from DURATION, or DTSTART + 1 day)."""
    try:
        return _as_date(event.end, zone)
    except ValueError as err:  # icalendar's InvalidCalendar: a date DTSTART with a timed DTEND
        raise ApplicationError(f"Event {_summary(event)!r}: {_short(str(err))}") from err


def _as_date(value: date | datetime, zone: ZoneInfo) -> date:
    if isinstance(value, datetime):
        return (value.astimezone(zone) if value.tzinfo else value).date()
    return value


def _as_list(value: object) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _summary(event: Component) -> str:
    return str(event.get("SUMMARY", "")).strip()


def _start_text(event: Component) -> str:
    value = event.get("DTSTART")
    return value.to_ical().decode() if value is not None else ""


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

