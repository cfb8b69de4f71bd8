"""In-app notifications for an agent's own work: an assignment by someone else (or by
routing), a mention (tests/tickets/test_mentions.py), a customer message on a conversation
assigned to them. Each reaches the agent's open dashboards after commit."""
from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.db import transaction

from conversations.models import Channel
from conversations.services import IncomingMessage
from conversations.threading import ThreadMatch
from tests.factories import ContactFactory, TeamFactory, TicketFactory, UserFactory
from tickets.models import AgentStatus, InboxRouting, Notification, Ticket
from tickets.services import inbound_message_record, ticket_assign

pytestmark = pytest.mark.django_db


@pytest.fixture
def agent():
    return UserFactory(username="alice", first_name="Alice", last_name="Archer")


@pytest.fixture
def ticket(inbox):
    contact = ContactFactory(name="Jane Customer", email="jane@example.org")
    return TicketFactory(conversation__inbox=inbox, conversation__contact=contact, conversation__subject="Printer on fire",
                         status=Ticket.Status.OPEN)


def rows() -> list[tuple[str, str, int | None]]:
    return list(Notification.objects.order_by("id").values_list("user__username", "kind", "ticket_id"))


def customer_writes(inbox, contact, conversation=None, text: str = "Hello?") -> None:
    incoming = IncomingMessage(channel=Channel.EMAIL, from_address=contact.email, to_address="help@acme.test",
                               subject="Printer on fire", text=text, external_id=f"<{text}@x>")
    with transaction.atomic():
        inbound_message_record(inbox=inbox, contact=contact, incoming=incoming,
                               thread=ThreadMatch(conversation=conversation, rule="in_reply_to" if conversation else "new"))


def test_an_assignment_by_someone_else_notifies_the_assignee(ticket, agent, bob) -> None:
    ticket_assign(ticket=ticket, assignee=bob, by=agent)

    assert rows() == [("bob", "assignment", ticket.pk)]
    assert Notification.objects.get().text == f"Alice Archer assigned you #{ticket.pk} Printer on fire"


def test_taking_a_conversation_or_unassigning_notifies_nobody(ticket, agent, bob) -> None:
    ticket_assign(ticket=ticket, assignee=agent, by=agent)
    ticket_assign(ticket=ticket, assignee=None, by=agent)
    ticket_assign(ticket=ticket, assignee=None, by=agent)
    assert rows() == []


def test_the_same_assignment_again_notifies_once(ticket, agent, bob) -> None:
    ticket_assign(ticket=ticket, assignee=bob, by=agent)
    ticket_assign(ticket=ticket, assignee=bob, by=agent)
    ticket_assign(ticket=ticket, assignee=bob, by=agent, team=TeamFactory())  # the team changes, not the assignee
    assert rows() == [("bob", "assignment", ticket.pk)]


def test_an_assignment_through_the_dashboard_reaches_the_assignees_dashboards(client, ticket, agent, bob, layer,
                                                                               django_capture_on_commit_callbacks) -> None:
    async_to_sync(layer.group_add)(f"agent.{bob.pk}", "bobs-tab")
    client.force_login(agent)

    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"/c/{ticket.pk}/assign", {"assignee": bob.pk}).status_code == 302

    push = async_to_sync(layer.receive)("bobs-tab")
    assert (push["type"], push["kind"], push["conversation_id"]) == ("desk.notification", "assignment", ticket.pk)


def test_a_customer_message_notifies_the_assignee(ticket, inbox, bob) -> None:
    contact = ticket.conversation.contact
    customer_writes(inbox, contact, ticket.conversation, text="Still   burning!\nHelp")
    assert rows() == []  # nobody's yet

    Ticket.objects.filter(pk=ticket.pk).update(assignee=bob)
    customer_writes(inbox, contact, ticket.conversation, text="Hello again")

    assert rows() == [("bob", "message", ticket.pk)]
    assert Notification.objects.get().text == f"New message on #{ticket.pk} from Jane Customer: Hello again"


def test_routing_on_arrival_notifies_the_agent_it_picks(inbox, bob) -> None:
    InboxRouting.objects.create(inbox=inbox, mode=InboxRouting.Mode.ROUND_ROBIN)
    AgentStatus.objects.create(user=bob, availability="online")

    customer_writes(inbox, ContactFactory(email="new@example.org"))

    ticket = Ticket.objects.get()
    assert rows() == [("bob", "assignment", ticket.pk)]

