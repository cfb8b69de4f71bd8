"""SLA in the dashboard and the API: list badges and countdowns, the "SLA at risk" view, the
conversation's clock panel with its event log, priority and tags, notifications.

Clocks are made by the SLA engine itself (tickets.sla) on tickets whose creation is
backdated, and warned or breached by its real sweep: nothing here writes a clock by hand.
"""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from conversations.models import Channel
from tests.clients import api_client_for
from tests.factories import ContactFactory, InboxFactory, TicketFactory, UserFactory
from tickets import sla
from tickets.models import (
    BusinessCalendar,
    Holiday,
    Notification,
    SlaClock,
    SlaEscalation,
    SlaEvent,
    SlaMetric,
    SlaPolicy,
    SlaTarget,
    Tag,
    Ticket,
)
from tickets.selectors import ticket_list
from tickets.services import ticket_set_status
from tickets.views import _countdown

pytestmark = pytest.mark.django_db

FRAGMENT = {"HTTP_X_DESK_FRAGMENT": "1"}
MIN = timedelta(minutes=1)


# --- Builders -----------------------------------------------------------------------------


def sla_policy(*, name: str = "Standard", minutes: int = 60, metrics: tuple[str, ...] = (SlaMetric.FIRST_RESPONSE,),
               priority: str = "normal", business: bool = False, warn: int = 75, calendar: BusinessCalendar | None = None,
               pauses: dict | None = None, tags: tuple = (), position: int = 0) -> SlaPolicy:
    policy = SlaPolicy.objects.create(name=name, warn_at_percent=warn, calendar=calendar, position=position,
                                      **({"pause_statuses": pauses} if pauses is not None else {}))
    for metric in metrics:
        SlaTarget.objects.create(policy=policy, metric=metric, priority=priority, minutes=minutes, business_hours=business)
    if tags:
        policy.tags.set(tags)
    return policy


def sla_ticket(inbox, *, age: timedelta = timedelta(0), subject: str = "Printer on fire", **kwargs) -> Ticket:
    """A ticket created `age` ago, its clocks started by the engine at that moment, as they
    were for a conversation that arrived then (what happened since is up to the test)."""
    ticket = TicketFactory(conversation__inbox=inbox, conversation__subject=subject,
                           conversation__last_message_at=timezone.now(), **kwargs)
    Ticket.objects.filter(pk=ticket.pk).update(created_at=timezone.now() - age)
    ticket.refresh_from_db()
    sla.sla_ticket_created(ticket=ticket, now=ticket.created_at)
    ticket.refresh_from_db()
    return ticket


def html_text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def row_of(page: str, ticket: Ticket) -> str:
    match = re.search(rf'<li class="conv-item[^"]*" data-conversation-id="{ticket.pk}"[^>]*>(.*?)</li>', page)
    assert match, f"no row for #{ticket.pk}"
    return match.group(1)


def badge_in(fragment: str) -> dict[str, str]:
    match = re.search(r'<span class="sla sla-(\w+)( is-overdue)?" data-testid="sla-badge" data-sla-state="(\w+)"[^>]*>'
                      r'(?:<span class="sla-label">([^<]*)</span>)?(?:<time class="sla-countdown" data-testid="sla-countdown" '
                      r'data-due="(\d+)"[^>]*>([^<]*)</time>)?</span>', fragment)
    assert match, fragment
    return {"state": match.group(3), "overdue": bool(match.group(2)), "label": match.group(4) or "",
            "due": match.group(5) or "", "left": match.group(6) or ""}


def seconds_of(countdown: str) -> int:
    sign = -1 if countdown.startswith("-") else 1
    minutes, seconds = re.fullmatch(r"-?(\d+)m (\d\d)s", countdown).groups()
    return sign * (int(minutes) * 60 + int(seconds))


# --- Fixtures -----------------------------------------------------------------------------


@pytest.fixture
def agent():
    return UserFactory(username="alice", first_name="Alice", last_name="Agent")


@pytest.fixture
def api(agent):
    return api_client_for(agent)


# --- List: badges and countdowns ------------------------------------------------------------


