"""The manager's reports (tickets/reports.py) over hand-built ReportFact rows: selectors, the
page, the CSV export and the API. Query budgets are pinned with the queries listed."""
from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from helpdesk.roles import MANAGERS_GROUP
from tests.clients import api_client_for
from tests.factories import InboxFactory, TeamFactory, TicketFactory, UserFactory
from tickets import reports
from tickets.models import ReportFact, Ticket
from tickets.reports import ReportFilter, percentile

pytestmark = pytest.mark.django_db

BERLIN = ZoneInfo("Europe/Berlin")
K = ReportFact.Kind


def at(text: str, tz=UTC) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=tz)


def fact(ticket: Ticket, kind: str, when: datetime, **values: object) -> ReportFact:
    """A fact as the desk writes it: the ticket's inbox, email, normal priority unless given."""
    values.setdefault("inbox_id", ticket.conversation.inbox_id)
    values.setdefault("channel", "email")
    values.setdefault("priority", "normal")
    if kind == K.CREATED:  # the ticket was created then too (auto_now_add set it to now)
        Ticket.objects.filter(pk=ticket.pk).update(created_at=when)
    return ReportFact.objects.create(ticket=ticket, kind=kind, at=when, **values)


def manager(**kwargs: object):
    user = UserFactory(**kwargs)
    user.groups.add(Group.objects.get_or_create(name=MANAGERS_GROUP)[0])
    return user


def june(**kwargs: object) -> ReportFilter:
    return ReportFilter(start=date(2026, 6, 1), end=date(2026, 6, 30), **kwargs)


# --- Percentiles --------------------------------------------------------------------------


def test_percentile_is_nearest_rank():
    ten = list(range(1, 11))
    assert percentile(ten, 50) == 5 and percentile(ten, 90) == 9 and percentile(ten, 100) == 10
    assert percentile(ten, 1) == 1
    assert percentile([10, 20, 30, 40], 50) == 20  # the lower middle value, never an average
    assert percentile([7], 90) == 7
    assert percentile([], 50) is None
    # ceil(0.9 * 11) = 10: the 10th value; a float computation would also say 10, but
    # ceil(0.5 * 3) = 2 needs no rounding either way.
    assert percentile(list(range(11)), 90) == 9
    assert percentile([1, 2, 3], 50) == 2


def test_mean_rounds_to_a_tenth():
    assert reports.mean([1, 2]) == 1.5
    assert reports.mean([1, 1, 2]) == 1.3
    assert reports.mean([]) is None


# --- Response times -----------------------------------------------------------------------


def test_response_times_count_median_p90_mean_per_variant(django_assert_num_queries):
    tickets = TicketFactory.create_batch(5)
    for ticket, (cal, biz) in zip(tickets, [(60, 30), (120, 60), (180, 90), (600, 0), (3600, 1800)]):
        fact(ticket, K.FIRST_RESPONSE, at("2026-06-10T10:00"), calendar_seconds=cal, business_seconds=biz)
    fact(tickets[0], K.NEXT_RESPONSE, at("2026-06-11T10:00"), calendar_seconds=100, business_seconds=50)
    fact(tickets[0], K.NEXT_RESPONSE, at("2026-06-12T10:00"), calendar_seconds=300, business_seconds=None)
    fact(tickets[1], K.RESOLUTION, at("2026-06-12T10:00"), calendar_seconds=7200, business_seconds=3600)
    # Outside the range: not counted.
    fact(tickets[2], K.NEXT_RESPONSE, at("2026-07-01T00:00"), calendar_seconds=9999, business_seconds=9999)
    fact(tickets[3], K.NEXT_RESPONSE, at("2026-05-31T23:59:59"), calendar_seconds=9999, business_seconds=9999)

    # One query per metric: first_response, next_response, resolution facts in range.
    with django_assert_num_queries(3):
        first, following, resolution = reports.response_times(june())

    assert (first.metric, first.calendar) == ("first_response", reports.Distribution(count=5, median=180, p90=3600, mean=912.0))
    assert first.business == reports.Distribution(count=5, median=60, p90=1800, mean=396.0)
    assert following.calendar == reports.Distribution(count=2, median=100, p90=300, mean=200.0)
    assert following.business == reports.Distribution(count=1, median=50, p90=50, mean=50.0)
    assert resolution.calendar == reports.Distribution(count=1, median=7200, p90=7200, mean=7200.0)


