"""Transfer to a team: the header's team select (POST /c/<id>/team) and its service."""
from __future__ import annotations

import pytest

from conversations.models import Event, Message
from tests.factories import InboxFactory, TeamFactory, TicketFactory, UserFactory
from tickets.models import Ticket
from tickets.services import ticket_set_team

pytestmark = pytest.mark.django_db

FRAGMENT = {"HTTP_X_DESK_FRAGMENT": "1"}


@pytest.fixture
def agent():
    return UserFactory(username="alice", first_name="Alice", last_name="Archer")


@pytest.fixture
def ticket(inbox):
    return TicketFactory(conversation__inbox=inbox, status=Ticket.Status.OPEN)


@pytest.fixture
def billing(agent):
    team = TeamFactory(name="Billing")
    team.members.add(agent)
    return team


def lines(ticket) -> list[str]:
    return list(Message.objects.filter(conversation_id=ticket.pk, kind=Message.Kind.SYSTEM).order_by("id").values_list("text", flat=True))


def test_a_transfer_keeps_an_assignee_of_the_team_and_lets_go_of_others(ticket, agent, bob, billing) -> None:
    Ticket.objects.filter(pk=ticket.pk).update(assignee=agent)
    ticket_set_team(ticket=ticket, team=billing, by=agent)
    assert Ticket.objects.get(pk=ticket.pk).assignee == agent

    technical = TeamFactory(name="Technical")
    ticket_set_team(ticket=ticket, team=technical, by=bob)
    ticket_set_team(ticket=ticket, team=technical, by=bob)  # no change: nothing to say
    ticket_set_team(ticket=ticket, team=None, by=bob)

    assert Ticket.objects.get(pk=ticket.pk).assignee is None and Ticket.objects.get(pk=ticket.pk).team is None
    assert lines(ticket) == [
        "Alice Archer transferred the conversation to team Billing.",
        "Bob Brennan transferred the conversation to team Technical (Alice Archer is not in it: unassigned).",
        "Bob Brennan removed the conversation from team Technical.",
    ]
    assert Event.objects.filter(type="conversation.updated", conversation_id=ticket.pk).count() == 3


def test_the_team_select_answers_the_fragment(client, agent, ticket, billing) -> None:
    TeamFactory(name="Technical")
    client.force_login(agent)

    response = client.post(f"/c/{ticket.pk}/team", {"team": billing.pk}, **FRAGMENT)

    assert response.status_code == 200
    page = response.content.decode()
    assert f'<option value="{billing.pk}" selected>Billing</option>' in page and ">Technical</option>" in page
    assert Ticket.objects.get(pk=ticket.pk).team == billing
    assert client.post(f"/c/{ticket.pk}/team", {"team": ""}, **FRAGMENT).status_code == 200
    assert Ticket.objects.get(pk=ticket.pk).team is None


def test_an_unknown_team_is_a_400_and_a_foreign_conversation_a_404(client, agent, ticket, billing) -> None:
    client.force_login(agent)

    for bad in ("999", "abc"):
        response = client.post(f"/c/{ticket.pk}/team", {"team": bad}, **FRAGMENT)
        assert response.status_code == 400 and response.content.decode() == "No such team."
    foreign = TicketFactory(conversation__inbox=InboxFactory())
    assert client.post(f"/c/{foreign.pk}/team", {"team": billing.pk}).status_code == 404
    assert Ticket.objects.get(pk=foreign.pk).team is None


def test_without_javascript_the_transfer_redirects_back(client, agent, ticket, billing) -> None:
    client.force_login(agent)

    response = client.post(f"/c/{ticket.pk}/team", {"team": billing.pk})

    assert response.status_code == 302 and response["Location"] == f"/c/{ticket.pk}/"