def test_list_rows_show_the_sla_state_and_the_time_to_the_next_breach(agent_client, inbox):
    sla_policy(minutes=60, pauses={SlaMetric.FIRST_RESPONSE: [Ticket.Status.PENDING]})
    fresh = sla_ticket(inbox, subject="Fresh")
    at_risk = sla_ticket(inbox, age=50 * MIN, subject="At risk")
    late = sla_ticket(inbox, age=70 * MIN, subject="Late")
    waiting = sla_ticket(inbox, age=5 * MIN, subject="Waiting on the customer")
    ticket_set_status(ticket=waiting, status=Ticket.Status.PENDING, by=UserFactory())
    no_sla = TicketFactory(conversation__inbox=inbox, conversation__subject="No policy", conversation__last_message_at=timezone.now())
    sla.sla_sweep()  # the periodic task: warns the 50-minute-old one, breaches the 70-minute-old one

    page = html_text(agent_client.get("/list?view=all"))

    ok, warning, breached = badge_in(row_of(page, fresh)), badge_in(row_of(page, at_risk)), badge_in(row_of(page, late))
    assert (ok["state"], ok["label"], ok["overdue"]) == ("ok", "", False)
    assert 59 * 60 - 5 < seconds_of(ok["left"]) <= 60 * 60
    assert (warning["state"], warning["label"], warning["overdue"]) == ("warning", "At risk", False)
    assert 9 * 60 < seconds_of(warning["left"]) <= 10 * 60
    # Calendar time past the deadline, negative and red (is-overdue) like a "next SLA breach" column.
    assert (breached["state"], breached["label"], breached["overdue"]) == ("breached", "Breached", True)
    assert -10 * 60 - 5 < seconds_of(breached["left"]) <= -10 * 60
    # The countdown ticks in the browser from this epoch deadline: the ticket's own sla_due_at.
    late.refresh_from_db()
    assert int(breached["due"]) == int(late.sla_due_at.timestamp())
    paused = badge_in(row_of(page, waiting))
    assert (paused["state"], paused["label"], paused["due"]) == ("paused", "Paused", "")
    assert 'data-testid="sla-badge"' not in row_of(page, no_sla)
    # The list carries the server's clock, so the page can correct a skewed local clock.
    now_attr = int(re.search(r'id="conv-list" [^>]*data-now="(\d+)"', page).group(1))
    assert abs(now_attr - timezone.now().timestamp()) < 5


@pytest.mark.parametrize(("seconds", "label"), [
    (0, "0m 00s"), (59, "0m 59s"), (61, "1m 01s"), (3599, "59m 59s"), (3600, "1h 00m"), (3 * 3600 + 5 * 60 + 9, "3h 05m"),
    (86400 + 4 * 3600 + 59, "1d 4h"), (-1, "-0m 01s"), (-(3600 + 120), "-1h 02m"),
])
def test_countdown_labels(seconds, label):
    # desk.js countdown() formats the ticking value the same way.
    assert _countdown(timedelta(seconds=seconds)) == label


# --- The "SLA at risk" view and the SLA sort --------------------------------------------------


def test_at_risk_view_lists_warned_breached_and_due_within_the_hour_by_deadline(agent_client, agent, inbox):
    sla_policy(minutes=60)
    sla_policy(name="Long", minutes=8 * 60, priority="low")
    warned = sla_ticket(inbox, age=50 * MIN, subject="Warned")  # due in 10 min
    breached = sla_ticket(inbox, age=70 * MIN, subject="Breached")  # due 10 min ago
    due_soon = sla_ticket(inbox, age=5 * MIN, subject="Due soon")  # due in 55 min, not warned yet
    far = sla_ticket(inbox, subject="Far", priority="low")  # due in 8 h
    solved = sla_ticket(inbox, age=70 * MIN, subject="Solved")
    other_inbox = sla_ticket(InboxFactory(), age=70 * MIN, subject="Not mine")
    sla.sla_sweep()
    ticket_set_status(ticket=solved, status=Ticket.Status.SOLVED, by=agent)

    page = html_text(agent_client.get("/list?view=at_risk"))

    shown = [int(pk) for pk in re.findall(r'data-conversation-id="(\d+)"', page)]
    assert shown == [breached.pk, warned.pk, due_soon.pk]
    assert far.pk not in shown and solved.pk not in shown and other_inbox.pk not in shown
    # The view switcher offers it; the page opened on it marks it active.
    dashboard = html_text(agent_client.get("/?view=at_risk"))
    assert re.search(r'<a href="/\?view=at_risk" data-view-tab="at_risk" class="tab is-active" aria-current="page">SLA at risk<span class="tab-count"', dashboard)