def test_response_times_follow_the_dimension_filters():
    inbox = InboxFactory()
    alice, bob = UserFactory(), UserFactory()
    team = TeamFactory()
    t1, t2 = TicketFactory(conversation__inbox=inbox), TicketFactory()
    fact(t1, K.FIRST_RESPONSE, at("2026-06-10T10:00"), calendar_seconds=10, business_seconds=10, agent=alice,
         team=team, priority="high", channel="sms")
    fact(t2, K.FIRST_RESPONSE, at("2026-06-10T10:00"), calendar_seconds=20, business_seconds=20, agent=bob)
    medians = lambda **kw: reports.response_times(june(**kw))[0].calendar.median
    assert medians() == 10
    assert medians(agent_id=bob.pk) == 20
    assert medians(inbox_id=inbox.pk) == 10
    assert medians(team_id=team.pk) == 10
    assert medians(priority="normal") == 20
    assert medians(channel="sms") == 10
    assert medians(channel="webchat") is None


# --- SLA, CSAT, volume, agents --------------------------------------------------------------


def test_sla_attainment_per_metric(django_assert_num_queries):
    t = TicketFactory()
    for breached in (False, False, False, True):
        fact(t, K.SLA, at("2026-06-02T08:00"), metric="first_response", breached=breached)
    fact(t, K.SLA, at("2026-06-02T08:00"), metric="resolution", breached=True)
    fact(t, K.SLA, at("2026-07-02T08:00"), metric="resolution", breached=False)  # later: not in June

    # One query: sla facts in range grouped by metric.
    with django_assert_num_queries(1):
        rows = {r.metric: r for r in reports.sla_attainment(june())}

    assert (rows["first_response"].achieved, rows["first_response"].breached, rows["first_response"].percent) == (3, 1, 75.0)
    assert (rows["resolution"].achieved, rows["resolution"].breached, rows["resolution"].percent) == (0, 1, 0.0)
    assert rows["next_response"].percent is None and rows["periodic_update"].total == 0


def test_csat_summary(django_assert_num_queries):
    for rating in (5, 5, 4, 3, 1, 2, 5):
        fact(TicketFactory(), K.CSAT, at("2026-06-20T12:00"), rating=rating)
    fact(TicketFactory(), K.CSAT, at("2026-05-20T12:00"), rating=1)

    # One query: csat facts in range grouped by rating.
    with django_assert_num_queries(1):
        summary = reports.csat(june())

    assert summary.count == 7
    assert summary.distribution == {1: 1, 2: 1, 3: 1, 4: 1, 5: 3}
    assert summary.average == 3.57  # 25 / 7
    assert summary.satisfied_percent == 57.1  # 4 of 7


def test_volume_by_channel_inbox_team_and_agent(django_assert_num_queries):
    billing, sales = InboxFactory(name="Billing"), InboxFactory(name="Sales")
    team = TeamFactory(name="Tier 2")
    alice = UserFactory(first_name="Alice", last_name="A")
    tickets = [TicketFactory(conversation__inbox=billing) for _ in range(3)] + [TicketFactory(conversation__inbox=sales)]
    fact(tickets[0], K.CREATED, at("2026-06-03T09:00"), channel="email")
    fact(tickets[1], K.CREATED, at("2026-06-03T09:00"), channel="sms")
    fact(tickets[2], K.CREATED, at("2026-06-03T09:00"), channel="sms")
    fact(tickets[3], K.CREATED, at("2026-06-03T09:00"), channel="webchat")
    fact(tickets[0], K.SOLVED, at("2026-06-04T09:00"), channel="email", team=team, agent=alice)
    fact(tickets[3], K.SOLVED, at("2026-06-04T09:00"), channel="webchat", agent=alice)
    fact(tickets[3], K.REPLY, at("2026-06-04T09:00"), channel="webchat", agent=alice)  # not volume

    # Created and solved facts grouped by kind, channel, inbox, team and agent ids; then the
    # names of the inboxes, the teams and the agents seen.
    with django_assert_num_queries(4):
        v = reports.volume(june())

    assert (v.created, v.solved) == (4, 2)
    by = lambda rows: {r.label: (r.created, r.solved) for r in rows}
    assert by(v.by_channel) == {"SMS": (2, 0), "Email": (1, 1), "Web chat": (1, 1)}
    assert v.by_channel[0].key == "sms"  # most created first
    assert by(v.by_inbox) == {"Billing": (3, 1), "Sales": (1, 1)}
    assert by(v.by_team) == {"No team": (4, 1), "Tier 2": (0, 1)}
    assert by(v.by_agent) == {"Nobody": (4, 0), "Alice A": (0, 2)}


