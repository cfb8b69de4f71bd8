"""SLA clocks: a table of hand-computed scenarios per metric (Zendesk's semantics, PEERS.md
§2.1) with pauses, reopenings and retargeting; the sweep's exactly-once warn and breach;
escalations; and that finding due clocks costs O(due), not O(open tickets).

The office is Mon-Fri 09:00-17:00 Europe/Berlin; 2026-03-02 is a Monday (CET, UTC+1).
Every time is explicit: the engine takes `now`, messages and tickets get their times set.
"""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conversations.models import Message
from helpdesk.roles import MANAGERS_GROUP
from tests.factories import InboxFactory, MessageFactory, TeamFactory, TicketFactory, UserFactory
from tickets import sla
from tickets.models import (
    BusinessCalendar,
    Holiday,
    InboxCalendar,
    Notification,
    ReportFact,
    SlaClock,
    SlaEscalation,
    SlaEvent,
    SlaMetric,
    SlaPolicy,
    SlaTarget,
    Ticket,
)

pytestmark = pytest.mark.django_db

BERLIN = ZoneInfo("Europe/Berlin")
FRT, NRT, UPD, RES = SlaMetric.FIRST_RESPONSE, SlaMetric.NEXT_RESPONSE, SlaMetric.PERIODIC_UPDATE, SlaMetric.RESOLUTION
H = 3600


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment in the week of Monday 2 March 2026, Berlin time."""
    return datetime(2026, 3, day, hour, minute, tzinfo=BERLIN)


def office() -> BusinessCalendar:
    return BusinessCalendar.objects.create(name="Office", time_zone="Europe/Berlin", intervals=[
        {"weekday": d, "start": "09:00", "end": "17:00"} for d in range(5)])


def policy(targets: dict[tuple[str, str], tuple[int, bool]], **kwargs: object) -> SlaPolicy:
    """targets: {(metric, priority): (minutes, business_hours)}."""
    kwargs.setdefault("name", f"Policy {SlaPolicy.objects.count() + 1}")
    p = SlaPolicy.objects.create(**kwargs)
    for (metric, priority), (minutes, business) in targets.items():
        SlaTarget.objects.create(policy=p, metric=metric, priority=priority, minutes=minutes, business_hours=business)
    return p


def ticket_at(created: datetime, **kwargs: object) -> Ticket:
    ticket = TicketFactory(**kwargs)
    Ticket.objects.filter(pk=ticket.pk).update(created_at=created)
    ticket = Ticket.objects.select_related("conversation").get(pk=ticket.pk)
    sla.sla_ticket_created(ticket=ticket, now=created)
    return ticket


def customer(ticket: Ticket, when: datetime) -> Message:
    message = MessageFactory(conversation=ticket.conversation, kind=Message.Kind.INBOUND)
    Message.objects.filter(pk=message.pk).update(created_at=when)
    message.refresh_from_db()
    sla.sla_customer_wrote(ticket=ticket, message=message, now=when)
    return message


def reply(ticket: Ticket, when: datetime, agent: object, waiting_since: datetime | None) -> Message:
    message = MessageFactory(conversation=ticket.conversation, kind=Message.Kind.OUTBOUND, author_user=agent)
    Message.objects.filter(pk=message.pk).update(created_at=when)
    message.refresh_from_db()
    sla.sla_agent_replied(ticket=ticket, message=message, waiting_since=waiting_since, now=when)
    return message


def status(ticket: Ticket, new: str, when: datetime, by: object) -> None:
    previous = ticket.status
    ticket.status = new
    Ticket.objects.filter(pk=ticket.pk).update(status=new)
    sla.sla_status_changed(ticket=ticket, previous=previous, by=by, now=when)


def clock(ticket: Ticket, metric: str) -> SlaClock:
    return SlaClock.objects.filter(ticket=ticket, metric=metric).latest("id")


def used(c: SlaClock, now: datetime) -> float:
    return sla.elapsed_at(c, now, sla._clock_hours(c)).total_seconds()


def kinds(c: SlaClock) -> list[str]:
    return list(c.events.values_list("kind", flat=True))


@pytest.fixture
def agent():
    return UserFactory(username="alice", first_name="Alice")


# --- first response --------------------------------------------------------------------------

@pytest.mark.parametrize(("created", "target", "business", "deadline"), [
    # Business time: 16:00 Monday + 2 h = one hour Monday, one hour Tuesday morning.
    (at(2, 16), 120, True, at(3, 10)),
    # Calendar time ignores the office: 16:00 + 2 h = 18:00.
    (at(2, 16), 120, False, at(2, 18)),
    # Written on Saturday: the business clock starts Monday 09:00.
    (at(7, 11), 60, True, at(9, 10)),
    # Friday 16:30 + 1 h business = Monday 09:30.
    (at(6, 16, 30), 60, True, at(9, 9, 30)),
])
def test_first_response_deadline(created: datetime, target: int, business: bool, deadline: datetime) -> None:
    InboxCalendar.objects.create(inbox=InboxFactory(), calendar=office())
    inbox = InboxCalendar.objects.get().inbox
    policy({(FRT, "normal"): (target, business)})
    ticket = ticket_at(created, conversation__inbox=inbox)
    c = clock(ticket, FRT)
    assert c.deadline == deadline
    assert c.warn_at is not None and c.warn_at < c.deadline
    assert Ticket.objects.get(pk=ticket.pk).sla_due_at == deadline


@pytest.mark.parametrize(("reply_at", "business_used", "calendar_used", "breached"), [
    # 16:00 Mon → 10:00 Tue: 2 business hours, 18 calendar hours; target 4 business hours.
    (at(3, 10), 2 * H, 18 * H, False),
    # 16:00 Mon → 15:00 Tue: 7 business hours: breached at Tue 12:00.
    (at(3, 15), 7 * H, 23 * H, True),
])
def test_first_response_fulfilled_and_measured(agent, reply_at, business_used, calendar_used, breached) -> None:
    inbox = InboxFactory()
    InboxCalendar.objects.create(inbox=inbox, calendar=office())
    policy({(FRT, "normal"): (240, True)})
    ticket = ticket_at(at(2, 16), conversation__inbox=inbox)
    reply(ticket, reply_at, agent, waiting_since=at(2, 16))
    c = clock(ticket, FRT)
    assert c.state == SlaClock.State.FULFILLED
    assert c.elapsed.total_seconds() == business_used
    assert (c.breached_at is not None) is breached
    fact = ReportFact.objects.get(ticket=ticket, kind="first_response")
    assert (fact.business_seconds, fact.calendar_seconds) == (business_used, calendar_used)
    outcome = ReportFact.objects.get(clock=c)
    assert outcome.breached is breached
    assert outcome.at == (at(3, 12) if breached else reply_at)
    # A breach found only at the reply is logged before the fulfilment.
    assert kinds(c) == (["start", "breach", "fulfil"] if breached else ["start", "fulfil"])


def test_first_response_is_never_paused(agent) -> None:
    policy({(FRT, "normal"): (60, False)})
    ticket = ticket_at(at(2, 9))
    status(ticket, Ticket.Status.PENDING, at(2, 9, 20), agent)
    c = clock(ticket, FRT)
    assert c.state == SlaClock.State.ACTIVE
    assert used(c, at(2, 9, 50)) == 50 * 60


# --- next response ---------------------------------------------------------------------------

def test_next_response_runs_from_the_oldest_unanswered_message(agent) -> None:
    policy({(FRT, "normal"): (60, False), (NRT, "normal"): (30, False)})
    ticket = ticket_at(at(2, 9))
    reply(ticket, at(2, 9, 10), agent, waiting_since=at(2, 9))
    first = customer(ticket, at(2, 10))
    customer(ticket, at(2, 10, 20))  # still unanswered: no second clock
    assert SlaClock.objects.filter(ticket=ticket, metric=NRT).count() == 1
    c = clock(ticket, NRT)
    assert (c.started_at, c.message_id, c.deadline) == (at(2, 10), first.pk, at(2, 10, 30))
    reply(ticket, at(2, 10, 25), agent, waiting_since=at(2, 10))
    c.refresh_from_db()
    assert c.state == SlaClock.State.FULFILLED and c.breached_at is None
    assert c.elapsed.total_seconds() == 25 * 60
    fact = ReportFact.objects.get(ticket=ticket, kind="next_response")
    assert fact.calendar_seconds == 25 * 60
    # The next customer message re-arms it.
    customer(ticket, at(2, 11))
    assert SlaClock.objects.filter(ticket=ticket, metric=NRT, state="active").count() == 1


def test_no_next_response_clock_before_the_first_response() -> None:
    policy({(FRT, "normal"): (60, False), (NRT, "normal"): (30, False)})
    ticket = ticket_at(at(2, 9))
    customer(ticket, at(2, 9, 5))
    assert not SlaClock.objects.filter(ticket=ticket, metric=NRT).exists()
    assert SlaClock.objects.filter(ticket=ticket, metric=FRT).count() == 1


def test_first_response_starts_again_when_reopened_without_any_reply(agent) -> None:
    policy({(FRT, "normal"): (60, False), (NRT, "normal"): (30, False)})
    ticket = ticket_at(at(2, 9))
    status(ticket, Ticket.Status.SOLVED, at(2, 9, 10), agent)  # solved without a reply
    status(ticket, Ticket.Status.OPEN, at(2, 11), None)
    customer(ticket, at(2, 11))
    c = clock(ticket, FRT)
    assert c.state == SlaClock.State.ACTIVE and c.deadline == at(2, 12)
    assert not SlaClock.objects.filter(ticket=ticket, metric=NRT).exists()


# --- periodic update ---------------------------------------------------------------------------

def test_periodic_update_runs_between_replies_and_pending_pauses_it(agent) -> None:
    policy({(UPD, "normal"): (120, False)})
    ticket = ticket_at(at(2, 9))
    assert not SlaClock.objects.filter(ticket=ticket, metric=UPD).exists()  # starts with a reply
    reply(ticket, at(2, 10), agent, waiting_since=at(2, 9))
    c = clock(ticket, UPD)
    assert c.deadline == at(2, 12)
    status(ticket, Ticket.Status.PENDING, at(2, 11), agent)  # 1 h used, paused
    status(ticket, Ticket.Status.OPEN, at(2, 14), agent)  # resumes with 1 h left
    c.refresh_from_db()
    assert c.deadline == at(2, 15)
    assert kinds(c) == ["start", "pause", "resume"]
    reply(ticket, at(2, 14, 30), agent, waiting_since=None)
    c.refresh_from_db()
    assert c.state == SlaClock.State.FULFILLED and c.elapsed.total_seconds() == 90 * 60
    # A new periodic update starts with that reply.
    assert clock(ticket, UPD).started_at == at(2, 14, 30)


# --- resolution --------------------------------------------------------------------------------

def test_resolution_pauses_while_pending_in_business_time(agent) -> None:
    inbox = InboxFactory()
    InboxCalendar.objects.create(inbox=inbox, calendar=office())
    policy({(RES, "normal"): (8 * 60, True)})
    ticket = ticket_at(at(2, 9), conversation__inbox=inbox)
    status(ticket, Ticket.Status.PENDING, at(2, 10), agent)  # 1 h
    status(ticket, Ticket.Status.OPEN, at(3, 14), agent)  # the customer took a day: not counted
    status(ticket, Ticket.Status.SOLVED, at(3, 15), agent)  # + 1 h
    c = clock(ticket, RES)
    assert c.state == SlaClock.State.FULFILLED and c.elapsed.total_seconds() == 2 * H
    assert kinds(c) == ["start", "pause", "resume", "fulfil"]
    assert "Pending" in c.events.get(kind="pause").reason
    # The resolution time in reports is the full time to solve (Zendesk's total resolution).
    fact = ReportFact.objects.get(ticket=ticket, kind="resolution")
    assert (fact.calendar_seconds, fact.business_seconds) == (30 * H, 14 * H)


def test_resolution_resumes_on_reopen_and_the_fact_is_updated(agent) -> None:
    inbox = InboxFactory()
    InboxCalendar.objects.create(inbox=inbox, calendar=office())
    policy({(RES, "normal"): (4 * 60, True)})
    ticket = ticket_at(at(2, 9), conversation__inbox=inbox)
    status(ticket, Ticket.Status.SOLVED, at(2, 11), agent)  # 2 h: achieved
    c = clock(ticket, RES)
    assert ReportFact.objects.get(clock=c).breached is False
    status(ticket, Ticket.Status.OPEN, at(3, 9), None)  # reopened by the customer
    c.refresh_from_db()
    assert c.state == SlaClock.State.ACTIVE and c.deadline == at(3, 11)
    assert not ReportFact.objects.filter(clock=c).exists()  # the outcome is open again
    status(ticket, Ticket.Status.SOLVED, at(3, 12), agent)  # 2 + 3 = 5 h: breached at Tue 11:00
    c.refresh_from_db()
    assert c.elapsed.total_seconds() == 5 * H and c.breached_at is not None
    outcome = ReportFact.objects.get(clock=c)
    assert (outcome.breached, outcome.at) == (True, at(3, 11))
    assert kinds(c) == ["start", "fulfil", "resume", "breach", "fulfil"]
    assert ReportFact.objects.filter(ticket=ticket, kind="solved").count() == 2
    assert ReportFact.objects.filter(ticket=ticket, kind="reopened").count() == 1
    fact = ReportFact.objects.get(ticket=ticket, kind="resolution")  # one per ticket, the latest solve
    assert (fact.calendar_seconds, fact.business_seconds) == (27 * H, 11 * H)


def test_solving_stops_reply_clocks_without_a_breach(agent) -> None:
    policy({(FRT, "normal"): (60, False)})
    ticket = ticket_at(at(2, 9))
    status(ticket, Ticket.Status.SOLVED, at(2, 9, 30), agent)
    c = clock(ticket, FRT)
    assert c.state == SlaClock.State.STOPPED and c.breached_at is None and c.next_check_at is None
    assert not ReportFact.objects.filter(clock=c).exists()
    assert Ticket.objects.get(pk=ticket.pk).sla_state == ""


def test_holiday_is_not_business_time(agent) -> None:
    cal = office()
    Holiday.objects.create(calendar=cal, date=at(3, 0).date(), name="Closed")
    inbox = InboxFactory()
    InboxCalendar.objects.create(inbox=inbox, calendar=cal)
    policy({(FRT, "normal"): (120, True)})
    ticket = ticket_at(at(2, 16), conversation__inbox=inbox)
    assert clock(ticket, FRT).deadline == at(4, 10)  # Tuesday is a holiday


# --- policies ---------------------------------------------------------------------------------

def test_first_matching_policy_by_position_and_conditions() -> None:
    vip_inbox = InboxFactory()
    policy({(FRT, "normal"): (600, False)}, name="Everyone", position=10)
    vip = policy({(FRT, "normal"): (15, False)}, name="VIP", position=1)
    vip.inboxes.add(vip_inbox)
    policy({(FRT, "normal"): (5, False)}, name="SMS only", position=0, channels=["sms"])
    assert clock(ticket_at(at(2, 9), conversation__inbox=vip_inbox), FRT).policy_name == "VIP"
    assert clock(ticket_at(at(2, 9)), FRT).policy_name == "Everyone"
    assert clock(ticket_at(at(2, 9), channel="sms"), FRT).policy_name == "SMS only"


def test_no_target_for_the_priority_means_no_clock() -> None:
    policy({(FRT, "urgent"): (15, False)})
    ticket = ticket_at(at(2, 9))
    assert not SlaClock.objects.filter(ticket=ticket).exists()
    assert Ticket.objects.get(pk=ticket.pk).sla_state == ""


def test_priority_change_retargets_running_clocks_keeping_time_used(agent) -> None:
    policy({(FRT, "normal"): (240, False), (FRT, "urgent"): (60, False)})
    ticket = ticket_at(at(2, 9))
    ticket.priority = "urgent"
    Ticket.objects.filter(pk=ticket.pk).update(priority="urgent")
    sla.sla_ticket_changed(ticket=ticket, reason="Alice set the priority to Urgent", now=at(2, 9, 40))
    c = clock(ticket, FRT)
    assert c.target_seconds == 3600 and c.deadline == at(2, 10)
    assert c.started_at == at(2, 9)
    assert "240 min" not in c.events.get(kind="retarget").reason  # minutes shown as hours
    assert "4 h → 1 h" in c.events.get(kind="retarget").reason
    # Lowered back below what was used: it breaches at the next sweep.
    ticket.priority = "normal"
    Ticket.objects.filter(pk=ticket.pk).update(priority="normal")
    sla.sla_ticket_changed(ticket=ticket, reason="back to normal", now=at(2, 9, 50))
    assert clock(ticket, FRT).deadline == at(2, 13)


def test_policy_edits_do_not_rewrite_running_or_finished_clocks(agent) -> None:
    p = policy({(FRT, "normal"): (60, False)})
    ticket = ticket_at(at(2, 9))
    SlaTarget.objects.filter(policy=p).update(minutes=5)
    p.name = "Renamed"
    p.save()
    c = clock(ticket, FRT)
    assert (c.target_seconds, c.policy_name, c.deadline) == (3600, "Policy 1", at(2, 10))
    # It reaches the ticket on its next update, from then on.
    sla.sla_ticket_changed(ticket=ticket, reason="tags changed", now=at(2, 9, 1))
    c.refresh_from_db()
    assert (c.target_seconds, c.policy_name) == (300, "Renamed")


# --- the sweep ---------------------------------------------------------------------------------

def test_sweep_warns_then_breaches_exactly_once(agent) -> None:
    policy({(FRT, "normal"): (60, False)}, warn_at_percent=75)
    ticket = ticket_at(at(2, 9), assignee=agent)
    c = clock(ticket, FRT)
    assert (c.warn_at, c.next_check_at) == (at(2, 9, 45), at(2, 9, 45))
    assert sla.sla_sweep(now=at(2, 9, 44)).examined == 0
    first = sla.sla_sweep(now=at(2, 9, 45, ))
    again = sla.sla_sweep(now=at(2, 9, 50))
    assert (first.warned, again.warned, again.examined) == (1, 0, 0)
    t = Ticket.objects.get(pk=ticket.pk)
    assert t.sla_state == "warning" and t.sla_due_at == at(2, 10)
    assert sla.sla_sweep(now=at(2, 10)).breached == 1
    assert sla.sla_sweep(now=at(2, 10, 5)).examined == 0
    c.refresh_from_db()
    assert kinds(c) == ["start", "warn", "breach"] and c.next_check_at is None
    assert Ticket.objects.get(pk=ticket.pk).sla_state == "breached"
    assert ReportFact.objects.get(clock=c).breached is True
    # Still running after the breach: the reply fulfils it, the outcome stays "breached".
    reply(ticket, at(2, 10, 10), agent, waiting_since=at(2, 9))
    c.refresh_from_db()
    assert c.state == SlaClock.State.FULFILLED and ReportFact.objects.get(clock=c).breached is True


def test_a_late_sweep_records_the_breach_without_a_separate_warning(agent) -> None:
    policy({(FRT, "normal"): (60, False)})
    ticket = ticket_at(at(2, 9))
    result = sla.sla_sweep(now=at(2, 11))  # the sweep was down for two hours
    assert (result.warned, result.breached) == (1, 1)
    assert kinds(clock(ticket, FRT)) == ["start", "warn", "breach"]


def test_a_stale_sweep_cannot_record_twice(agent) -> None:
    """Two sweeps that both read the clock as due: the lock, the re-check and the unique
    constraint leave one event. Here the second comes after the first committed."""
    policy({(FRT, "normal"): (60, False)})
    ticket = ticket_at(at(2, 9))
    c = clock(ticket, FRT)
    sla._clock_check(clock_id=c.pk, ticket_id=ticket.pk, now=at(2, 10), cache={})
    # Force the stale view: the clock claims to be due again.
    SlaClock.objects.filter(pk=c.pk).update(next_check_at=at(2, 10), breached_at=None, warned_at=None)
    sla._clock_check(clock_id=c.pk, ticket_id=ticket.pk, now=at(2, 10), cache={})
    assert SlaEvent.objects.filter(clock=c, kind="breach").count() == 1
    assert SlaEvent.objects.filter(clock=c, kind="warn").count() == 1


def test_finding_due_clocks_costs_the_same_with_many_open_tickets() -> None:
    policy({(FRT, "normal"): (60, False)})
    for _ in range(30):
        ticket_at(at(2, 9))
    with CaptureQueriesContext(connection) as idle:
        assert sla.sla_sweep(now=at(2, 9, 30)).examined == 0
    # One query: the due clocks by the partial index on next_check_at.
    assert len(idle.captured_queries) == 1
    sql = idle.captured_queries[0]["sql"]
    assert "next_check_at" in sql and "LIMIT" in sql.upper()


def test_paused_clocks_are_never_due(agent) -> None:
    policy({(RES, "normal"): (60, False)})
    ticket = ticket_at(at(2, 9))
    status(ticket, Ticket.Status.PENDING, at(2, 9, 10), agent)
    c = clock(ticket, RES)
    assert c.next_check_at is None and c.deadline is None
    assert sla.sla_sweep(now=at(2, 18)).examined == 0
    assert Ticket.objects.get(pk=ticket.pk).sla_state == "paused"


# --- escalations -------------------------------------------------------------------------------

def test_escalations_notify_raise_priority_and_move_team(agent) -> None:
    team = TeamFactory(name="Tier 2")
    manager = UserFactory(username="mona")
    manager.groups.get_or_create(name=MANAGERS_GROUP)
    from django.contrib.auth.models import Group
    manager.groups.add(Group.objects.get(name=MANAGERS_GROUP))
    p = policy({(FRT, "normal"): (60, False), (FRT, "high"): (30, False)})
    SlaEscalation.objects.create(policy=p, on="warn", action="notify")
    SlaEscalation.objects.create(policy=p, on="breach", action="notify_managers")
    SlaEscalation.objects.create(policy=p, on="breach", action="raise_priority", metric=FRT)
    SlaEscalation.objects.create(policy=p, on="breach", action="move_to_team", team=team)
    ticket = ticket_at(at(2, 9), assignee=agent)
    sla.sla_sweep(now=at(2, 9, 45))
    assert list(Notification.objects.values_list("user__username", "kind")) == [("alice", "sla_warning")]
    sla.sla_sweep(now=at(2, 10))
    t = Ticket.objects.get(pk=ticket.pk)
    assert (t.priority, t.team_id) == ("high", team.pk)
    assert Notification.objects.filter(user=manager, kind="sla_breach").count() == 1
    texts = list(t.conversation.messages.filter(kind="system").values_list("text", flat=True))
    assert any("priority raised from Normal to High" in x for x in texts)
    assert any("moved to the team Tier 2" in x for x in texts)
    # The raised priority gave the running clock the tighter target, logged as such; its
    # breach stays recorded and it is never due again.
    c = clock(ticket, FRT)
    assert kinds(c) == ["start", "warn", "breach", "retarget"]
    assert c.breached_at is not None and c.next_check_at is None and c.target_seconds == 1800
    assert sla.sla_sweep(now=at(2, 10, 1)).examined == 0


# --- wiring through the services ------------------------------------------------------------------

def test_services_drive_the_clocks(agent, django_capture_on_commit_callbacks) -> None:
    """The real write paths: an inbound message creates the ticket and its clocks, a reply
    through ticket_reply_create fulfils them, a status change pauses, a merge stops."""
    from conversations.services import IncomingMessage
    from conversations.threading import ThreadMatch
    from tests.factories import ContactFactory
    from tickets.services import inbound_message_record, ticket_reply_create, ticket_set_status

    policy({(FRT, "normal"): (60, False), (RES, "normal"): (600, False), (NRT, "normal"): (30, False)})
    inbox = InboxFactory()
    inbox.members.add(agent)
    contact = ContactFactory()
    incoming = IncomingMessage(channel="email", from_address=contact.email, to_address="help@acme.test",
                               subject="Help", text="Hello", external_id="<m1@x>")
    message = inbound_message_record(inbox=inbox, contact=contact, incoming=incoming,
                                     thread=ThreadMatch(conversation=None, rule="new"))
    ticket = Ticket.objects.get(pk=message.conversation_id)
    assert ticket.channel == "email" and ticket.sla_state == "ok"
    assert set(ticket.sla_clocks.values_list("metric", flat=True)) == {FRT, RES}
    ticket_reply_create(ticket=ticket, author=agent, text="On it")
    assert clock(ticket, FRT).state == "fulfilled"
    assert ReportFact.objects.filter(ticket=ticket, kind__in=["created", "reply", "first_response"]).count() == 3
    again = IncomingMessage(channel="email", from_address=contact.email, to_address="help@acme.test",
                            subject="Re: Help", text="More", external_id="<m2@x>")
    inbound_message_record(inbox=inbox, contact=contact, incoming=again,
                           thread=ThreadMatch(conversation=ticket.conversation, rule="in_reply_to"))
    assert clock(ticket, NRT).state == "active"
    ticket_set_status(ticket=ticket, status=Ticket.Status.PENDING, by=agent)
    assert clock(ticket, RES).state == "paused"
    assert clock(ticket, NRT).state == "active"  # next response is never paused by default


# --- replaying history and validating policies -----------------------------------------------------

def test_backfill_replays_a_timeline_with_its_own_times(agent) -> None:
    """History imported (or older than the first policy) gets the clocks and facts live
    traffic would have produced; running it again gives the same, not double."""
    from tickets.backfill import sla_backfill

    ticket = TicketFactory(assignee=agent)
    Ticket.objects.filter(pk=ticket.pk).update(created_at=at(2, 9), status="solved", solved_at=at(2, 12))
    for kind, when, author in (("inbound", at(2, 9), None), ("outbound", at(2, 9, 30), agent),
                               ("inbound", at(2, 10), None), ("outbound", at(2, 11), agent)):
        m = MessageFactory(conversation=ticket.conversation, kind=kind, author_user=author)
        Message.objects.filter(pk=m.pk).update(created_at=when)
    policy({(FRT, "normal"): (60, False), (NRT, "normal"): (30, False), (RES, "normal"): (240, False)})
    for _ in range(2):
        sla_backfill(ticket_ids=[ticket.pk], now=at(3, 9))
    facts = dict(ReportFact.objects.filter(ticket=ticket).exclude(kind="sla").values_list("kind", "calendar_seconds"))
    assert facts == {"created": None, "reply": None, "first_response": 30 * 60, "next_response": 60 * 60,
                     "solved": None, "resolution": 3 * H}
    assert ReportFact.objects.filter(ticket=ticket, kind="reply").count() == 2
    outcomes = dict(ReportFact.objects.filter(ticket=ticket, kind="sla").values_list("metric", "breached"))
    assert outcomes == {FRT: False, NRT: True, RES: False}  # the next response took 60 of 30 minutes
    assert Ticket.objects.get(pk=ticket.pk).status == "solved"
    assert not SlaClock.objects.filter(ticket=ticket, state__in=["active", "paused"]).exists()


@pytest.mark.parametrize(("field", "value"), [
    ("channels", ["fax"]), ("priorities", ["critical"]), ("pause_statuses", {"resolution": ["solved"]}),
    ("pause_statuses", {"uptime": ["pending"]}), ("warn_at_percent", 100),
])
def test_a_policy_with_unknown_values_is_refused(field: str, value: object) -> None:
    from django.core.exceptions import ValidationError

    p = SlaPolicy(name="Bad", **{field: value})
    with pytest.raises(ValidationError) as err:
        p.full_clean()
    assert field in err.value.message_dict


def test_a_clock_started_late_keeps_the_moment_its_target_passed() -> None:
    """A target applied after the fact (a later policy, a replayed history): the deadline
    is when the target really passed, so the breach and the countdown say how late it is."""
    policy({(FRT, "normal"): (60, False)})
    ticket = TicketFactory()
    Ticket.objects.filter(pk=ticket.pk).update(created_at=at(2, 9))
    ticket = Ticket.objects.select_related("conversation").get(pk=ticket.pk)
    sla.sla_ticket_created(ticket=ticket, now=at(2, 12))
    c = clock(ticket, FRT)
    assert (c.deadline, c.next_check_at) == (at(2, 10), at(2, 9, 45))
    assert used(c, at(2, 12)) == 3 * H
    sla.sla_sweep(now=at(2, 12))
    assert ReportFact.objects.get(clock=c).at == at(2, 10)