def test_at_risk_includes_a_warning_with_a_deadline_further_than_an_hour(agent, inbox):
    sla_policy(minutes=8 * 60, warn=50)
    ticket = sla_ticket(inbox, age=5 * 60 * MIN)  # 5 h of 8 used: warned, 3 h left
    sla.sla_sweep()
    ticket.refresh_from_db()
    assert ticket.sla_state == "warning" and ticket.sla_due_at > timezone.now() + timedelta(hours=2)

    assert list(ticket_list(user=agent, view="at_risk")) == [ticket]


def test_at_risk_list_query_count_does_not_grow_with_rows(agent_client, inbox, django_assert_num_queries):
    sla_policy(minutes=60)
    for n in range(6):
        sla_ticket(inbox, age=(50 + n) * MIN)
    sla.sla_sweep()
    # 1 session, 2 user, 3 the agent's inboxes and teams (the view tabs), 4 manager group
    # check, 5 every view's count in one aggregate, 6 the page of tickets (sla_state and
    # sla_due_at are columns of the ticket: no clock is read), 7 their tags (prefetch).
    with django_assert_num_queries(7):
        response = agent_client.get("/list?view=at_risk")

    assert html_text(response).count('data-sla-state="warning"') == 6


def test_sort_by_sla_due_puts_the_nearest_deadline_first_and_no_sla_last(agent_client, inbox):
    sla_policy(minutes=60)
    later = sla_ticket(inbox, age=1 * MIN, subject="Later")
    sooner = sla_ticket(inbox, age=40 * MIN, subject="Sooner")
    none = TicketFactory(conversation__inbox=inbox, conversation__last_message_at=timezone.now() + MIN)

    by_activity = re.findall(r'data-conversation-id="(\d+)"', html_text(agent_client.get("/list?view=open")))
    by_due = re.findall(r'data-conversation-id="(\d+)"', html_text(agent_client.get("/list?view=open&sort=sla_due")))

    assert by_activity[0] == str(none.pk)
    assert by_due == [str(sooner.pk), str(later.pk), str(none.pk)]
    page = html_text(agent_client.get("/?sort=sla_due"))
    assert '<option value="sla_due" selected>SLA due</option>' in page


# --- The conversation's SLA panel -----------------------------------------------------------


def test_panel_explains_each_clock_with_its_event_log(agent_client, agent, inbox):
    sla_policy(name="Gold", minutes=60, metrics=(SlaMetric.FIRST_RESPONSE, SlaMetric.RESOLUTION),
               pauses={SlaMetric.RESOLUTION: [Ticket.Status.PENDING]})
    ticket = sla_ticket(inbox, age=70 * MIN)
    sla.sla_sweep()
    ticket_set_status(ticket=ticket, status=Ticket.Status.PENDING, by=agent)

    for url in (f"/c/{ticket.pk}/sla", f"/c/{ticket.pk}/timeline"):
        page = html_text(agent_client.get(url))
        clocks = re.findall(r'<li class="sla-clock clock-(\w+)" data-testid="sla-clock" data-clock-id="\d+" '
                            r'data-metric="(\w+)" data-metric-label="([^"]+)"', page)
        assert clocks == [("active", "first_response", "First response"), ("paused", "resolution", "Resolution")], url
        first, resolution = page.split('data-testid="sla-clock"')[1:3]
        assert "<dt>Policy</dt><dd>Gold</dd>" in first
        assert "<dt>Target</dt><dd>1h 00m 00s <span class=\"muted\">(calendar time)</span></dd>" in first
        assert re.search(r'<dd data-testid="clock-left" class="is-overdue">-10m \d\ds</dd>', first)
        assert '<span class="sla sla-breached" data-testid="clock-outcome">Breached</span>' in first
        kinds = re.findall(r'data-testid="sla-event" data-kind="(\w+)"', first)
        assert kinds == ["start", "warn", "breach"]
        assert "the conversation was created; target 1 h (calendar time, Gold)" in first
        assert re.search(r"<strong>Breached</strong> <span class=\"reason\">First response: the 1 h target passed with no reply"
                         r"</span> <span class=\"muted\">\(counted 1h 10m 0\ds\)</span>", first)
        assert re.findall(r'data-testid="sla-event" data-kind="(\w+)"', resolution) == ["start", "warn", "breach", "pause"]
        assert "Alice Agent set the status to Pending" in resolution
        assert 'data-testid="clock-left"' in resolution  # paused is still running: it has time left (or not)