def test_agent_activity(django_assert_num_queries):
    alice, bob = UserFactory(first_name="Alice", last_name=""), UserFactory(first_name="Bob", last_name="")
    t1, t2 = TicketFactory(), TicketFactory()
    for _ in range(3):
        fact(t1, K.REPLY, at("2026-06-05T10:00"), agent=alice)
    fact(t1, K.FIRST_RESPONSE, at("2026-06-05T10:00"), agent=alice, calendar_seconds=5, business_seconds=5)
    fact(t1, K.SOLVED, at("2026-06-05T11:00"), agent=alice)
    fact(t1, K.CSAT, at("2026-06-06T11:00"), agent=alice, rating=4)
    fact(t2, K.REPLY, at("2026-06-05T10:00"), agent=bob)
    fact(t2, K.REPLY, at("2026-06-05T10:00"))  # no agent: not listed

    # Reply, solved, first_response and csat facts grouped by agent; the agents' names.
    with django_assert_num_queries(2):
        rows = reports.agent_activity(june())

    assert [(r.name, r.replies, r.solved, r.first_responses, r.csat_count, r.csat_average) for r in rows] == [
        ("Alice", 3, 1, 1, 1, 4.0), ("Bob", 1, 0, 0, 0, None)]


# --- Heatmap and backlog: time zones --------------------------------------------------------


def test_heatmap_counts_created_per_local_hour_of_week(django_assert_num_queries):
    t = TicketFactory
    # 2026-03-29 is a Sunday; Berlin jumps from 02:00 CET to 03:00 CEST at 01:00 UTC.
    fact(t(), K.CREATED, at("2026-03-28T23:30"))  # Berlin: Sun 00:30; UTC: Sat 23:30
    fact(t(), K.CREATED, at("2026-03-29T00:30"))  # Berlin: Sun 01:30 (CET)
    fact(t(), K.CREATED, at("2026-03-29T01:30"))  # Berlin: Sun 03:30 (CEST: no 02:xx that night)
    fact(t(), K.CREATED, at("2026-03-29T22:15"))  # Berlin: Mon 00:15; UTC: Sun 22:15
    fact(t(), K.REPLY, at("2026-03-29T12:00"))  # not a creation

    berlin = ReportFilter(start=date(2026, 3, 29), end=date(2026, 3, 30), tz=BERLIN)
    # One query: created facts in range grouped by local ISO weekday and hour.
    with django_assert_num_queries(1):
        local = reports.heatmap(berlin)
    sun, mon = 6, 0
    assert local.total == 4 and local.max == 1
    assert [local.cells[sun][h] for h in (0, 1, 2, 3)] == [1, 1, 0, 1]
    assert local.cells[mon][0] == 1

    utc = reports.heatmap(ReportFilter(start=date(2026, 3, 29), end=date(2026, 3, 30)))  # settings.TIME_ZONE
    assert utc.total == 3  # Saturday 23:30 UTC falls before the range
    assert [utc.cells[sun][h] for h in (0, 1, 22)] == [1, 1, 1]
    assert sum(map(sum, utc.cells)) == 3


def test_heatmap_in_autumn_puts_both_local_one_oclocks_in_the_same_hour():
    # 2026-10-25 Berlin: 03:00 CEST becomes 02:00 CET at 01:00 UTC, so 02:xx happens twice.
    fact(TicketFactory(), K.CREATED, at("2026-10-25T00:30"))  # 02:30 CEST
    fact(TicketFactory(), K.CREATED, at("2026-10-25T01:30"))  # 02:30 CET
    h = reports.heatmap(ReportFilter(start=date(2026, 10, 25), end=date(2026, 10, 25), tz=BERLIN))
    assert h.cells[6][2] == 2 and h.total == 2


