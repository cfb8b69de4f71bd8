"""Business-time arithmetic: hand-computed cases, then properties over time zones with DST,
holidays, intervals past midnight and leap days."""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tickets.calendars import (
    Interval,
    WorkingHours,
    business_deadline,
    business_seconds,
    is_open_at,
    next_opening_after,
)

BERLIN = ZoneInfo("Europe/Berlin")
HOUR = 3600


def weekdays(start: str, end: str, days: range = range(5)) -> tuple[Interval, ...]:
    s, e = time.fromisoformat(start), time.fromisoformat(end)
    return tuple(Interval(d, s, e) for d in days)


OFFICE = WorkingHours("Europe/Berlin", weekdays("09:00", "17:00"))
ALWAYS = WorkingHours("Europe/Berlin", weekdays("00:00", "00:00", range(7)))
NIGHTS = WorkingHours("Europe/Berlin", weekdays("22:00", "06:00", range(7)))
SPLIT = WorkingHours("Europe/Berlin", weekdays("08:00", "12:00") + weekdays("13:00", "17:00"))
CHRISTMAS = WorkingHours("Europe/Berlin", weekdays("09:00", "17:00"), frozenset({date(2026, 12, 24), date(2026, 12, 25)}))


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


# Hand-computed: (calendar, start, target seconds, expected deadline) -------------------
DEADLINES = [
    # Friday 16:00 + 2 business hours: one hour on Friday, one on Monday.
    (OFFICE, berlin(2026, 11, 20, 16, 0), 2 * HOUR, berlin(2026, 11, 23, 10, 0)),
    # Created on Saturday: the clock starts Monday 09:00.
    (OFFICE, berlin(2026, 11, 21, 11, 0), 1 * HOUR, berlin(2026, 11, 23, 10, 0)),
    # Exactly at closing: the next morning.
    (OFFICE, berlin(2026, 11, 23, 17, 0), 30 * 60, berlin(2026, 11, 24, 9, 30)),
    # A target that ends exactly at closing time is due at closing, not the next morning.
    (OFFICE, berlin(2026, 11, 23, 9, 0), 8 * HOUR, berlin(2026, 11, 23, 17, 0)),
    # Split shift: the lunch hour does not count.
    (SPLIT, berlin(2026, 11, 23, 11, 0), 2 * HOUR, berlin(2026, 11, 23, 14, 0)),
    # Christmas Eve and Day (Thu, Fri) are holidays: Wednesday 16:00 + 2 h → Monday 10:00.
    (CHRISTMAS, berlin(2026, 12, 23, 16, 0), 2 * HOUR, berlin(2026, 12, 28, 10, 0)),
    # Night shift past midnight: 05:00 + 2 h = one hour until 06:00, one from 22:00.
    (NIGHTS, berlin(2026, 11, 24, 5, 0), 2 * HOUR, berlin(2026, 11, 24, 23, 0)),
    # Round the clock across the spring-forward night: 8 real hours from midnight is 09:00.
    (ALWAYS, berlin(2026, 3, 29, 0, 0), 8 * HOUR, berlin(2026, 3, 29, 9, 0)),
    # ... and across the fall-back night: 8 real hours from midnight is 07:00.
    (ALWAYS, berlin(2026, 10, 25, 0, 0), 8 * HOUR, berlin(2026, 10, 25, 7, 0)),
    # Leap day is a working Thursday in 2024.
    (OFFICE, berlin(2024, 2, 28, 16, 0), 2 * HOUR, berlin(2024, 2, 29, 10, 0)),
    # A zero target is due at once, even outside hours.
    (OFFICE, berlin(2026, 11, 21, 11, 0), 0, berlin(2026, 11, 21, 11, 0)),
]


@pytest.mark.parametrize(("hours", "start", "target", "expected"), DEADLINES)
def test_hand_computed_deadlines(hours, start, target, expected):
    assert business_deadline(hours, start, target) == expected
    if target:
        assert business_seconds(hours, start, expected) == target


def test_night_shift_over_a_dst_change_counts_real_time():
    # 22:00 → 06:00 across the fall-back night lasts nine real hours.
    assert business_seconds(NIGHTS, berlin(2026, 10, 24, 21, 0), berlin(2026, 10, 25, 7, 0)) == 9 * HOUR
    # ... and seven across spring-forward.
    assert business_seconds(NIGHTS, berlin(2026, 3, 28, 21, 0), berlin(2026, 3, 29, 7, 0)) == 7 * HOUR