def test_panel_on_business_hours_names_the_calendar(agent_client, inbox):
    every_day = [{"weekday": d, "start": "00:00", "end": "00:00"} for d in range(7)]  # round the clock, as intervals
    calendar = BusinessCalendar.objects.create(name="Berlin office", time_zone="Europe/Berlin", intervals=every_day)
    sla_policy(minutes=120, business=True, calendar=calendar)
    ticket = sla_ticket(inbox, age=30 * MIN)

    page = html_text(agent_client.get(f"/c/{ticket.pk}/sla"))

    assert "<dt>Target</dt><dd>2h 00m 00s <span class=\"muted\">(business time, Berlin office)</span></dd>" in page
    assert re.search(r'<dd data-testid="clock-used">30m \d\ds</dd>', page)


def test_panel_without_a_policy_says_so(agent_client, inbox):
    ticket = TicketFactory(conversation__inbox=inbox)

    page = html_text(agent_client.get(f"/c/{ticket.pk}/sla"))

    assert "No SLA policy matches this conversation" in page
    assert 'data-testid="sla-clock"' not in page


def _clocks_with_history(inbox, agent, rounds: int) -> Ticket:
    """A ticket whose clocks have `rounds` pause/resume pairs each (a longer event log)."""
    pending = [Ticket.Status.PENDING]
    sla_policy(minutes=60, metrics=(SlaMetric.FIRST_RESPONSE, SlaMetric.RESOLUTION),
               pauses={SlaMetric.FIRST_RESPONSE: pending, SlaMetric.RESOLUTION: pending})
    ticket = sla_ticket(inbox, age=20 * MIN)
    for _ in range(rounds):
        ticket_set_status(ticket=ticket, status=Ticket.Status.PENDING, by=agent)
        ticket_set_status(ticket=ticket, status=Ticket.Status.OPEN, by=agent)
    return ticket


@pytest.mark.parametrize("rounds", [1, 6])
def test_panel_query_count_does_not_grow_with_clocks_or_events(agent_client, agent, inbox, rounds, django_assert_num_queries):
    ticket = _clocks_with_history(inbox, agent, rounds)
    assert SlaEvent.objects.filter(clock__ticket=ticket).count() == 2 * (1 + 2 * rounds)

    # 1 session, 2 user, 3 manager group check, 4 the agent's inbox ids, 5 the ticket
    # (permission check), 6 the clocks with their calendars joined, 7 their events (prefetch).
    with django_assert_num_queries(7):
        response = agent_client.get(f"/c/{ticket.pk}/sla")

    assert html_text(response).count('data-testid="sla-event"') == 2 * (1 + 2 * rounds)


@pytest.mark.parametrize("rounds", [1, 6])
def test_timeline_with_sla_clocks_query_count(agent_client, agent, inbox, rounds, django_assert_num_queries):
    ticket = _clocks_with_history(inbox, agent, rounds)

    # 1 session, 2 user, 3 manager group check, 4 the agent's inbox ids, 5 the ticket,
    # 6 the inbox's agents, 7 the contact's identities, 8 the channel of the latest customer
    # message, 9 the SLA clocks with their calendars, 10 their events (prefetch), 11 the
    # ticket's tags, 12 the messages with their authors, 13 their attachments, 14 the teams
    # (transfer select).
    with django_assert_num_queries(14):
        response = agent_client.get(f"/c/{ticket.pk}/timeline")

    assert html_text(response).count('data-testid="sla-clock"') == 2


def test_business_clocks_add_one_query_for_their_calendars_holidays(agent_client, inbox, django_assert_num_queries):
    weekdays = [{"weekday": d, "start": "00:00", "end": "00:00"} for d in range(7)]
    calendar = BusinessCalendar.objects.create(name="Office", time_zone="UTC", intervals=weekdays)
    tomorrow = (timezone.now() + timedelta(days=1)).date()
    Holiday.objects.create(calendar=calendar, date=tomorrow, name="Founders' day")
    sla_policy(minutes=48 * 60, business=True, calendar=calendar,
               metrics=(SlaMetric.FIRST_RESPONSE, SlaMetric.RESOLUTION))
    ticket = sla_ticket(inbox, age=60 * MIN)

    # 1 session, 2 user, 3 manager group check, 4 the agent's inbox ids, 5 the ticket,
    # 6 the clocks with their calendars, 7 their events, 8 the calendars' holidays (one
    # query for every clock: the business time left is worked out from them).
    with django_assert_num_queries(8):
        response = agent_client.get(f"/c/{ticket.pk}/sla")

    # The holiday counts for nothing: 48 h of business time end 72 h after creation.
    clock = SlaClock.objects.filter(ticket=ticket).first()
    assert clock.deadline - ticket.created_at == timedelta(hours=72)
    page = html_text(response)
    assert re.findall(r'<dd data-testid="clock-used">1h 00m 0\ds</dd>', page) and len(re.findall("clock-used", page)) == 2
    # 47 h of business time left, shown to the minute (a few seconds passed since the start).
    assert len(re.findall(r'<dd data-testid="clock-left" class="">1d (?:22h 59m|23h 00m)</dd>', page)) == 2


