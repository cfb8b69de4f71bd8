"""Reading a business calendar: is the team working at a moment, and when does it next start."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from tickets.models import BusinessCalendar

_LOOKAHEAD_DAYS = 370


def _hm(value: str) -> time:
    hours, _, minutes = value.partition(":")
    return time(int(hours), int(minutes or 0))


def _spans_on(calendar: BusinessCalendar, day: date, holidays: set[date]) -> list[tuple[datetime, datetime]]:
    """The working spans that start on `day` (local), as aware datetimes; none on a holiday."""
    if day in holidays:
        return []
    zone = ZoneInfo(calendar.time_zone)
    spans = []
    for interval in calendar.intervals:
        if int(interval["weekday"]) != day.weekday():
            continue
        start_t, end_t = _hm(interval["start"]), _hm(interval["end"])
        start = datetime.combine(day, start_t, tzinfo=zone)
        end_day = day if end_t > start_t else day + timedelta(days=1)
        end = datetime.combine(end_day, end_t, tzinfo=zone)
        spans.append((start, end))
    return sorted(spans)


def _holidays(calendar: BusinessCalendar) -> set[date]:
    return set(calendar.holidays.values_list("date", flat=True))


def is_open(calendar: BusinessCalendar, at: datetime) -> bool:
    holidays = _holidays(calendar)
    local = at.astimezone(ZoneInfo(calendar.time_zone)).date()
    # A span that began yesterday may run past midnight into today.
    for day in (local - timedelta(days=1), local):
        if any(start <= at < end for start, end in _spans_on(calendar, day, holidays)):
            return True
    return False


def next_opening(calendar: BusinessCalendar, at: datetime) -> datetime | None:
    """The start of the next working span after `at` (None for a calendar with no hours)."""
    if not calendar.intervals:
        return None
    holidays = _holidays(calendar)
    local = at.astimezone(ZoneInfo(calendar.time_zone)).date()
    for offset in range(_LOOKAHEAD_DAYS):
        for start, _end in _spans_on(calendar, local + timedelta(days=offset), holidays):
            if start > at:
                return start
    return None
