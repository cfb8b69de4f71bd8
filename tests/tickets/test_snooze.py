"""Snooze: until a time or until the customer replies; woken by a customer message, by an
agent, or by the beat task exactly once; the status and the SLA clocks never change."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connections, transaction
from django.utils import timezone

from conversations.models import Channel, Event, Message
from conversations.services import ApplicationError, IncomingMessage
from conversations.threading import ThreadMatch
from helpdesk.celery import app as celery_app
from tests.clients import api_client_for
from tests.factories import ContactFactory, EmailChannelFactory, TicketFactory, UserFactory
from tickets.models import InboxRouting, Notification, SlaClock, SlaMetric, SlaPolicy, SlaTarget, Ticket
from tickets.routing import routing_assign_waiting
from tickets.services import conversation_merge, inbound_message_record, ticket_set_status
from tickets.snooze import snooze_until_parse, snooze_wake_due, snooze_wake_one, ticket_snooze, ticket_unsnooze

pytestmark = pytest.mark.django_db

FRAGMENT = {"HTTP_X_DESK_FRAGMENT": "1"}
UTC = ZoneInfo("UTC")
# A Wednesday afternoon.
NOW = datetime(2030, 1, 16, 15, 30, tzinfo=UTC)


@pytest.fixture
def agent():
    return UserFactory(username="alice", first_name="Alice", last_name="Agent")


@pytest.fixture
def ticket(inbox, agent):
    contact = ContactFactory(name="Jane Customer", email="jane@example.org")
    return TicketFactory(conversation__inbox=inbox, conversation__contact=contact, conversation__subject="Printer on fire",
                         status=Ticket.Status.OPEN, assignee=agent)


def texts(ticket: Ticket) -> list[str]:
    return list(Message.objects.filter(conversation_id=ticket.pk, kind=Message.Kind.SYSTEM).order_by("id").values_list("text", flat=True))


def fresh(ticket: Ticket) -> Ticket:
    return Ticket.objects.get(pk=ticket.pk)


def customer_writes(ticket: Ticket, text: str = "Any news?") -> Message:
    contact = ticket.conversation.contact
    incoming = IncomingMessage(channel=Channel.EMAIL, from_address=contact.email, to_address="help@acme.test",
                               subject="Re: Printer on fire", text=text, external_id=f"<{text}-{Message.objects.count()}@x>")
    with transaction.atomic():
        return inbound_message_record(inbox=ticket.conversation.inbox, contact=contact, incoming=incoming,
                                      thread=ThreadMatch(conversation=ticket.conversation, rule="in_reply_to"))


# Parsing -------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("1h", datetime(2030, 1, 16, 16, 30, tzinfo=UTC)),
    ("4h", datetime(2030, 1, 16, 19, 30, tzinfo=UTC)),
    ("tomorrow", datetime(2030, 1, 17, 9, 0, tzinfo=UTC)),
    ("next_week", datetime(2030, 1, 21, 9, 0, tzinfo=UTC)),  # the Monday after
    ("2030-01-20T08:00+01:00", datetime(2030, 1, 20, 7, 0, tzinfo=UTC)),
    ("2030-01-20T08:00:00Z", datetime(2030, 1, 20, 8, 0, tzinfo=UTC)),
    ("2030-01-20T08:00", datetime(2030, 1, 20, 8, 0, tzinfo=UTC)),  # no offset: the desk's zone
    ("reply", None),
])
def test_presets_and_times_are_parsed_in_one_place(value, expected) -> None:
    assert snooze_until_parse(value, now=NOW) == expected


def test_tomorrow_and_next_week_are_mornings_in_the_desks_time_zone(settings) -> None:
    settings.TIME_ZONE = "America/New_York"
    monday_0300_utc = datetime(2030, 1, 21, 3, 0, tzinfo=UTC)  # still Sunday 22:00 in New York
    assert snooze_until_parse("tomorrow", now=monday_0300_utc) == datetime(2030, 1, 21, 9, 0, tzinfo=ZoneInfo("America/New_York"))
    assert snooze_until_parse("next_week", now=monday_0300_utc) == datetime(2030, 1, 21, 9, 0, tzinfo=ZoneInfo("America/New_York"))
    assert snooze_until_parse("2030-01-22T10:00", now=monday_0300_utc).utcoffset() == timedelta(hours=-5)


@pytest.mark.parametrize("value, reason", [
    ("", "Say until when"),
    ("soon", "Not a snooze time: 'soon'"),
    ("2030-02-30T10:00", "Not a snooze time"),
    ("2030-01-16T15:00+00:00", "has already passed"),
    ("2030-01-16T15:30+00:00", "has already passed"),
    ("2032-01-16T15:30+00:00", "a year at most"),
])
def test_bad_values_are_refused_with_the_reason(value, reason) -> None:
    with pytest.raises(ApplicationError, match=reason):
        snooze_until_parse(value, now=NOW)


# Snooze and unsnooze -----------------------------------------------------------------------

def test_snooze_keeps_the_status_and_the_sla_clocks_and_says_so_in_the_timeline(ticket, agent) -> None:
    policy = SlaPolicy.objects.create(name="Standard")
    SlaTarget.objects.create(policy=policy, metric=SlaMetric.FIRST_RESPONSE, priority="normal", minutes=60, business_hours=False)
    from tickets import sla
    sla.sla_ticket_created(ticket=ticket)
    clock_before = SlaClock.objects.get(ticket=ticket)
    until = timezone.now() + timedelta(hours=2)

    ticket_snooze(ticket=ticket, until=until, by=agent)

    snoozed = fresh(ticket)
    assert snoozed.is_snoozed and snoozed.snoozed_until == until and snoozed.snoozed_by == agent
    assert snoozed.status == Ticket.Status.OPEN and snoozed.sla_state == "ok"
    clock = SlaClock.objects.get(ticket=ticket)
    assert (clock.state, clock.deadline, clock.running_since) == (clock_before.state, clock_before.deadline, clock_before.running_since)
    assert texts(ticket)[-1].startswith("Alice Agent snoozed the conversation until ")
    assert Event.objects.filter(type="conversation.updated", conversation_id=ticket.pk).count() == 1


def test_snooze_until_reply_and_unsnooze(ticket, agent) -> None:
    ticket_snooze(ticket=ticket, until=None, by=agent)
    assert fresh(ticket).is_snoozed and fresh(ticket).snoozed_until is None
    ticket_unsnooze(ticket=ticket, by=agent)
    ticket_unsnooze(ticket=ticket, by=agent)  # not snoozed any more: nothing to say

    assert not fresh(ticket).is_snoozed
    assert texts(ticket) == ["Alice Agent snoozed the conversation until the customer replies.",
                             "Alice Agent unsnoozed the conversation."]
    assert Event.objects.filter(type="conversation.updated", conversation_id=ticket.pk).count() == 2


def test_solved_conversations_and_past_times_cannot_be_snoozed(ticket, agent) -> None:
    with pytest.raises(ApplicationError, match="has already passed"):
        ticket_snooze(ticket=ticket, until=timezone.now() - timedelta(minutes=1), by=agent)
    Ticket.objects.filter(pk=ticket.pk).update(status=Ticket.Status.SOLVED)
    with pytest.raises(ApplicationError, match="A solved conversation cannot be snoozed"):
        ticket_snooze(ticket=ticket, until=None, by=agent)
    assert not fresh(ticket).is_snoozed and texts(ticket) == []


def test_solving_or_merging_clears_a_snooze(ticket, agent, inbox) -> None:
    ticket_snooze(ticket=ticket, until=timezone.now() + timedelta(hours=1), by=agent)
    ticket_set_status(ticket=ticket, status=Ticket.Status.SOLVED, by=agent)
    assert not fresh(ticket).is_snoozed and fresh(ticket).snoozed_until is None

    source = TicketFactory(conversation__inbox=inbox, status=Ticket.Status.OPEN)
    target = TicketFactory(conversation__inbox=inbox, status=Ticket.Status.OPEN)
    ticket_snooze(ticket=source, until=None, by=agent)
    conversation_merge(source=source, target=target, by=agent)
    assert not fresh(source).is_snoozed and fresh(source).status == Ticket.Status.CLOSED


# Waking up ---------------------------------------------------------------------------------

@pytest.mark.parametrize("until", [None, timedelta(days=2)])
def test_a_customer_message_wakes_it_at_once(ticket, agent, until) -> None:
    ticket_snooze(ticket=ticket, until=until and timezone.now() + until, by=agent)

    customer_writes(ticket)

    assert not fresh(ticket).is_snoozed
    assert texts(ticket)[-1] == "Woken up: the customer replied."
    # The assignee hears of it through the new-message notification (one, not two).
    assert list(Notification.objects.filter(user=agent).values_list("kind", flat=True)) == ["message"]


def test_the_sweep_wakes_due_snoozes_notifies_the_assignee_and_leaves_the_rest(ticket, agent, inbox) -> None:
    now = timezone.now()
    ticket_snooze(ticket=ticket, until=now + timedelta(minutes=5), by=agent)
    later = TicketFactory(conversation__inbox=inbox, status=Ticket.Status.OPEN)
    ticket_snooze(ticket=later, until=now + timedelta(hours=5), by=agent)
    until_reply = TicketFactory(conversation__inbox=inbox, status=Ticket.Status.OPEN)
    ticket_snooze(ticket=until_reply, until=None, by=agent)
    unassigned = TicketFactory(conversation__inbox=inbox, status=Ticket.Status.OPEN, conversation__subject="No owner")
    ticket_snooze(ticket=unassigned, until=now + timedelta(minutes=1), by=agent)
    events_before = Event.objects.order_by("-id").values_list("id", flat=True).first()

    assert snooze_wake_due(now=now + timedelta(minutes=10)) == 2

    assert not fresh(ticket).is_snoozed and not fresh(unassigned).is_snoozed
    assert fresh(later).is_snoozed and fresh(until_reply).is_snoozed
    assert texts(ticket)[-1].startswith("Woken up: the snooze until ") and texts(ticket)[-1].endswith(" ended.")
    # The assignee is reminded; an unassigned conversation reminds whoever snoozed it.
    reminders = Notification.objects.filter(user=agent).order_by("id")
    assert [(n.kind, n.ticket_id) for n in reminders] == [("snooze", unassigned.pk), ("snooze", ticket.pk)]
    assert reminders[1].text == f"Snooze ended: #{ticket.pk} Printer on fire"
    assert set(Event.objects.filter(id__gt=events_before).values_list("type", "conversation_id")) == {
        ("conversation.updated", ticket.pk), ("conversation.updated", unassigned.pk)}
    assert snooze_wake_due(now=now + timedelta(minutes=10)) == 0  # a repeated run changes nothing


def test_the_claim_wakes_once_and_respects_a_snooze_changed_meanwhile(ticket, agent) -> None:
    now = timezone.now()
    until = now + timedelta(minutes=5)
    ticket_snooze(ticket=ticket, until=until, by=agent)
    due = now + timedelta(minutes=6)

    # Two runs that both read the row as due: only the first claim wakes it.
    assert snooze_wake_one(ticket_id=ticket.pk, until=until, snoozed_by_id=agent.pk, now=due) is True
    assert snooze_wake_one(ticket_id=ticket.pk, until=until, snoozed_by_id=agent.pk, now=due) is False
    assert [t for t in texts(ticket) if t.startswith("Woken up")] == [texts(ticket)[-1]]

    # Read as due, then snoozed again before the claim: the new snooze stands.
    ticket_snooze(ticket=ticket, until=now + timedelta(hours=3), by=agent)
    assert snooze_wake_one(ticket_id=ticket.pk, until=until, snoozed_by_id=agent.pk, now=due) is False
    assert fresh(ticket).is_snoozed


def test_a_snooze_left_on_a_solved_ticket_is_cleared_quietly(ticket, agent) -> None:
    until = timezone.now() + timedelta(minutes=1)
    ticket_snooze(ticket=ticket, until=until, by=agent)
    Ticket.objects.filter(pk=ticket.pk).update(status=Ticket.Status.SOLVED)  # a path that did not clear it

    assert snooze_wake_due(now=until + timedelta(seconds=1)) == 1

    assert not fresh(ticket).is_snoozed
    assert not texts(ticket)[-1].startswith("Woken up") and not Notification.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_workers_sweeping_at_once_wake_each_conversation_exactly_once(inbox, agent, settings) -> None:
    # A channel layer of its own: both threads push (after each commit) to nobody.
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    now = timezone.now()
    tickets = [TicketFactory(conversation__inbox=inbox, status=Ticket.Status.OPEN, assignee=agent) for _ in range(12)]
    for ticket in tickets:
        ticket_snooze(ticket=ticket, until=now + timedelta(seconds=1), by=agent)
    start = threading.Barrier(2)
    woken: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait(60)
            woken.append(snooze_wake_due(now=now + timedelta(seconds=2)))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert not any(thread.is_alive() for thread in threads)
    assert errors == [] and sum(woken) == 12, (errors, woken)
    assert Message.objects.filter(kind=Message.Kind.SYSTEM, text__startswith="Woken up").count() == 12
    assert Notification.objects.filter(user=agent).count() == 12
    assert not Ticket.objects.filter(snoozed_at__isnull=False).exists()


def test_the_beat_task_runs_the_sweep(ticket, agent, settings) -> None:
    ticket_snooze(ticket=ticket, until=timezone.now() + timedelta(seconds=1), by=agent)
    Ticket.objects.filter(pk=ticket.pk).update(snoozed_until=timezone.now() - timedelta(seconds=1))
    celery_app.loader.import_default_modules()

    celery_app.tasks["tickets.snooze_wake"]()

    assert not fresh(ticket).is_snoozed
    entry = settings.CELERY_BEAT_SCHEDULE["snooze-wake"]
    assert entry["task"] == "tickets.snooze_wake" and entry["schedule"] == 15.0


def test_routing_leaves_snoozed_conversations_waiting(inbox, agent) -> None:
    from tickets.models import AgentStatus

    InboxRouting.objects.create(inbox=inbox, mode="round_robin")
    AgentStatus.objects.create(user=agent, availability="online")
    snoozed = TicketFactory(conversation__inbox=inbox)
    ticket_snooze(ticket=snoozed, until=None, by=agent)

    assert routing_assign_waiting() == 0
    assert fresh(snoozed).assignee is None


# Endpoints ---------------------------------------------------------------------------------

def test_dashboard_snooze_answers_the_fragment_with_the_snooze_shown(client, agent, ticket) -> None:
    client.force_login(agent)

    response = client.post(f"/c/{ticket.pk}/snooze", {"until": "tomorrow"}, **FRAGMENT)

    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-testid="snoozed"' in page and "Snoozed until" in page and "Unsnooze" in page
    assert fresh(ticket).snoozed_until == snooze_until_parse("tomorrow")

    response = client.post(f"/c/{ticket.pk}/unsnooze", **FRAGMENT)
    assert response.status_code == 200 and 'data-testid="snoozed"' not in response.content.decode()
    assert not fresh(ticket).is_snoozed


def test_dashboard_snooze_takes_a_typed_time_and_refuses_bad_ones(client, agent, ticket) -> None:
    client.force_login(agent)
    at = (timezone.now() + timedelta(days=1)).replace(microsecond=0)

    ok = client.post(f"/c/{ticket.pk}/snooze", {"until": "", "until_local": at.strftime("%Y-%m-%dT%H:%M")}, **FRAGMENT)
    past = client.post(f"/c/{ticket.pk}/snooze", {"until": "2020-01-01T10:00+00:00"}, **FRAGMENT)
    empty = client.post(f"/c/{ticket.pk}/snooze", {}, **FRAGMENT)

    assert ok.status_code == 200 and fresh(ticket).snoozed_until == at.replace(second=0)
    assert past.status_code == 400 and "has already passed" in past.content.decode()
    assert empty.status_code == 400 and "Say until when" in empty.content.decode()


def test_dashboard_snooze_without_javascript_redirects_back(client, agent, ticket) -> None:
    client.force_login(agent)

    response = client.post(f"/c/{ticket.pk}/snooze", {"until": "reply"})

    assert response.status_code == 302 and response["Location"] == f"/c/{ticket.pk}/"
    assert fresh(ticket).is_snoozed


def test_snooze_endpoints_are_404_outside_the_agents_inboxes(stranger_client, ticket) -> None:
    assert stranger_client.post(f"/c/{ticket.pk}/snooze", {"until": "1h"}).status_code == 404
    assert stranger_client.post(f"/c/{ticket.pk}/unsnooze").status_code == 404
    assert not fresh(ticket).is_snoozed


def test_api_snooze_and_unsnooze(agent, ticket) -> None:
    api = api_client_for(agent)

    response = api.post(f"/api/v1/conversations/{ticket.pk}/snooze/", {"until": "4h"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == ticket.pk and body["snoozed_by"] == agent.pk and body["status"] == "open"
    assert datetime.fromisoformat(body["snoozed_until"]) == fresh(ticket).snoozed_until

    bad = api.post(f"/api/v1/conversations/{ticket.pk}/snooze/", {"until": "whenever"}, format="json")
    assert bad.status_code == 400 and "Not a snooze time" in bad.json()["detail"]

    response = api.delete(f"/api/v1/conversations/{ticket.pk}/snooze/")
    assert response.status_code == 200 and response.json()["snoozed_at"] is None
    assert not fresh(ticket).is_snoozed


def test_api_snooze_is_404_outside_the_agents_inboxes(ticket) -> None:
    stranger = UserFactory()
    EmailChannelFactory().inbox.members.add(stranger)
    api = api_client_for(stranger)

    assert api.post(f"/api/v1/conversations/{ticket.pk}/snooze/", {"until": "1h"}, format="json").status_code == 404
    assert api.delete(f"/api/v1/conversations/{ticket.pk}/snooze/").status_code == 404
