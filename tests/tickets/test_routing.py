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