def test_backlog_opening_value_and_daily_levels(django_assert_num_queries):
    t = [TicketFactory() for _ in range(6)]
    # Before the range: 4 created, 1 solved, 1 reopened, 1 merged -> 3 open on June 1st.
    for ticket in t[:4]:
        fact(ticket, K.CREATED, at("2026-05-20T10:00"))
    fact(t[0], K.SOLVED, at("2026-05-21T10:00"))
    fact(t[0], K.REOPENED, at("2026-05-22T10:00"))
    fact(t[1], K.MERGED, at("2026-05-23T10:00"))
    # In range.
    fact(t[4], K.CREATED, at("2026-06-01T08:00"))
    fact(t[5], K.CREATED, at("2026-06-01T09:00"))
    fact(t[2], K.SOLVED, at("2026-06-02T10:00"))
    fact(t[3], K.SOLVED, at("2026-06-03T10:00"))
    fact(t[3], K.REOPENED, at("2026-06-03T12:00"))
    fact(t[4], K.REPLY, at("2026-06-03T12:00"))  # replies do not move the backlog
    fact(t[0], K.SOLVED, at("2026-06-05T10:00"))  # after the range

    f = ReportFilter(start=date(2026, 6, 1), end=date(2026, 6, 4))
    # Two queries: the aggregate before the range, then the range's facts grouped by local day and kind.
    with django_assert_num_queries(2):
        b = reports.backlog(f)

    assert b.opening == 3
    assert [(d.day.day, d.created, d.solved, d.reopened, d.backlog) for d in b.days] == [
        (1, 2, 0, 0, 5), (2, 0, 1, 0, 4), (3, 0, 1, 1, 4), (4, 0, 0, 0, 4)]


def test_backlog_days_are_local_days_across_a_dst_change():
    t1, t2, t3 = TicketFactory(), TicketFactory(), TicketFactory()
    fact(t1, K.CREATED, at("2026-03-27T22:30"))  # Berlin: Fri 23:30 (CET) / UTC: Fri
    fact(t2, K.CREATED, at("2026-03-27T23:30"))  # Berlin: Sat 00:30 / UTC: Fri
    fact(t1, K.SOLVED, at("2026-03-29T21:30"))  # Berlin: Sun 23:30 (CEST, a 23-hour day) / UTC: Sun
    fact(t3, K.CREATED, at("2026-03-29T22:30"))  # Berlin: Mon 00:30 / UTC: Sun

    berlin = reports.backlog(ReportFilter(start=date(2026, 3, 28), end=date(2026, 3, 30), tz=BERLIN))
    assert berlin.opening == 1  # t1, created on Friday evening Berlin time
    assert [(d.day.isoformat(), d.created, d.solved, d.backlog) for d in berlin.days] == [
        ("2026-03-28", 1, 0, 2), ("2026-03-29", 0, 1, 1), ("2026-03-30", 1, 0, 2)]

    utc = reports.backlog(ReportFilter(start=date(2026, 3, 28), end=date(2026, 3, 30)))
    assert utc.opening == 2
    assert [(d.day.isoformat(), d.created, d.solved, d.backlog) for d in utc.days] == [
        ("2026-03-28", 0, 0, 2), ("2026-03-29", 1, 1, 2), ("2026-03-30", 0, 0, 2)]


def test_filter_refuses_an_inverted_or_overlong_range():
    with pytest.raises(ValueError, match="before the start"):
        ReportFilter(start=date(2026, 6, 2), end=date(2026, 6, 1))
    with pytest.raises(ValueError, match="at most"):
        ReportFilter(start=date(2020, 1, 1), end=date(2026, 1, 1))
    f = ReportFilter(start=date(2026, 6, 1), end=date(2026, 6, 1), tz=BERLIN)
    assert (f.since, f.until) == (at("2026-06-01T00:00", BERLIN), at("2026-06-02T00:00", BERLIN))


# --- A desk's month: page, CSV and API agree ---------------------------------------------------


