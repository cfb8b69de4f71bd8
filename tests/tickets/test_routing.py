"""Routing: round robin and least loaded, within each agent's capacity and availability;
waiting conversations are assigned as capacity frees up."""
from __future__ import annotations

import pytest

from tests.factories import InboxFactory, TicketFactory, UserFactory
from tickets.models import AgentStatus, InboxRouting, Notification, Ticket
from tickets.routing import agent_availability_set, routing_assign_waiting

pytestmark = pytest.mark.django_db


def agent(name: str, inbox, *, availability: str = "online", capacity: int = 10):
    user = UserFactory(username=name, first_name=name.title())
    inbox.members.add(user)
    AgentStatus.objects.create(user=user, availability=availability, capacity=capacity)
    return user


def waiting(inbox, count: int) -> list[Ticket]:
    return [TicketFactory(conversation__inbox=inbox) for _ in range(count)]


def owners(tickets: list[Ticket]) -> list[str | None]:
    return [t.assignee.username if t.assignee else None
            for t in Ticket.objects.filter(pk__in=[t.pk for t in tickets]).select_related("assignee").order_by("pk")]


@pytest.fixture
def inbox():
    return InboxFactory()


def test_round_robin_takes_turns_within_capacity_and_availability(inbox) -> None:
    InboxRouting.objects.create(inbox=inbox, mode="round_robin")
    agent("ann", inbox, capacity=1)
    agent("ben", inbox, availability="away")
    agent("cat", inbox, capacity=2)
    agent("dan", InboxFactory())  # online, but not a member of this inbox
    tickets = waiting(inbox, 4)
    assert routing_assign_waiting() == 3
    # ann, cat, then back round: ann is full, so cat; the fourth waits for room.
    assert owners(tickets) == ["ann", "cat", "cat", None]
    assert Ticket.objects.get(pk=tickets[0].pk).status == Ticket.Status.OPEN
    assert "Assigned to Ann (round robin)." in tickets[0].conversation.messages.values_list("text", flat=True)
    assert Notification.objects.filter(user__username="cat", kind="assignment").count() == 2


def test_round_robin_continues_where_it_left_off(inbox) -> None:
    InboxRouting.objects.create(inbox=inbox, mode="round_robin")
    for name in ("ann", "ben", "cat"):
        agent(name, inbox)
    first = waiting(inbox, 2)
    routing_assign_waiting()
    later = waiting(inbox, 2)
    routing_assign_waiting()
    assert owners(first) + owners(later) == ["ann", "ben", "cat", "ann"]


def test_least_loaded_gives_to_whoever_carries_least(inbox) -> None:
    InboxRouting.objects.create(inbox=inbox, mode="least_loaded")
    ann, ben = agent("ann", inbox), agent("ben", inbox)
    TicketFactory(conversation__inbox=inbox, assignee=ann, status="open")
    TicketFactory(conversation__inbox=InboxFactory(), assignee=ann, status="pending")  # load counts every inbox
    TicketFactory(conversation__inbox=inbox, assignee=ben, status="solved")  # solved is no load
    tickets = waiting(inbox, 3)
    routing_assign_waiting()
    # ann carries 2, ben 0: ben, ben; then 2 each, and ann has waited longer for one.
    assert owners(tickets) == ["ben", "ben", "ann"]


def test_waiting_conversations_are_assigned_as_capacity_frees_up(inbox) -> None:
    InboxRouting.objects.create(inbox=inbox, mode="least_loaded")
    agent("ann", inbox, capacity=1)
    first, second = waiting(inbox, 2)
    routing_assign_waiting()
    assert owners([first, second]) == ["ann", None]
    Ticket.objects.filter(pk=first.pk).update(status="solved")
    assert routing_assign_waiting() == 1
    assert owners([second]) == ["ann"]


def test_coming_online_routes_at_once(inbox, django_capture_on_commit_callbacks) -> None:
    InboxRouting.objects.create(inbox=inbox, mode="round_robin")
    ann = agent("ann", inbox, availability="offline")
    tickets = waiting(inbox, 1)
    assert routing_assign_waiting() == 0
    with django_capture_on_commit_callbacks(execute=True):
        agent_availability_set(user=ann, availability="online")
    assert owners(tickets) == ["ann"]


def test_manual_inboxes_and_taken_tickets_are_left_alone(inbox) -> None:
    manual = InboxFactory()
    InboxRouting.objects.create(inbox=manual, mode="manual")
    InboxRouting.objects.create(inbox=inbox, mode="round_robin")
    ann = agent("ann", inbox)
    manual.members.add(ann)
    untouched = waiting(manual, 1)
    taken = TicketFactory(conversation__inbox=inbox, assignee=UserFactory(username="zoe"))
    pending = TicketFactory(conversation__inbox=inbox, status="pending")
    assert routing_assign_waiting() == 0
    assert owners(untouched + [taken, pending]) == [None, "zoe", None]