def test_open_and_next_opening():
    assert is_open_at(OFFICE, berlin(2026, 11, 23, 9, 0))
    assert not is_open_at(OFFICE, berlin(2026, 11, 23, 17, 0))
    assert is_open_at(NIGHTS, berlin(2026, 11, 24, 2, 0))  # the span began the evening before
    assert next_opening_after(OFFICE, berlin(2026, 11, 20, 18, 0)) == berlin(2026, 11, 23, 9, 0)
    assert next_opening_after(CHRISTMAS, berlin(2026, 12, 23, 18, 0)) == berlin(2026, 12, 28, 9, 0)


def test_a_calendar_without_hours_never_reaches_a_deadline():
    empty = WorkingHours("UTC", ())
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert business_deadline(empty, start, 60) is None
    assert business_seconds(empty, start, start + timedelta(days=30)) == 0
    assert next_opening_after(empty, start) is None


# Properties ---------------------------------------------------------------------------

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "America/Santiago"]
MINUTES = st.integers(0, 24 * 60 - 1).map(lambda m: time(m // 60, m % 60))


@st.composite
def working_hours(draw: st.DrawFn) -> WorkingHours:
    intervals = draw(st.lists(st.builds(Interval, st.integers(0, 6), MINUTES, MINUTES), min_size=1, max_size=6))
    holidays = draw(st.frozensets(st.dates(date(2023, 12, 1), date(2029, 3, 31)), max_size=20))
    return WorkingHours(draw(st.sampled_from(ZONES)), tuple(intervals), holidays)


# Moments in 2024-2028: two leap days and every DST change of those years in these zones.
MOMENTS = st.datetimes(datetime(2024, 1, 1), datetime(2028, 12, 31)).map(lambda d: d.replace(tzinfo=UTC))
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(working_hours(), MOMENTS, st.integers(0, 40 * 24 * HOUR), st.integers(0, 40 * 24 * HOUR))
def test_business_time_adds_up(hours, a, first, second):
    b, c = a + timedelta(seconds=first), a + timedelta(seconds=first + second)
    whole = business_seconds(hours, a, c)
    # Sums of float seconds with microseconds differ in the last bits: compare to 1 µs.
    assert whole == pytest.approx(business_seconds(hours, a, b) + business_seconds(hours, b, c), abs=1e-6)
    assert 0 <= whole <= (c - a).total_seconds()


@PROPERTY
@given(working_hours(), MOMENTS, st.integers(1, 30 * 24 * HOUR))
def test_the_deadline_is_where_the_target_is_used_up(hours, start, target):
    deadline = business_deadline(hours, start, target)
    if deadline is None:  # holidays or tiny intervals all the way: nothing accumulates that much
        assert business_seconds(hours, start, start + timedelta(days=366)) < target
        return
    assert business_seconds(hours, start, deadline) == target
    # Nothing earlier would do: a microsecond before, the target is not yet used up.
    assert business_seconds(hours, start, deadline - timedelta(microseconds=1)) < target


@PROPERTY
@given(working_hours(), MOMENTS, st.integers(1, 10 * 24 * HOUR), st.integers(1, 10 * 24 * HOUR))
def test_a_longer_target_is_never_due_earlier(hours, start, one, other):
    early, late = business_deadline(hours, start, min(one, other)), business_deadline(hours, start, max(one, other))
    if early is not None and late is not None:
        assert early <= late


@PROPERTY
@given(st.sampled_from(ZONES), MOMENTS, st.integers(0, 60 * 24 * HOUR))
def test_round_the_clock_is_real_time_through_dst(zone, start, seconds):
    always = WorkingHours(zone, weekdays("00:00", "00:00", range(7)))
    end = start + timedelta(seconds=seconds)
    assert business_seconds(always, start, end) == seconds
    assert business_deadline(always, start, seconds) == end


@PROPERTY
@given(working_hours(), MOMENTS)
def test_open_means_the_next_moment_counts(hours, at):
    assert is_open_at(hours, at) == (business_seconds(hours, at, at + timedelta(microseconds=1)) > 0)
    opening = next_opening_after(hours, at)
    if opening is not None:
        assert opening > at and is_open_at(hours, opening)
        # Closed until the opening, unless we are inside an earlier span right now.
        assert is_open_at(hours, at) or business_seconds(hours, at, opening) == 0


@PROPERTY
@given(working_hours(), MOMENTS)
def test_a_holiday_has_no_span_starting_on_it(hours, at):
    local_day = at.astimezone(hours.zone).date()
    closed = WorkingHours(hours.time_zone, hours.intervals, hours.holidays | {local_day})
    # Adding a holiday can only take working time away.
    window_end = at + timedelta(days=3)
    assert business_seconds(closed, at, window_end) <= business_seconds(hours, at, window_end)