@pytest.fixture
def month():
    """Facts of a small month across two inboxes, three channels and two agents."""
    billing, sales = InboxFactory(name="Billing"), InboxFactory(name="Sales")
    alice = UserFactory(username="alice", first_name="Alice", last_name="Agent")
    bob = UserFactory(username="bob", first_name="Bob", last_name="Agent")
    team = TeamFactory(name="Tier 1")
    plan = [  # inbox, channel, first response s, solved, sla breached, csat
        (billing, "email", 300, True, False, 5),
        (billing, "email", 900, True, True, 2),
        (billing, "sms", 60, False, False, None),
        (sales, "webchat", 30, True, False, 4),
        (sales, "webchat", None, False, None, None),
        (sales, "email", 7200, True, True, 5),
    ]
    tickets = []
    for n, (inbox, channel, first, solved, breached, rating) in enumerate(plan):
        ticket = TicketFactory(conversation__inbox=inbox, assignee=alice if n % 2 else bob, team=team)
        tickets.append(ticket)
        agent = alice if n % 2 else bob
        created = at(f"2026-06-{n + 2:02d}T{8 + n:02d}:15")
        dims = {"inbox_id": inbox.pk, "channel": channel}
        fact(ticket, K.CREATED, created, **dims)
        if first is not None:
            fact(ticket, K.REPLY, created + timedelta(seconds=first), agent=agent, **dims)
            fact(ticket, K.FIRST_RESPONSE, created + timedelta(seconds=first), agent=agent, calendar_seconds=first,
                 business_seconds=first // 2, **dims)
            fact(ticket, K.SLA, created + timedelta(seconds=first), metric="first_response", breached=breached, **dims)
        if solved:
            fact(ticket, K.NEXT_RESPONSE, created + timedelta(hours=3), agent=agent, calendar_seconds=600 + n,
                 business_seconds=300, **dims)
            fact(ticket, K.SOLVED, created + timedelta(hours=5), agent=agent, team=team, **dims)
            fact(ticket, K.RESOLUTION, created + timedelta(hours=5), agent=agent, team=team, calendar_seconds=18000,
                 business_seconds=9000, **dims)
        if rating:
            fact(ticket, K.CSAT, created + timedelta(days=1), agent=agent, rating=rating, **dims)
    # A conversation from May solved in June: in the CSV (a fact in range), not in "created".
    old = TicketFactory(conversation__inbox=billing)
    fact(old, K.CREATED, at("2026-05-30T10:00"), inbox_id=billing.pk)
    fact(old, K.SOLVED, at("2026-06-01T10:00"), inbox_id=billing.pk, agent=alice)
    return {"tickets": tickets, "old": old, "alice": alice, "bob": bob, "billing": billing, "sales": sales}


JUNE = {"start": "2026-06-01", "end": "2026-06-30"}


def figures(html: str) -> dict[str, str]:
    found = {}
    for match in re.finditer(r'data-figure="([^"]+)"(?: data-seconds="([^"]*)")?>([^<]*)<', html):
        name, seconds, text = match.groups()
        found[name] = seconds if seconds is not None else text.strip()
    return found


def csv_rows(content: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(content.decode())))


