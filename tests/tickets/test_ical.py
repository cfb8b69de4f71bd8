"""iCal holiday import: the service, the `import_holidays` command and the admin upload page.

Fixtures are iCalendar text as feeds publish it (CRLF lines, DTSTAMP/UID, DTEND exclusive).
"""
from __future__ import annotations

import io
import sys
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.admin import AdminSite
from django.contrib.auth import views as auth_views
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import URLPattern, path, reverse

from conversations.services import ApplicationError
from tests.factories import UserFactory
from tickets.admin import BusinessCalendarAdmin
from tickets.calendars import business_seconds, working_hours
from tickets.ical import (
    MAX_HOLIDAY_DAYS,
    MAX_ICAL_BYTES,
    SKIP_CANCELLED,
    SKIP_OUTSIDE,
    SKIP_SUB_DAILY,
    SKIP_TIMED,
    holidays_import_ical,
)
from tickets.ical_admin import holidays_import_urls
from tickets.models import BusinessCalendar, Holiday

pytestmark = pytest.mark.django_db

BERLIN = ZoneInfo("Europe/Berlin")
YEAR_2026 = {"start": date(2026, 1, 1), "end": date(2026, 12, 31)}


def ics(*events: str) -> bytes:
    """A VCALENDAR around the events, with the CRLF line ends RFC 5545 asks for."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Desk tests//Feiertage//DE", "CALSCALE:GREGORIAN",
             "X-WR-CALNAME:Feiertage Berlin", "X-WR-TIMEZONE:Europe/Berlin"]
    for event in events:
        lines += event.strip().splitlines()
    lines.append("END:VCALENDAR")
    return ("\r\n".join(line.strip() for line in lines) + "\r\n").encode()


def all_day(uid: str, summary: str, start: str, end: str | None = None, extra: str = "") -> str:
    dtend = f"DTEND;VALUE=DATE:{end}\n" if end else ""
    return (f"BEGIN:VEVENT\nUID:{uid}\nDTSTAMP:20251101T120000Z\nDTSTART;VALUE=DATE:{start}\n{dtend}"
            f"SUMMARY:{summary}\nTRANSP:TRANSPARENT\n{extra}END:VEVENT")


# A public-holiday feed for Berlin, 2026, as the common German feeds publish it: one all-day
# event per holiday, DTEND the following day.
GERMAN_2026 = [
    ("20260101", "Neujahr"),
    ("20260403", "Karfreitag"),
    ("20260406", "Ostermontag"),
    ("20260501", "Tag der Arbeit"),
    ("20260514", "Christi Himmelfahrt"),
    ("20260525", "Pfingstmontag"),
    ("20261003", "Tag der Deutschen Einheit"),
    ("20261225", "1. Weihnachtstag"),
    ("20261226", "2. Weihnachtstag"),
]
MEETING = """
BEGIN:VEVENT
UID:standup-2026-05-13@desk.test
DTSTAMP:20251101T120000Z
DTSTART;TZID=Europe/Berlin:20260513T100000
DTEND;TZID=Europe/Berlin:20260513T103000
SUMMARY:Team-Meeting
END:VEVENT
"""


def next_day(value: str) -> str:
    return (date.fromisoformat(value) + timedelta(days=1)).strftime("%Y%m%d")


FEED = ics(*(all_day(f"{day}-{i}@feiertage.test", name, day, next_day(day)) for i, (day, name) in enumerate(GERMAN_2026)), MEETING)


@pytest.fixture
def office() -> BusinessCalendar:
    return BusinessCalendar.objects.create(
        name="Support Berlin",
        time_zone="Europe/Berlin",
        intervals=[{"weekday": d, "start": "09:00", "end": "17:00"} for d in range(5)],
    )


def holidays(calendar: BusinessCalendar) -> dict[date, str]:
    return dict(calendar.holidays.values_list("date", "name"))


class TestService:
    def test_public_holiday_feed_gives_one_holiday_per_day_and_skips_the_meeting(self, office: BusinessCalendar) -> None:
        result = holidays_import_ical(calendar=office, data=FEED, **YEAR_2026)

        assert holidays(office) == {date.fromisoformat(day): name for day, name in GERMAN_2026}
        assert (result.added, result.already_present) == (9, 0)
        assert [(s.summary, s.reason) for s in result.skipped] == [("Team-Meeting", SKIP_TIMED)]

    def test_importing_the_same_file_twice_adds_nothing_and_keeps_edited_names(self, office: BusinessCalendar) -> None:
        holidays_import_ical(calendar=office, data=FEED, **YEAR_2026)
        Holiday.objects.filter(calendar=office, date=date(2026, 12, 26)).update(name="Stephanstag")

        again = holidays_import_ical(calendar=office, data=FEED, **YEAR_2026)

        assert (again.added, again.already_present) == (0, 9)
        assert office.holidays.count() == 9
        assert holidays(office)[date(2026, 12, 26)] == "Stephanstag"

    def test_a_partly_known_file_adds_only_the_new_days(self, office: BusinessCalendar) -> None:
        Holiday.objects.create(calendar=office, date=date(2026, 1, 1), name="New Year")
        other = BusinessCalendar.objects.create(name="Support Lisbon", time_zone="Europe/Lisbon")
        Holiday.objects.create(calendar=other, date=date(2026, 4, 3))

        result = holidays_import_ical(calendar=office, data=FEED, **YEAR_2026)

        assert (result.added, result.already_present) == (8, 1)
        assert holidays(office)[date(2026, 1, 1)] == "New Year"
        assert other.holidays.count() == 1

    def test_multi_day_events_cover_every_day_before_the_exclusive_end(self, office: BusinessCalendar) -> None:
        data = ics(
            all_day("shutdown@desk.test", "Betriebsurlaub", "20261228", "20270102"),
            all_day("offsite@desk.test", "Offsite", "20260601", extra="DURATION:P2D\n"),
            all_day("one@desk.test", "Brückentag", "20260515"),  # no DTEND: one day
            all_day("same@desk.test", "Inventur", "20260302", "20260302"),  # DTEND = DTSTART: still that day
        )

        result = holidays_import_ical(calendar=office, data=data, start=date(2026, 1, 1), end=date(2027, 12, 31))

        assert sorted(holidays(office)) == [
            date(2026, 3, 2), date(2026, 5, 15), date(2026, 6, 1), date(2026, 6, 2),
            date(2026, 12, 28), date(2026, 12, 29), date(2026, 12, 30), date(2026, 12, 31), date(2027, 1, 1),
        ]
        assert result.added == 9

    def test_yearly_rrule_expands_within_the_window_with_exdate_and_a_moved_occurrence(self, office: BusinessCalendar) -> None:
        christmas = all_day("xmas@desk.test", "Weihnachten", "20191224", "20191227",
                            extra="RRULE:FREQ=YEARLY;UNTIL=20291223T230000Z\nEXDATE;VALUE=DATE:20261224\n")
        # The 2027 party moves from 2027-06-18 to 2027-06-25 (an override of that occurrence).
        party = all_day("party@desk.test", "Sommerfest", "20250618", "20250619", extra="RRULE:FREQ=YEARLY\n")
        moved = all_day("party@desk.test", "Sommerfest (verschoben)", "20270625", "20270626",
                        extra="RECURRENCE-ID;VALUE=DATE:20270618\n")

        result = holidays_import_ical(calendar=office, data=ics(christmas, party, moved), start=date(2025, 12, 25),
                                      end=date(2027, 12, 31))

        assert holidays(office) == {
            date(2025, 12, 25): "Weihnachten", date(2025, 12, 26): "Weihnachten",  # 12-24 is before the window
            # 2026-12-24 excluded by EXDATE: the whole occurrence (24-26) goes.
            date(2026, 6, 18): "Sommerfest",
            date(2027, 6, 25): "Sommerfest (verschoben)",
            date(2027, 12, 24): "Weihnachten", date(2027, 12, 25): "Weihnachten", date(2027, 12, 26): "Weihnachten",
        }
        assert result.added == 7

    def test_until_given_as_utc_midnight_keeps_its_local_last_day(self, office: BusinessCalendar) -> None:
        # 2029-12-24T23:00Z is 2029-12-25 in Berlin: the 2029 Christmas is the last one.
        rule = all_day("x@desk.test", "1. Weihnachtstag", "20251225", extra="RRULE:FREQ=YEARLY;UNTIL=20291224T230000Z\n")

        holidays_import_ical(calendar=office, data=ics(rule), start=date(2025, 1, 1), end=date(2035, 12, 31))

        assert sorted(holidays(office)) == [date(year, 12, 25) for year in range(2025, 2030)]

    def test_two_events_on_one_day_make_one_holiday_named_after_both(self, office: BusinessCalendar) -> None:
        data = ics(all_day("a@x", "Reformationstag", "20261031"), all_day("b@x", "Halloween", "20261031"),
                   all_day("c@x", "Halloween", "20261031"))

        result = holidays_import_ical(calendar=office, data=data, **YEAR_2026)

        assert holidays(office) == {date(2026, 10, 31): "Reformationstag / Halloween"}
        assert (result.added, result.already_present) == (1, 0)

    def test_skipped_events_carry_their_reason(self, office: BusinessCalendar) -> None:
        data = ics(
            MEETING,
            all_day("c@x", "Abgesagt", "20260707", extra="STATUS:CANCELLED\n"),
            all_day("h@x", "Stündlich", "20260708", extra="RRULE:FREQ=HOURLY;COUNT=3\n"),
            all_day("o@x", "Neujahr 2030", "20300101"),
            all_day("k@x", "Kept", "20260709"),
        )

        result = holidays_import_ical(calendar=office, data=data, **YEAR_2026)

        assert {s.summary: s.reason for s in result.skipped} == {
            "Team-Meeting": SKIP_TIMED, "Abgesagt": SKIP_CANCELLED, "Stündlich": SKIP_SUB_DAILY, "Neujahr 2030": SKIP_OUTSIDE,
        }
        assert result.skipped_by_reason()[SKIP_TIMED] == 1
        assert list(holidays(office)) == [date(2026, 7, 9)]

    def test_a_multi_day_event_across_the_window_start_is_clipped(self, office: BusinessCalendar) -> None:
        data = ics(all_day("s@x", "Betriebsurlaub", "20251229", "20260103"))

        holidays_import_ical(calendar=office, data=data, **YEAR_2026)

        assert sorted(holidays(office)) == [date(2026, 1, 1), date(2026, 1, 2)]

    def test_default_window_is_a_year_back_to_three_years_ahead_in_the_calendar_zone(self, office: BusinessCalendar) -> None:
        data = ics(all_day("d@x", "Jeden Monat", "20000101", extra="RRULE:FREQ=MONTHLY\n"))
        today = datetime.now(BERLIN).date()

        result = holidays_import_ical(calendar=office, data=data)

        days = sorted(holidays(office))
        assert (result.start, result.end) == (today - timedelta(days=366), today + timedelta(days=3 * 366))
        assert result.start <= days[0] < result.start + timedelta(days=31)
        assert result.end - timedelta(days=31) < days[-1] <= result.end
        assert len(days) in range(47, 50) and all(day.day == 1 for day in days)

    def test_long_summaries_are_cut_to_the_field(self, office: BusinessCalendar) -> None:
        holidays_import_ical(calendar=office, data=ics(all_day("l@x", "Feiertag " * 40, "20260101")), **YEAR_2026)

        assert len(holidays(office)[date(2026, 1, 1)]) == Holiday._meta.get_field("name").max_length

    @pytest.mark.parametrize(
        ("data", "reason"),
        [
            (b"Neujahr;2026-01-01\nKarfreitag;2026-04-03\n", "Not a valid iCalendar file"),
            (b"", "Not a valid iCalendar file"),
            (FEED[: len(FEED) // 2], "Not a valid iCalendar file"),  # cut off mid-way: no END:VCALENDAR
            (ics(all_day("a@x", "Gut", "20260101")).replace(b"BEGIN:VCALENDAR", b"BEGIN:VTODO").replace(b"END:VCALENDAR", b"END:VTODO"),
             "not a VCALENDAR"),
            (ics(all_day("a@x", "Gut", "20260101"), all_day("b@x", "Kaputt", "2026-13-45")), "'Kaputt': unreadable DTSTART"),
            (ics(all_day("a@x", "Gut", "20260101"), all_day("b@x", "Regel", "20260102", extra="RRULE:FREQ=SOMETIMES\n")),
             "'Regel': unreadable RRULE"),
            (ics(all_day("a@x", "Gut", "20260101"), "BEGIN:VEVENT\nUID:m@x\nDTSTART;VALUE=DATE:20260105\n"
                 "DTEND:20260105T120000Z\nSUMMARY:Gemischt\nEND:VEVENT"), "'Gemischt': DTSTART and DTEND must be of the same type"),
        ],
        ids=["csv", "empty", "truncated", "not-a-calendar", "bad-date", "bad-rule", "mixed-types"],
    )
    def test_a_malformed_file_raises_a_readable_reason_and_changes_nothing(self, office: BusinessCalendar, data: bytes,
                                                                          reason: str) -> None:
        with pytest.raises(ApplicationError, match=reason):
            holidays_import_ical(calendar=office, data=data, **YEAR_2026)
        assert office.holidays.count() == 0

    def test_an_oversize_file_is_refused(self, office: BusinessCalendar) -> None:
        padding = "".join(f"X-PADDING-{i}:{'x' * 60}\r\n" for i in range(MAX_ICAL_BYTES // 70))
        data = FEED.replace(b"CALSCALE:GREGORIAN\r\n", b"CALSCALE:GREGORIAN\r\n" + padding.encode())
        assert len(data) > MAX_ICAL_BYTES

        with pytest.raises(ApplicationError, match="larger than 2 MB"):
            holidays_import_ical(calendar=office, data=data, **YEAR_2026)
        assert office.holidays.count() == 0

    @pytest.mark.parametrize(
        "event",
        [all_day("d@x", "Täglich", "20000101", extra="RRULE:FREQ=DAILY\n"), all_day("e@x", "Ewig", "20000101", "20990101")],
        ids=["daily-rule", "decades-long"],
    )
    def test_too_many_days_are_refused_and_nothing_is_written(self, office: BusinessCalendar, event: str) -> None:
        with pytest.raises(ApplicationError, match=f"more than {MAX_HOLIDAY_DAYS} days"):
            holidays_import_ical(calendar=office, data=ics(all_day("a@x", "Gut", "20260101"), event),
                                 start=date(2010, 1, 1), end=date(2040, 12, 31))
        assert office.holidays.count() == 0

    def test_a_window_that_ends_before_it_starts_is_refused(self, office: BusinessCalendar) -> None:
        with pytest.raises(ApplicationError, match="ends"):
            holidays_import_ical(calendar=office, data=FEED, start=date(2026, 12, 31), end=date(2026, 1, 1))


class TestBusinessTime:
    def test_an_imported_holiday_takes_the_day_out_of_business_time(self, office: BusinessCalendar) -> None:
        ascension = (datetime(2026, 5, 14, tzinfo=BERLIN), datetime(2026, 5, 15, tzinfo=BERLIN))  # a Thursday
        friday = (datetime(2026, 5, 15, tzinfo=BERLIN), datetime(2026, 5, 16, tzinfo=BERLIN))
        assert business_seconds(working_hours(office), *ascension) == 8 * 3600

        holidays_import_ical(calendar=office, data=FEED, **YEAR_2026)

        hours = working_hours(office)
        assert business_seconds(hours, *ascension) == 0
        assert business_seconds(hours, *friday) == 8 * 3600
        # The week of Ascension: four working days left.
        assert business_seconds(hours, datetime(2026, 5, 11, tzinfo=BERLIN), datetime(2026, 5, 18, tzinfo=BERLIN)) == 4 * 8 * 3600


def run_command(*args: str, stdin: bytes | None = None, monkeypatch: pytest.MonkeyPatch | None = None) -> str:
    if stdin is not None:
        assert monkeypatch is not None
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    out = io.StringIO()
    call_command("import_holidays", *args, stdout=out)
    return out.getvalue()


class TestCommand:
    def test_imports_a_file_and_prints_the_counts(self, office: BusinessCalendar, tmp_path) -> None:
        feed = tmp_path / "feiertage.ics"
        feed.write_bytes(FEED)

        out = run_command("Support Berlin", str(feed), "--start", "2026-01-01", "--end", "2026-12-31")
        again = run_command("Support Berlin", str(feed), "--start", "2026-01-01", "--end", "2026-12-31")

        assert "added 9 holiday(s), 0 already present, skipped 1 event(s) (2026-01-01 to 2026-12-31)" in out
        assert f"skipped 1: {SKIP_TIMED}" in out
        assert "added 0 holiday(s), 9 already present" in again
        assert office.holidays.count() == 9

    def test_reads_standard_input_for_a_dash(self, office: BusinessCalendar, monkeypatch: pytest.MonkeyPatch) -> None:
        out = run_command("Support Berlin", "-", "--start", "2026-01-01", "--end", "2026-12-31", "-v", "2",
                          stdin=FEED, monkeypatch=monkeypatch)

        assert "added 9 holiday(s)" in out
        assert "20260513T100000 Team-Meeting: timed event" in out
        assert date(2026, 10, 3) in holidays(office)

    def test_an_unknown_calendar_fails_with_the_known_names(self, office: BusinessCalendar, tmp_path) -> None:
        feed = tmp_path / "feiertage.ics"
        feed.write_bytes(FEED)

        with pytest.raises(CommandError, match="No business calendar named 'Support Paris' \\(known: Support Berlin\\)") as error:
            run_command("Support Paris", str(feed))
        assert error.value.returncode != 0

    def test_bad_input_fails_with_the_reason_and_writes_nothing(self, office: BusinessCalendar,
                                                               monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
        with pytest.raises(CommandError, match="Not a valid iCalendar file") as error:
            run_command("Support Berlin", "-", stdin=b"<html>Not found</html>", monkeypatch=monkeypatch)
        assert error.value.returncode != 0
        with pytest.raises(CommandError, match="Cannot read .*missing.ics"):
            run_command("Support Berlin", str(tmp_path / "missing.ics"))
        with pytest.raises(CommandError, match="Error: argument --start: invalid fromisoformat value"):
            run_command("Support Berlin", "-", "--start", "next week")
        assert office.holidays.count() == 0


# The admin upload page, wired the way tickets/admin.py is to wire it (see tickets/ical_admin.py),
# on a site of its own so this test does not depend on that wiring having landed.
class WiredBusinessCalendarAdmin(BusinessCalendarAdmin):
    def get_urls(self) -> list[URLPattern]:
        return holidays_import_urls(self) + super().get_urls()


test_site = AdminSite(name="admin")
test_site.register(BusinessCalendar, WiredBusinessCalendarAdmin)
urlpatterns = [
    path("admin/", test_site.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),
]


def upload(name: str = "feiertage.ics", content: bytes = FEED) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="text/calendar")


@pytest.mark.urls(__name__)
class TestAdminUpload:
    @pytest.fixture
    def admin_client(self, client):
        client.force_login(UserFactory(username="boss", is_staff=True, is_superuser=True))
        return client

    def url(self, calendar: BusinessCalendar) -> str:
        return reverse("admin:tickets_businesscalendar_import_holidays", args=[calendar.pk])

    def test_the_change_form_links_to_the_upload_page(self, admin_client, office: BusinessCalendar) -> None:
        page = admin_client.get(reverse("admin:tickets_businesscalendar_change", args=[office.pk]))

        assert page.status_code == 200
        assert f'href="{self.url(office)}"' in page.content.decode()

    def test_upload_imports_and_returns_to_the_calendar_with_the_counts(self, admin_client, office: BusinessCalendar) -> None:
        form = admin_client.get(self.url(office))
        assert form.status_code == 200 and 'type="file"' in form.content.decode()

        response = admin_client.post(self.url(office), {"file": upload(), "start": "2026-01-01", "end": "2026-12-31"}, follow=True)

        assert response.redirect_chain == [(reverse("admin:tickets_businesscalendar_change", args=[office.pk]), 302)]
        assert "Imported holidays from 2026-01-01 to 2026-12-31: 9 added, 0 already present; events skipped: 1 timed event" in (
            response.content.decode())
        assert office.holidays.count() == 9

        again = admin_client.post(self.url(office), {"file": upload(), "start": "2026-01-01", "end": "2026-12-31"}, follow=True)
        assert "0 added, 9 already present" in again.content.decode()
        assert office.holidays.count() == 9

    def test_a_malformed_upload_shows_the_reason_and_changes_nothing(self, admin_client, office: BusinessCalendar) -> None:
        response = admin_client.post(self.url(office), {"file": upload("x.ics", b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n")})

        assert response.status_code == 200
        assert "Not a valid iCalendar file" in response.content.decode()
        assert office.holidays.count() == 0

    def test_an_oversize_upload_is_refused_before_parsing(self, admin_client, office: BusinessCalendar) -> None:
        response = admin_client.post(self.url(office), {"file": upload("big.ics", FEED + b" " * MAX_ICAL_BYTES)})

        assert response.status_code == 200
        assert "The file is larger than 2 MB." in response.content.decode()
        assert office.holidays.count() == 0

    def test_staff_without_the_change_permission_is_refused(self, client, office: BusinessCalendar) -> None:
        clerk = UserFactory(username="clerk", is_staff=True)
        clerk.user_permissions.add(Permission.objects.get(codename="view_businesscalendar"))
        client.force_login(clerk)

        assert client.post(self.url(office), {"file": upload()}).status_code == 403
        assert office.holidays.count() == 0

    def test_agents_who_are_not_staff_never_reach_the_page(self, client, office: BusinessCalendar) -> None:
        client.force_login(UserFactory(username="agent"))

        response = client.post(self.url(office), {"file": upload()})

        assert response.status_code == 302 and "login" in response["Location"]
        assert office.holidays.count() == 0

    def test_an_unknown_calendar_is_404(self, admin_client) -> None:
        assert admin_client.get(reverse("admin:tickets_businesscalendar_import_holidays", args=[999])).status_code == 404


def test_the_real_admin_change_form_still_renders(client, office: BusinessCalendar) -> None:
    """The template override must not break the page while the import URL is not wired in."""
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))

    page = client.get(reverse("admin:tickets_businesscalendar_change", args=[office.pk]))

    assert page.status_code == 200
    assert "Support Berlin" in page.content.decode()
