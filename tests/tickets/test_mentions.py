"""@mentions in internal notes: parsed case-insensitively on word boundaries, notifying only
agents who can see the conversation, never the author, once each."""
from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import Group

from conversations.models import Message
from conversations.services import ApplicationError
from helpdesk.roles import MANAGERS_GROUP
from tests.factories import InboxFactory, TicketFactory, UserFactory
from tickets.mentions import mentioned_usernames
from tickets.models import Notification
from tickets.services import ticket_note_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def agent():
    return UserFactory(username="alice", first_name="Alice", last_name="Archer")


@pytest.fixture
def team(inbox):
    """bob works the inbox, maria manages, olga works elsewhere, ivan left."""
    bob = UserFactory(username="bob", first_name="Bob", last_name="Brennan")
    inbox.members.add(bob)
    maria = UserFactory(username="maria", first_name="Maria", last_name="Mendes")
    maria.groups.add(Group.objects.get_or_create(name=MANAGERS_GROUP)[0])
    olga = UserFactory(username="olga", first_name="Olga")
    InboxFactory().members.add(olga)
    ivan = UserFactory(username="ivan", first_name="Ivan", is_active=False)
    inbox.members.add(ivan)
    return {"bob": bob, "maria": maria, "olga": olga, "ivan": ivan}


@pytest.fixture
def ticket(inbox):
    return TicketFactory(conversation__inbox=inbox, conversation__subject="Refund please")


def notified(kind: str = "mention") -> list[str]:
    return sorted(Notification.objects.filter(kind=kind).values_list("user__username", flat=True))


@pytest.mark.parametrize("text, names", [
    ("@bob can you look?", ["bob"]),
    ("Ask @Bob.", ["bob"]),
    ("(@bob, @maria)", ["bob", "maria"]),
    ("@bob and @BOB and @bob", ["bob"]),
    ("mail alice@bob.example or a@b.c", []),
    ("no one here", []),
    ("@j.doe-2 and @first_last+x", ["j.doe-2", "first_last+x"]),
    ("@", []),
    ("email@bob and x@@bob", []),
])
def test_usernames_are_parsed_on_word_boundaries(text, names) -> None:
    assert mentioned_usernames(text) == names


def test_a_note_notifies_mentioned_agents_who_can_see_it(ticket, agent, team) -> None:
    message = ticket_note_create(ticket=ticket, author=agent,
                                 text="@Bob @maria please check; @olga @ivan @alice @nobody, and again @BOB")

    assert message.kind == Message.Kind.NOTE and message.author_user == agent
    # Not olga (another inbox), not ivan (inactive), not alice (the author), bob once.
    assert notified() == ["bob", "maria"]
    bob_note = Notification.objects.get(user=team["bob"])
    assert bob_note.ticket_id == ticket.pk
    assert bob_note.text == f"Alice Archer mentioned you on #{ticket.pk}: @Bob @maria please check; @olga @ivan @alice @nobody, and again @BOB"


def test_a_note_without_mentions_notifies_nobody(ticket, agent, team, django_assert_num_queries) -> None:
    # Savepoints of ticket_note_create and note_create, the note, the message count, the
    # event, the two releases: no user is looked up.
    with django_assert_num_queries(7):
        ticket_note_create(ticket=ticket, author=agent, text="Called the customer, waiting on them.")
    assert not Notification.objects.exists()


def test_an_empty_note_is_refused_and_notifies_nobody(ticket, agent, team) -> None:
    with pytest.raises(ApplicationError):
        ticket_note_create(ticket=ticket, author=agent, text="   ")
    assert not Notification.objects.exists()


def test_the_mention_reaches_the_agents_open_dashboards(ticket, agent, team, layer, django_capture_on_commit_callbacks) -> None:
    async_to_sync(layer.group_add)(f"agent.{team['bob'].pk}", "bob-dashboard")

    with django_capture_on_commit_callbacks(execute=True):
        ticket_note_create(ticket=ticket, author=agent, text="@bob over to you")

    push = async_to_sync(layer.receive)("bob-dashboard")
    note = Notification.objects.get(user=team["bob"])
    assert push == {"type": "desk.notification", "id": note.pk, "kind": "mention", "text": note.text,
                    "conversation_id": ticket.pk}


def test_mentionable_lists_who_can_see_the_conversation(client, agent, ticket, team, django_assert_num_queries) -> None:
    client.force_login(agent)

    # 1 session, 2 user, 3 manager check, 4 the agent's inbox ids, 5 the ticket, 6 the agents.
    with django_assert_num_queries(6):
        response = client.get(f"/mentionable?conversation={ticket.pk}")

    assert response.status_code == 200
    assert response.json() == {"results": [
        {"id": agent.pk, "username": "alice", "name": "Alice Archer"},
        {"id": team["bob"].pk, "username": "bob", "name": "Bob Brennan"},
        {"id": team["maria"].pk, "username": "maria", "name": "Maria Mendes"},
    ]}
    by_prefix = client.get(f"/mentionable?conversation={ticket.pk}&q=@B").json()["results"]
    by_name = client.get(f"/mentionable?conversation={ticket.pk}&q=mend").json()["results"]
    assert [r["username"] for r in by_prefix] == ["bob"] and [r["username"] for r in by_name] == ["maria"]


def test_mentionable_needs_a_conversation_the_agent_sees(client, agent, team) -> None:
    client.force_login(agent)
    foreign = TicketFactory(conversation__inbox=InboxFactory())

    assert client.get("/mentionable").status_code == 400
    assert client.get(f"/mentionable?conversation={foreign.pk}").status_code == 404