def nearest_rank_median(values: list[int]) -> int:
    ordered = sorted(values)
    return ordered[-(-len(ordered) // 2) - 1]  # rank ceil(n / 2)


def test_page_shows_the_month_and_the_csv_totals_equal_its_figures(month, django_assert_num_queries):
    client = api_client_for(manager())
    # Session, user, the user's Managers group; the filter choices (inboxes, teams, users);
    # the reports: response times (3), SLA (1), volume (1 + inbox, team and agent names),
    # heatmap (1), backlog (2), agents (1 + names), CSAT (1).
    with django_assert_num_queries(20):
        response = client.get(reverse("reports"), JUNE)
    assert response.status_code == 200
    assert response["Content-Security-Policy"].startswith("default-src 'self'")
    page = figures(response.content.decode())
    assert page["created"] == "6" and page["solved"] == "5"
    assert page["first_response.calendar.count"] == "5" and page["first_response.calendar.median"] == "300"
    assert page["sla.first_response.achieved"] == "3" and page["sla.first_response.breached"] == "2"
    assert page["csat.count"] == "4" and page["csat.average"] == "4.0"
    assert page["backlog.opening"] == "1"

    export = client.get(reverse("reports-export"), JUNE)
    assert export.status_code == 200 and export["Content-Type"].startswith("text/csv")
    rows = csv_rows(export.content)
    assert [int(r["ticket_id"]) for r in rows] == sorted([t.pk for t in month["tickets"]] + [month["old"].pk])
    total = lambda column: sum(int(r[column] or 0) for r in rows)
    firsts = [int(r["first_response_seconds"]) for r in rows if r["first_response_seconds"]]
    ratings = [int(r["csat_rating"]) for r in rows if r["csat_rating"]]
    assert str(total("created")) == page["created"]
    assert str(total("solved")) == page["solved"]
    assert str(len(firsts)) == page["first_response.calendar.count"]
    assert str(nearest_rank_median(firsts)) == page["first_response.calendar.median"]
    assert str(total("sla_first_response_achieved")) == page["sla.first_response.achieved"]
    assert str(total("sla_first_response_breached")) == page["sla.first_response.breached"]
    assert str(len(ratings)) == page["csat.count"]
    assert str(round(sum(ratings) / len(ratings), 2)) == page["csat.average"]
    old = next(r for r in rows if int(r["ticket_id"]) == month["old"].pk)
    assert (old["created"], old["solved"], old["created_at"], old["inbox"]) == ("0", "1", "2026-05-30T10:00:00+00:00", "Billing")
    first = next(r for r in rows if int(r["ticket_id"]) == month["tickets"][0].pk)
    assert (first["channel"], first["assignee"], first["next_responses"], first["next_response_seconds"],
            first["resolution_seconds"], first["csat_rating"]) == ("email", "bob", "1", "600", "18000", "5")


def test_page_and_csv_follow_the_filters(month):
    client = api_client_for(manager())
    query = {**JUNE, "inbox": month["sales"].pk, "channel": "webchat"}
    page = figures(client.get(reverse("reports"), query).content.decode())
    assert page["created"] == "2" and page["first_response.calendar.median"] == "30"
    rows = csv_rows(client.get(reverse("reports-export"), query).content)
    assert sorted(int(r["ticket_id"]) for r in rows) == sorted(t.pk for t in month["tickets"][3:5])


def test_page_in_another_time_zone_moves_the_range(month):
    client = api_client_for(manager())
    # June 2 08:15 UTC is the first creation; a range ending June 2 in Tokyo (UTC+9) ends at 15:00 UTC.
    page = figures(client.get(reverse("reports"), {"start": "2026-06-02", "end": "2026-06-02", "tz": "Asia/Tokyo"}).content.decode())
    assert page["created"] == "1"
    page = figures(client.get(reverse("reports"), {"start": "2026-06-02", "end": "2026-06-02", "tz": "Pacific/Honolulu"}).content.decode())
    assert page["created"] == "1"  # 08:15 UTC is June 1 22:15 in Honolulu, 09:15 UTC June 3 is June 2 23:15
    rows = csv_rows(client.get(reverse("reports-export"), {"start": "2026-06-02", "end": "2026-06-02",
                                                          "tz": "Pacific/Honolulu"}).content)
    created = [r for r in rows if r["created"] == "1"]
    assert [r["created_at"] for r in created] == ["2026-06-02T23:15:00-10:00"]


def test_agents_get_403_and_anonymous_users_the_login_page(month):
    agent = api_client_for(UserFactory())
    assert agent.get(reverse("reports")).status_code == 403
    assert agent.get(reverse("reports-export")).status_code == 403
    for name in ("api-report-response-times", "api-report-backlog", "api-report-csat"):
        assert agent.get(reverse(name)).status_code == 403
    from django.test import Client

    anonymous = Client().get(reverse("reports"))
    assert anonymous.status_code == 302 and anonymous["Location"].startswith(reverse("login"))


def test_bad_filters_answer_400_with_the_reason():
    client = api_client_for(manager())
    page = client.get(reverse("reports"), {"start": "2026-06-10", "end": "2026-06-01"})
    assert page.status_code == 400 and b"before the start date" in page.content
    export = client.get(reverse("reports-export"), {"start": "yesterday"})
    assert export.status_code == 400 and b"start" in export.content
    api = client.get(reverse("api-report-volume"), {"tz": "Mars/Olympus", "channel": "pigeon", "inbox": "0"})
    assert api.status_code == 400
    body = api.json()
    assert set(body) == {"tz", "channel", "inbox"} and "Unknown time zone" in body["tz"][0]
    long = client.get(reverse("api-report-backlog"), {"start": "2020-01-01", "end": "2026-01-01"})
    assert long.status_code == 400 and "at most 731 days" in long.json()["end"][0]


def test_each_report_in_the_api(month):
    client = api_client_for(manager())

    def get(name: str, **extra: object) -> dict:
        response = client.get(reverse(name), {**JUNE, **extra})
        assert response.status_code == 200, response.content
        return response.json()

    times = get("api-report-response-times")
    assert times["range"] == {"start": "2026-06-01", "end": "2026-06-30", "tz": "UTC"}
    first = times["metrics"][0]
    assert first["metric"] == "first_response"
    assert first["calendar"] == {"count": 5, "median": 300, "p90": 7200, "mean": 1698.0}
    assert first["business"]["median"] == 150
    sla = {m["metric"]: m for m in get("api-report-sla")["metrics"]}
    assert sla["first_response"] == {"metric": "first_response", "label": "First response", "achieved": 3, "breached": 2,
                                     "percent": 60.0}
    volume = get("api-report-volume")
    assert (volume["created"], volume["solved"]) == (6, 5)
    assert {r["label"]: r["created"] for r in volume["by_inbox"]} == {"Billing": 3, "Sales": 3}
    heat = get("api-report-heatmap")
    assert heat["total"] == 6 and len(heat["cells"]) == 7 and all(len(row) == 24 for row in heat["cells"])
    assert heat["cells"][1][8] == 1  # June 2 2026 is a Tuesday, 08:15
    backlog = get("api-report-backlog")
    assert backlog["opening"] == 1 and len(backlog["days"]) == 30 and backlog["days"][-1]["backlog"] == 2
    agents = {a["name"]: a for a in get("api-report-agents")["agents"]}
    assert agents["Alice Agent"]["solved"] == 4 and agents["Bob Agent"]["replies"] == 2
    satisfaction = get("api-report-csat")
    assert satisfaction == {"range": times["range"], "count": 4, "average": 4.0,
                            "distribution": {"1": 0, "2": 1, "3": 0, "4": 1, "5": 2}, "satisfied_percent": 75.0}
    # The same numbers under a filter: the agent's own facts.
    assert get("api-report-volume", agent=month["alice"].pk)["solved"] == 4  # with the May conversation


def test_api_query_budget(month, django_assert_num_queries):
    client = api_client_for(manager())
    # Session, user, the user's Managers group, then the report's own: backlog = 2 queries.
    with django_assert_num_queries(5):
        assert client.get(reverse("api-report-backlog"), JUNE).status_code == 200


def test_reports_are_in_the_openapi_schema():
    client = api_client_for(manager())
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for path in ("response-times", "sla", "volume", "heatmap", "backlog", "agents", "csat"):
        operation = schema["paths"][f"/api/v1/reports/{path}/"]["get"]
        assert {p["name"] for p in operation["parameters"]} >= {"start", "end", "tz", "inbox", "channel", "team", "agent", "priority"}


def test_empty_range_renders_without_data():
    client = api_client_for(manager())
    response = client.get(reverse("reports"), JUNE)
    assert response.status_code == 200
    page = figures(response.content.decode())
    assert page["created"] == "0" and page["first_response.calendar.median"] == ""


def test_csv_rows_are_one_query_streamed_in_chunks(month, monkeypatch):
    with CaptureQueriesContext(connection) as queries:
        rows = list(reports.conversation_rows(june()))
    # The facts in range grouped by conversation, joined to the ticket's columns after
    # grouping (plus the transaction around the cursor, and on PostgreSQL its planner hint).
    assert len([q for q in queries if "GROUP BY" in q["sql"]]) == 1 and len(rows) == 7
    assert len([q for q in queries if "SELECT" in q["sql"]]) == 1
    monkeypatch.setattr(reports, "CSV_CHUNK", 3)
    assert list(reports.conversation_rows(june())) == rows  # fetched 3 by 3: the same rows
    first = rows[0]
    assert first["created_at"] == at("2026-06-02T08:15") and first["inbox"] == "Billing" and first["assignee"] == "bob"


def test_the_dashboard_links_to_the_reports_for_managers_only(client) -> None:
    from django.contrib.auth.models import Group

    from helpdesk.roles import MANAGERS_GROUP
    from tests.factories import UserFactory

    agent, manager = UserFactory(), UserFactory()
    manager.groups.add(Group.objects.get_or_create(name=MANAGERS_GROUP)[0])
    client.force_login(agent)
    assert 'data-testid="reports-link"' not in client.get("/").content.decode()
    client.force_login(manager)
    assert 'data-testid="reports-link"' in client.get("/").content.decode()