# --- Priority and tags from the conversation header ----------------------------------------


def test_header_priority_select_retargets_the_clock(agent_client, agent, inbox, django_capture_on_commit_callbacks):
    sla_policy(minutes=60, priority="normal")
    urgent = SlaPolicy.objects.get(name="Standard")
    SlaTarget.objects.create(policy=urgent, metric=SlaMetric.FIRST_RESPONSE, priority="urgent", minutes=15, business_hours=False)
    ticket = sla_ticket(inbox, age=5 * MIN)
    page = html_text(agent_client.get(f"/c/{ticket.pk}/timeline"))
    assert '<option value="normal" selected>Normal</option>' in page

    with django_capture_on_commit_callbacks(execute=True):
        response = agent_client.post(f"/c/{ticket.pk}/priority", {"priority": "urgent"}, **FRAGMENT)

    assert response.status_code == 200
    assert '<option value="urgent" selected>Urgent</option>' in html_text(response)
    ticket.refresh_from_db()
    assert ticket.priority == "urgent"
    clock = SlaClock.objects.get(ticket=ticket)
    assert clock.target_seconds == 15 * 60
    retarget = clock.events.get(kind=SlaEvent.Kind.RETARGET)
    assert "Alice Agent set the priority to Urgent: target 1 h → 15 min" in retarget.reason
    assert "Target changed" in html_text(response)  # the panel in the answer shows it


def test_header_tags_field_sets_the_tags_and_a_tagged_policy_starts_a_clock(agent_client, inbox):
    vip = sla_policy(name="VIP", minutes=30)
    vip.tags.set([Tag.objects.create(name="vip")])
    ticket = sla_ticket(inbox)
    assert not SlaClock.objects.filter(ticket=ticket).exists()

    response = agent_client.post(f"/c/{ticket.pk}/tags", {"tags": "VIP, billing  refunds"}, **FRAGMENT)

    assert response.status_code == 200
    assert sorted(ticket.tags.values_list("name", flat=True)) == ["billing", "refunds", "vip"]
    assert 'value="billing, refunds, vip"' in html_text(response)
    clock = SlaClock.objects.get(ticket=ticket)
    assert (clock.policy_name, clock.target_seconds) == ("VIP", 30 * 60)


@pytest.mark.parametrize(("url", "data", "reason"), [
    ("priority", {"priority": "critical"}, "Select a valid choice"),
    ("tags", {"tags": "ok, not/allowed"}, "not/allowed"),
])
def test_header_bad_priority_or_tags_are_400_and_change_nothing(agent_client, inbox, url, data, reason):
    ticket = TicketFactory(conversation__inbox=inbox, priority="normal")

    response = agent_client.post(f"/c/{ticket.pk}/{url}", data, **FRAGMENT)

    assert response.status_code == 400 and reason in response.content.decode()
    ticket.refresh_from_db()
    assert ticket.priority == "normal" and not ticket.tags.exists()


def test_agent_outside_the_inbox_gets_404_for_the_panel_and_the_actions(stranger_client, inbox):
    sla_policy(minutes=60)
    ticket = sla_ticket(inbox, age=70 * MIN)
    outsider = api_client_for(UserFactory(username="eve"))

    assert stranger_client.get(f"/c/{ticket.pk}/sla").status_code == 404
    assert stranger_client.post(f"/c/{ticket.pk}/priority", {"priority": "urgent"}, **FRAGMENT).status_code == 404
    assert stranger_client.post(f"/c/{ticket.pk}/tags", {"tags": "vip"}, **FRAGMENT).status_code == 404
    for action, payload in (("priority", {"priority": "urgent"}), ("tags", {"tags": ["vip"]})):
        assert outsider.post(f"/api/v1/conversations/{ticket.pk}/{action}/", payload, format="json").status_code == 404
    assert outsider.get(f"/api/v1/conversations/{ticket.pk}/").status_code == 404
    assert "Printer on fire" not in stranger_client.get("/list?view=at_risk").content.decode()
    ticket.refresh_from_db()
    assert ticket.priority == "normal" and not ticket.tags.exists()
    assert not SlaEvent.objects.filter(kind=SlaEvent.Kind.RETARGET).exists()


