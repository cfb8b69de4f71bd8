"""The collision check: a reply or note written while the customer or another agent spoke is
held back (409 with what arrived) until the agent confirms; dashboard and API alike."""
from __future__ import annotations

import pytest

from conversations.models import Channel, Message
from tests.clients import api_client_for
from tests.factories import ContactFactory, EmailChannelFactory, MessageFactory, TicketFactory, UserFactory
from tickets.selectors import messages_since_conflicting

pytestmark = pytest.mark.django_db

FRAGMENT = {"HTTP_X_DESK_FRAGMENT": "1"}
DELIVER = "channels_in.outbound_deliver"


@pytest.fixture
def agent():
    return UserFactory(username="alice", first_name="Alice", last_name="Agent")


@pytest.fixture
def colleague():
    return UserFactory(username="bob", first_name="Bob", last_name="Builder")


@pytest.fixture
def ticket(agent, colleague):
    inbox = EmailChannelFactory(inbox__name="Support").inbox
    inbox.members.add(agent, colleague)
    contact = ContactFactory(name="Jane Customer", email="jane@example.org")
    return TicketFactory(conversation__inbox=inbox, conversation__contact=contact, conversation__subject="Printer on fire")


def customer_writes(ticket, text: str) -> Message:
    return MessageFactory(conversation=ticket.conversation, kind=Message.Kind.INBOUND, author_contact=ticket.conversation.contact,
                          text=text, text_display=text)


def agent_replies(ticket, user, text: str) -> Message:
    return MessageFactory(conversation=ticket.conversation, kind=Message.Kind.OUTBOUND, author_user=user, text=text,
                          text_display=text, delivery_status="sent")


def replies(ticket, user) -> list[str]:
    return list(Message.objects.filter(conversation=ticket.conversation, author_user=user, kind__in=["outbound", "note"])
                .order_by("id").values_list("text", flat=True))


# The dashboard ---------------------------------------------------------------------------

def test_a_reply_written_while_the_customer_wrote_again_is_held_back(agent_client, ticket, agent, tasks):
    seen = customer_writes(ticket, "My printer is on fire")
    news = customer_writes(ticket, "Never mind,\nthe fire brigade is here")

    response = agent_client.post(f"/c/{ticket.pk}/reply", {"text": "Unplug it!", "seen_message_id": seen.pk}, **FRAGMENT)

    assert response.status_code == 409
    assert response.json() == {
        "error": "Since you started writing, the customer wrote 1 new message. Review them, or send anyway.",
        "conflict": [{"id": news.pk, "kind": "inbound", "author": "Jane Customer", "preview": "Never mind, the fire brigade is here",
                      "created_at": news.created_at.isoformat()}],
    }
    assert replies(ticket, agent) == [] and tasks.sent == []


def test_send_anyway_with_confirm(agent_client, ticket, agent, tasks, django_capture_on_commit_callbacks):
    seen = customer_writes(ticket, "My printer is on fire")
    customer_writes(ticket, "Hello?")

    with django_capture_on_commit_callbacks(execute=True):
        response = agent_client.post(f"/c/{ticket.pk}/reply", {"text": "Unplug it!", "seen_message_id": seen.pk, "confirm": "1"},
                                     **FRAGMENT)

    assert response.status_code == 200
    assert replies(ticket, agent) == ["Unplug it!"]
    assert [name for name, _args in tasks.sent] == [DELIVER]


def test_another_agents_reply_is_a_collision_with_their_name(agent_client, ticket, agent, colleague):
    seen = customer_writes(ticket, "My printer is on fire")
    bob = agent_replies(ticket, colleague, "Please unplug it.")
    news = customer_writes(ticket, "Done")

    response = agent_client.post(f"/c/{ticket.pk}/note", {"text": "Checking", "seen_message_id": seen.pk}, **FRAGMENT)

    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "Since you started writing, the customer wrote 1 new message and Bob Builder replied. Review them, or send anyway."
    assert [(c["id"], c["kind"], c["author"]) for c in body["conflict"]] == [(news.pk, "inbound", "Jane Customer"),
                                                                              (bob.pk, "outbound", "Bob Builder")]
    assert replies(ticket, agent) == []


