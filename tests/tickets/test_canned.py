"""Canned responses: offered per inbox, placeholders filled as plain text, unknown ones kept."""
from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from conversations.models import Inbox
from tests.clients import api_client_for
from tests.factories import ContactFactory, EmailChannelFactory, InboxFactory, TicketFactory, UserFactory
from tickets.canned import canned_render, canned_responses_for_ticket
from tickets.models import AgentStatus, CannedResponse, InboxRouting

pytestmark = pytest.mark.django_db


@pytest.fixture
def agent():
    return UserFactory(username="alice", first_name="Alice", last_name="Archer")


@pytest.fixture
def inbox(agent):
    inbox = EmailChannelFactory(inbox__name="Acme Support").inbox
    inbox.members.add(agent)
    return inbox


@pytest.fixture
def ticket(inbox):
    contact = ContactFactory(name="Jane van Doe", email="jane@example.org")
    return TicketFactory(conversation__inbox=inbox, conversation__contact=contact)


@pytest.fixture
def responses(inbox):
    return {
        "hello": CannedResponse.objects.create(title="Greeting", shortcut="hello", body="Hi {{ contact.first_name }}!"),
        "refund": CannedResponse.objects.create(title="Refund issued", shortcut="refund", body="Refunded.", inbox=inbox),
        "other": CannedResponse.objects.create(title="Other inbox", shortcut="other", body="x", inbox=InboxFactory()),
    }


def test_every_placeholder_is_filled(ticket, agent) -> None:
    body = ("{{ contact.name }}|{{contact.first_name}}|{{  contact.email  }}|{{ agent.name }}|{{ agent.first_name }}|"
            "{{ conversation.id }}|{{ inbox.name }}")

    assert canned_render(body=body, ticket=ticket, agent=agent) == (
        f"Jane van Doe|Jane|jane@example.org|Alice Archer|Alice|{ticket.pk}|Acme Support")


@pytest.mark.parametrize("body", [
    "{{ contact.phone }}", "{{ agent.password }}", "{{ contact.__class__ }}", "{{ settings.SECRET_KEY }}",
    "{% load static %}", "{{ contact.name|upper }}", "{{ Contact.Name }}", "{ contact.name }",
])
def test_unknown_placeholders_and_template_syntax_stay_as_written(ticket, agent, body) -> None:
    assert canned_render(body=body, ticket=ticket, agent=agent) == body


def test_values_are_plain_text_and_never_read_as_placeholders_again(inbox, agent) -> None:
    contact = ContactFactory(name="<b>{{ agent.name }}</b>", email="x@example.org")
    ticket = TicketFactory(conversation__inbox=inbox, conversation__contact=contact)

    assert canned_render(body="Hi {{ contact.name }}", ticket=ticket, agent=agent) == "Hi <b>{{ agent.name }}</b>"


def test_missing_names_fall_back_sensibly(inbox) -> None:
    contact = ContactFactory(name="", email="anon@example.org")
    ticket = TicketFactory(conversation__inbox=inbox, conversation__contact=contact)
    nameless = UserFactory(username="zed", first_name="", last_name="")

    assert canned_render(body="{{ contact.first_name }}/{{ contact.name }}/{{ agent.name }}/{{ agent.first_name }}",
                         ticket=ticket, agent=nameless) == "/anon@example.org/zed/zed"


def test_only_responses_for_every_inbox_or_the_conversations_own(ticket, responses) -> None:
    assert [r.shortcut for r in canned_responses_for_ticket(ticket=ticket)] == ["hello", "refund"]
    assert [r.shortcut for r in canned_responses_for_ticket(ticket=ticket, q="/ref")] == ["refund"]
    assert [r.shortcut for r in canned_responses_for_ticket(ticket=ticket, q="greet")] == ["hello"]
    assert canned_responses_for_ticket(ticket=ticket, q="other") == []


def test_dashboard_list_with_filled_text(client, agent, ticket, responses, django_assert_num_queries) -> None:
    client.force_login(agent)

    # 1 session, 2 user, 3 manager check, 4 the agent's inbox ids, 5 the ticket with its
    # contact and inbox, 6 the responses.
    with django_assert_num_queries(6):
        response = client.get(f"/canned?conversation={ticket.pk}")

    assert response.status_code == 200
    assert response.json() == {"results": [
        {"id": responses["hello"].pk, "title": "Greeting", "shortcut": "hello", "body": "Hi {{ contact.first_name }}!",
         "text": "Hi Jane!"},
        {"id": responses["refund"].pk, "title": "Refund issued", "shortcut": "refund", "body": "Refunded.", "text": "Refunded."},
    ]}
    assert [r["shortcut"] for r in client.get(f"/canned?conversation={ticket.pk}&q=refu").json()["results"]] == ["refund"]


def test_dashboard_list_needs_a_conversation_the_agent_sees(client, agent, ticket, responses) -> None:
    client.force_login(agent)
    assert client.get("/canned").status_code == 400
    assert client.get("/canned?conversation=abc").json() == {"error": "conversation: the conversation's number is required."}
    foreign = TicketFactory(conversation__inbox=InboxFactory())
    assert client.get(f"/canned?conversation={foreign.pk}").status_code == 404


def test_api_list(agent, ticket, responses) -> None:
    api = api_client_for(agent)

    response = api.get(f"/api/v1/canned-responses/?conversation={ticket.pk}&q=hel")

    assert response.status_code == 200
    assert response.json() == {"results": [{"id": responses["hello"].pk, "title": "Greeting", "shortcut": "hello",
                                            "body": "Hi {{ contact.first_name }}!", "text": "Hi Jane!"}]}
    assert api.get("/api/v1/canned-responses/").status_code == 400
    foreign = TicketFactory(conversation__inbox=InboxFactory())
    assert api.get(f"/api/v1/canned-responses/?conversation={foreign.pk}").status_code == 404


def test_admin_lists_and_creates_responses_with_their_author(client, inbox) -> None:
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    CannedResponse.objects.create(title="Greeting", shortcut="hello", body="Hi")

    assert "Greeting" in client.get("/admin/tickets/cannedresponse/").content.decode()
    page = client.get("/admin/tickets/cannedresponse/add/").content.decode()
    assert "{{ contact.first_name }}" in page  # the placeholders are listed for whoever writes one
    response = client.post("/admin/tickets/cannedresponse/add/", {"title": "Bye", "shortcut": "bye", "body": "Bye {{ agent.name }}",
                                                                  "inbox": inbox.pk})

    assert response.status_code == 302
    assert CannedResponse.objects.get(shortcut="bye").created_by == admin


def test_demo_data_has_canned_responses_and_a_routed_inbox_with_capacities() -> None:
    call_command("seed_demo", stdout=StringIO())

    chat = Inbox.objects.get(name="Website chat")
    offered = CannedResponse.objects.filter(inbox__isnull=True)
    assert offered.count() >= 4 and CannedResponse.objects.filter(inbox=chat).exists()
    ticket = TicketFactory(conversation__inbox=chat, conversation__contact=ContactFactory(name="Sam Rivera"))
    alice = chat.members.get(username="alice")
    hello = CannedResponse.objects.get(shortcut="hello")
    assert canned_render(body=hello.body, ticket=ticket, agent=alice).startswith("Hi Sam,")
    assert InboxRouting.objects.get(inbox=chat).mode == "round_robin"
    statuses = {s.user.username: (s.availability, s.capacity) for s in AgentStatus.objects.select_related("user")}
    assert statuses["alice"][0] == "online" and statuses["carol"][0] == "away"
    assert all(capacity > 0 for _, capacity in statuses.values())