# --- API ------------------------------------------------------------------------------------


def test_api_detail_has_the_sla_block_with_clocks_and_events(api, inbox):
    sla_policy(name="Gold", minutes=60)
    ticket = sla_ticket(inbox, age=70 * MIN)
    sla.sla_sweep()
    ticket.refresh_from_db()

    body = api.get(f"/api/v1/conversations/{ticket.pk}/").json()

    assert body["sla"]["state"] == "breached"
    assert body["sla"]["due_at"] == ticket.sla_due_at.isoformat().replace("+00:00", "Z")
    [clock] = body["sla"]["clocks"]
    assert {k: clock[k] for k in ("metric", "state", "policy", "target_seconds", "business_hours", "calendar", "breached")} == {
        "metric": "first_response", "state": "active", "policy": "Gold", "target_seconds": 3600, "business_hours": False,
        "calendar": None, "breached": True}
    assert 70 * 60 <= clock["elapsed_seconds"] < 70 * 60 + 5
    assert clock["remaining_seconds"] == 3600 - clock["elapsed_seconds"]
    assert [e["kind"] for e in clock["events"]] == ["start", "warn", "breach"]
    assert clock["events"][2]["reason"] == "First response: the 1 h target passed with no reply"
    # The list has the summary only (no clock is read for a list).
    row = api.get("/api/v1/conversations/?view=at_risk").json()["results"][0]
    assert row["id"] == ticket.pk and row["sla"] == {"state": "breached", "due_at": body["sla"]["due_at"]}


def test_api_detail_query_count_does_not_grow_with_events(api, agent, inbox, django_assert_num_queries):
    ticket = _clocks_with_history(inbox, agent, 5)
    # 1 session, 2 user, 3 manager check, 4 the agent's inbox ids, 5 the ticket, 6 its tags,
    # 7 the clocks with their calendars, 8 their events.
    with django_assert_num_queries(8):
        body = api.get(f"/api/v1/conversations/{ticket.pk}/").json()

    assert sum(len(c["events"]) for c in body["sla"]["clocks"]) == 22


def test_api_set_priority_retargets_and_answers_the_detail(api, inbox, django_capture_on_commit_callbacks):
    policy = sla_policy(minutes=60)
    SlaTarget.objects.create(policy=policy, metric=SlaMetric.FIRST_RESPONSE, priority="high", minutes=30, business_hours=False)
    ticket = sla_ticket(inbox, age=10 * MIN)

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/conversations/{ticket.pk}/priority/", {"priority": "high"}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["priority"] == "high"
    [clock] = body["sla"]["clocks"]
    assert clock["target_seconds"] == 30 * 60
    assert [e["kind"] for e in clock["events"]] == ["start", "retarget"]
    ticket.refresh_from_db()
    assert body["sla"]["due_at"] == ticket.sla_due_at.isoformat().replace("+00:00", "Z")
    assert ticket.sla_due_at - ticket.created_at == timedelta(minutes=30)


@pytest.mark.parametrize("payload", [{"priority": "critical"}, {"priority": ""}, {}, {"priority": ["high"]}])
def test_api_bad_priority_is_400_and_changes_nothing(api, inbox, payload):
    ticket = TicketFactory(conversation__inbox=inbox)

    response = api.post(f"/api/v1/conversations/{ticket.pk}/priority/", payload, format="json")

    assert response.status_code == 400 and "priority" in response.json()
    ticket.refresh_from_db()
    assert ticket.priority == "normal"