def test_what_does_not_change_a_reply_is_no_collision(agent_client, ticket, agent, colleague):
    seen = customer_writes(ticket, "My printer is on fire")
    agent_replies(ticket, agent, "My own earlier reply from another tab")
    MessageFactory(conversation=ticket.conversation, kind=Message.Kind.NOTE, channel=Channel.INTERNAL, author_user=colleague,
                   text="Bob's internal note")
    MessageFactory(conversation=ticket.conversation, kind=Message.Kind.SYSTEM, channel=Channel.INTERNAL, text="Bob changed the status")
    MessageFactory(conversation=ticket.conversation, kind=Message.Kind.OUTBOUND, author_user=None, text="Automatic acknowledgement")

    response = agent_client.post(f"/c/{ticket.pk}/reply", {"text": "Unplug it!", "seen_message_id": seen.pk}, **FRAGMENT)

    assert response.status_code == 200
    assert replies(ticket, agent)[-1] == "Unplug it!"


def test_without_seen_message_id_nothing_is_checked(agent_client, ticket, agent):
    customer_writes(ticket, "My printer is on fire")
    customer_writes(ticket, "Hello?")

    response = agent_client.post(f"/c/{ticket.pk}/reply", {"text": "Unplug it!"}, **FRAGMENT)

    assert response.status_code == 200 and replies(ticket, agent) == ["Unplug it!"]


def test_a_bad_seen_message_id_is_a_400_with_the_reason(agent_client, ticket, agent):
    response = agent_client.post(f"/c/{ticket.pk}/reply", {"text": "Unplug it!", "seen_message_id": "latest"}, **FRAGMENT)

    assert response.status_code == 400 and response.content.decode() == "seen_message_id: Enter a whole number."
    assert replies(ticket, agent) == []


def test_stranger_gets_404_before_any_check(stranger_client, ticket):
    seen = customer_writes(ticket, "My printer is on fire")
    customer_writes(ticket, "Hello?")

    response = stranger_client.post(f"/c/{ticket.pk}/reply", {"text": "x", "seen_message_id": seen.pk}, **FRAGMENT)

    assert response.status_code == 404


def test_conflicts_are_newest_first_capped_and_one_query(ticket, agent, django_assert_num_queries):
    seen = customer_writes(ticket, "first")
    for n in range(25):
        customer_writes(ticket, f"again {n}")

    with django_assert_num_queries(1):
        conflicts = messages_since_conflicting(conversation_id=ticket.pk, after_id=seen.pk, user=agent)
        names = [m.author_contact.display_name for m in conflicts]

    assert len(conflicts) == 20 and conflicts[0].text == "again 24" and set(names) == {"Jane Customer"}


# The API ---------------------------------------------------------------------------------

@pytest.mark.parametrize("action", ["reply", "notes"])
def test_api_reply_and_note_have_the_same_check(ticket, agent, colleague, action):
    api = api_client_for(agent)
    seen = customer_writes(ticket, "My printer is on fire")
    bob = agent_replies(ticket, colleague, "Please unplug it.")
    url = f"/api/v1/conversations/{ticket.pk}/{action}/"

    held = api.post(url, {"text": "Unplug it!", "seen_message_id": seen.pk}, format="json")
    assert held.status_code == 409
    assert held.json()["conflict"] == [{"id": bob.pk, "kind": "outbound", "author": "Bob Builder", "preview": "Please unplug it.",
                                        "created_at": bob.created_at.isoformat()}]
    assert replies(ticket, agent) == []

    assert api.post(url, {"text": "Unplug it!", "seen_message_id": bob.pk}, format="json").status_code == 201
    assert api.post(url, {"text": "Again", "seen_message_id": seen.pk, "confirm": True}, format="json").status_code == 201
    assert api.post(url, {"text": "Older client"}, format="json").status_code == 201  # no seen_message_id: no check
    assert replies(ticket, agent) == ["Unplug it!", "Again", "Older client"]
    assert api.post(url, {"text": "x", "seen_message_id": -1}, format="json").status_code == 400