# On arrival --------------------------------------------------------------------------------

def arrives(inbox, n: int = 1) -> list[Ticket]:
    """New conversations through the inbound path, as a webhook's task records them."""
    from django.db import transaction

    from conversations.services import IncomingMessage
    from conversations.threading import ThreadMatch
    from tests.factories import ContactFactory
    from tickets.services import inbound_message_record

    tickets = []
    for _ in range(n):
        contact = ContactFactory()
        incoming = IncomingMessage(channel="email", from_address=contact.email, to_address="help@acme.test",
                                   subject="Help", text="Hello", external_id=f"<{contact.email}@x>")
        with transaction.atomic():
            message = inbound_message_record(inbox=inbox, contact=contact, incoming=incoming,
                                             thread=ThreadMatch(conversation=None, rule="new"))
        tickets.append(Ticket.objects.get(pk=message.conversation_id))
    return tickets


def test_a_new_conversation_is_assigned_on_arrival_without_a_task(inbox, tasks) -> None:
    InboxRouting.objects.create(inbox=inbox, mode="round_robin")
    agent("ann", inbox, capacity=2)
    agent("ben", inbox, availability="away")

    tickets = arrives(inbox, 3)

    # ann takes two; the third waits for room (the periodic run assigns it later).
    assert owners(tickets) == ["ann", "ann", None]
    assert [t.status for t in Ticket.objects.filter(pk__in=[t.pk for t in tickets]).order_by("pk")] == ["open", "open", "new"]
    assert "Assigned to Ann (round robin)." in tickets[0].conversation.messages.values_list("text", flat=True)
    assert InboxRouting.objects.get(inbox=inbox).last_agent.username == "ann"
    assert AgentStatus.objects.get(user__username="ann").last_assigned_at is not None
    assert tasks.names() == []  # inside the inbound transaction, not a task


def test_arrivals_in_manual_or_unrouted_inboxes_wait(inbox) -> None:
    agent("ann", inbox)
    unrouted = arrives(inbox)
    InboxRouting.objects.create(inbox=inbox, mode="manual")
    manual = arrives(inbox)
    assert owners(unrouted + manual) == [None, None]


def test_least_loaded_on_arrival(inbox) -> None:
    InboxRouting.objects.create(inbox=inbox, mode="least_loaded")
    ann = agent("ann", inbox)
    agent("ben", inbox)
    TicketFactory(conversation__inbox=inbox, assignee=ann, status="open")
    # ben carries none, then both one and ann never had one routed to her: ann, then ben.
    assert owners(arrives(inbox, 3)) == ["ben", "ann", "ben"]


# The agent's availability ---------------------------------------------------------------------

def test_availability_reads_the_defaults_for_an_agent_who_never_set_it(client, inbox, django_assert_num_queries) -> None:
    user = UserFactory(username="ann")
    client.force_login(user)

    # 1 session, 2 user, 3 the agent's status.
    with django_assert_num_queries(3):
        response = client.get("/me/availability")

    assert response.json() == {"availability": "offline", "capacity": 10}
    assert not AgentStatus.objects.exists()  # reading creates nothing


def test_going_online_in_the_dashboard_routes_waiting_conversations_at_once(client, inbox,
                                                                            django_capture_on_commit_callbacks) -> None:
    InboxRouting.objects.create(inbox=inbox, mode="round_robin")
    ann = agent("ann", inbox, availability="away", capacity=2)
    tickets = arrives(inbox, 3)
    assert owners(tickets) == [None, None, None]
    client.force_login(ann)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/me/availability", {"availability": "online"})

    assert response.status_code == 200 and response.json() == {"availability": "online", "capacity": 2}
    assert owners(tickets) == ["ann", "ann", None]  # within capacity
    assert client.post("/me/availability", {"availability": "away"}).json()["availability"] == "away"
    assert client.get("/me/availability").json() == {"availability": "away", "capacity": 2}


def test_availability_refuses_an_unknown_value_and_a_plain_form_goes_back(client, inbox) -> None:
    ann = agent("ann", inbox, availability="away")
    client.force_login(ann)

    bad = client.post("/me/availability", {"availability": "asleep"})
    plain = client.post("/me/availability", {"availability": "offline"}, HTTP_ACCEPT="text/html,application/xhtml+xml")

    assert bad.status_code == 400 and bad.json() == {"error": "Unknown availability 'asleep'."}
    assert plain.status_code == 302 and plain["Location"] == "/"
    assert AgentStatus.objects.get(user=ann).availability == "offline"
    assert client.put("/me/availability").status_code == 405


def test_the_top_bar_shows_the_agents_availability(client, inbox) -> None:
    ann = agent("ann", inbox, availability="away", capacity=3)
    client.force_login(ann)

    page = client.get("/").content.decode()

    assert 'data-testid="availability"' in page and '<option value="away" selected>Away</option>' in page
    assert "up to 3 open" in page