def test_api_set_tags_replaces_them(api, inbox, django_capture_on_commit_callbacks):
    ticket = TicketFactory(conversation__inbox=inbox)

    with django_capture_on_commit_callbacks(execute=True):
        first = api.post(f"/api/v1/conversations/{ticket.pk}/tags/", {"tags": ["Billing", "vip"]}, format="json")
        second = api.post(f"/api/v1/conversations/{ticket.pk}/tags/", {"tags": ["vip"]}, format="json")
        cleared = api.post(f"/api/v1/conversations/{ticket.pk}/tags/", {"tags": []}, format="json")

    assert first.status_code == second.status_code == cleared.status_code == 200
    assert first.json()["tags"] == ["billing", "vip"]
    assert second.json()["tags"] == ["vip"]
    assert cleared.json()["tags"] == []


@pytest.mark.parametrize("payload", [{"tags": "vip"}, {"tags": ["no spaces"]}, {"tags": ["x" * 61]}, {}])
def test_api_bad_tags_are_400_and_change_nothing(api, inbox, payload):
    ticket = TicketFactory(conversation__inbox=inbox)

    response = api.post(f"/api/v1/conversations/{ticket.pk}/tags/", payload, format="json")

    assert response.status_code == 400 and "tags" in response.json()
    assert not ticket.tags.exists()


# --- Notifications --------------------------------------------------------------------------


def test_sla_notifications_reach_the_bell_and_can_be_marked_read(agent_client, agent, inbox):
    policy = sla_policy(minutes=60)
    SlaEscalation.objects.create(policy=policy, on=SlaEscalation.On.WARN, action=SlaEscalation.Action.NOTIFY)
    SlaEscalation.objects.create(policy=policy, on=SlaEscalation.On.BREACH, action=SlaEscalation.Action.NOTIFY)
    ticket = sla_ticket(inbox, age=70 * MIN, assignee=agent, subject="Printer on fire")
    other = sla_ticket(inbox, age=50 * MIN, assignee=agent, subject="Toner")
    someone_elses = Notification.objects.create(user=UserFactory(), kind=Notification.Kind.MENTION, text="Not for Alice")
    sla.sla_sweep()  # the older one warns and breaches, the other warns

    assert 'data-testid="bell-count">3</span>' in html_text(agent_client.get("/"))
    listed = html_text(agent_client.get("/notifications"))
    assert 'data-unread="3"' in listed
    texts = re.findall(r'data-notification="\d+">([^<]+)</a>', listed)
    assert texts == [f"SLA at risk: First response on #{other.pk} Toner",
                     f"SLA breached: First response on #{ticket.pk} Printer on fire",
                     f"SLA at risk: First response on #{ticket.pk} Printer on fire"]
    assert "Not for Alice" not in listed

    one = Notification.objects.get(user=agent, ticket=ticket, kind=Notification.Kind.SLA_BREACH)
    response = agent_client.post("/notifications/read", {"id": one.pk}, **FRAGMENT)
    assert response.status_code == 200 and 'data-unread="2"' in html_text(response)
    # Someone else's notification cannot be marked by id.
    agent_client.post("/notifications/read", {"id": someone_elses.pk}, **FRAGMENT)
    someone_elses.refresh_from_db()
    assert someone_elses.read_at is None

    response = agent_client.post("/notifications/read")  # without JavaScript: back to the dashboard
    assert response.status_code == 302 and response["Location"] == "/"
    assert not Notification.objects.filter(user=agent, read_at__isnull=True).exists()
    assert 'data-testid="bell-count" hidden>0</span>' in html_text(agent_client.get("/"))
    assert agent_client.post("/notifications/read", {"id": "x"}, **FRAGMENT).status_code == 400


def test_notification_list_query_count(agent_client, agent, django_assert_num_queries):
    for n in range(15):
        Notification.objects.create(user=agent, kind=Notification.Kind.SLA_WARNING, text=f"SLA at risk {n}")
    # 1 session, 2 user, 3 the latest notifications, 4 the unread count.
    with django_assert_num_queries(4):
        response = agent_client.get("/notifications")

    assert html_text(response).count('class="notif ') == 15


def test_dashboard_offers_the_channel_of_every_list_row_unchanged(agent_client, inbox):
    # The SLA badge sits beside what was there: channel, status and assignee stay in the row.
    sla_policy(minutes=60)
    ticket = sla_ticket(inbox, conversation__last_message_channel=Channel.EMAIL,
                        conversation__contact=ContactFactory(name="Jane Customer"))

    row = row_of(html_text(agent_client.get("/list")), ticket)

    assert '<span class="badge ch-email">Email</span>' in row and "Jane Customer" in row and "Unassigned" in row
    assert badge_in(row)["state"] == "ok"
