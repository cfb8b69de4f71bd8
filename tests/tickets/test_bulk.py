"""Bulk actions: one action over a selection, each conversation through its single action's
service and permission scope, each in its own transaction, at a fixed cost per conversation."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conversations.models import Message
from conversations.services import ApplicationError
from tests.clients import api_client_for
from tests.factories import InboxFactory, TeamFactory, TicketFactory, UserFactory
from tickets.models import Tag, Ticket
from tickets.services import ticket_assign, ticket_set_priority, ticket_set_status, ticket_set_tags, tickets_bulk_apply
from tickets.snooze import ticket_snooze

pytestmark = pytest.mark.django_db


@pytest.fixture
def agent():
    return UserFactory(username="alice", first_name="Alice", last_name="Agent")


@pytest.fixture
def tickets(inbox):
    return [TicketFactory(conversation__inbox=inbox, status=Ticket.Status.OPEN) for _ in range(3)]


@pytest.fixture
def foreign():
    """A conversation in an inbox the agent is not in."""
    return TicketFactory(conversation__inbox=InboxFactory(name="Elsewhere"), status=Ticket.Status.OPEN)


def ids(tickets) -> list[int]:
    return [t.pk for t in tickets]


def state(tickets, field: str) -> list:
    return list(Ticket.objects.filter(pk__in=ids(tickets)).order_by("pk").values_list(field, flat=True))


def system_lines(ticket) -> list[str]:
    return list(Message.objects.filter(conversation_id=ticket.pk, kind=Message.Kind.SYSTEM).values_list("text", flat=True))


# The service ----------------------------------------------------------------------------------

def test_assign_to_me_skips_what_the_agent_cannot_see(agent, tickets, foreign) -> None:
    result = tickets_bulk_apply(user=agent, ids=[*ids(tickets), foreign.pk, 999999], action="assign", value="me")

    assert result.updated == 3
    assert result.skipped == [{"id": foreign.pk, "reason": "No such conversation in your inboxes."},
                              {"id": 999999, "reason": "No such conversation in your inboxes."}]
    assert state(tickets, "assignee_id") == [agent.pk] * 3
    assert Ticket.objects.get(pk=foreign.pk).assignee_id is None
    # Through the single action's service: its timeline line, its status change.
    assert system_lines(tickets[0]) == ["Alice Agent took the conversation."]


def test_assign_to_someone_is_checked_per_inbox(agent, inbox, tickets) -> None:
    bob = UserFactory(username="bob", first_name="Bob", last_name="B")
    inbox.members.add(bob)
    other_inbox = InboxFactory(name="Sales")
    other_inbox.members.add(agent)  # alice sees it, bob does not
    sales = TicketFactory(conversation__inbox=other_inbox, status=Ticket.Status.OPEN)

    result = tickets_bulk_apply(user=agent, ids=[tickets[0].pk, sales.pk], action="assign", value=str(bob.pk))

    assert result.updated == 1
    assert result.skipped == [{"id": sales.pk, "reason": f"User {bob.pk} does not work in Sales."}]
    assert Ticket.objects.get(pk=tickets[0].pk).assignee == bob and Ticket.objects.get(pk=sales.pk).assignee is None


def test_unassign_team_status_priority_tags_and_snooze(agent, tickets) -> None:
    team = TeamFactory(name="Billing")
    Ticket.objects.filter(pk__in=ids(tickets)).update(assignee=agent)
    tickets[0].tags.add(Tag.objects.create(name="vip"))

    for action, value in (("assign", ""), ("team", str(team.pk)), ("priority", "high"), ("tag", "Billing-2"),
                          ("untag", "vip"), ("status", "pending"), ("snooze", "reply")):
        assert tickets_bulk_apply(user=agent, ids=ids(tickets), action=action, value=value).updated == 3, action

    rows = Ticket.objects.filter(pk__in=ids(tickets)).order_by("pk")
    assert [(t.assignee_id, t.team_id, t.priority, t.status, t.is_snoozed, t.snoozed_until) for t in rows] == [
        (None, team.pk, "high", "pending", True, None)] * 3
    assert [sorted(t.tags.values_list("name", flat=True)) for t in rows] == [["billing-2"]] * 3

    assert tickets_bulk_apply(user=agent, ids=ids(tickets), action="team", value="").updated == 3
    assert state(tickets, "team_id") == [None] * 3


def test_one_failure_does_not_undo_the_others(agent, inbox, tickets) -> None:
    solved = TicketFactory(conversation__inbox=inbox, status=Ticket.Status.SOLVED)

    result = tickets_bulk_apply(user=agent, ids=[tickets[0].pk, solved.pk, tickets[1].pk], action="snooze", value="4h")

    assert result.updated == 2
    assert result.skipped == [{"id": solved.pk, "reason": "A solved conversation cannot be snoozed."}]
    assert state([tickets[0], tickets[1]], "snoozed_at") != [None, None]
    assert Ticket.objects.get(pk=solved.pk).snoozed_at is None and system_lines(solved) == []


@pytest.mark.parametrize("action, value, reason", [
    ("delete", "", "Unknown action 'delete'"),
    ("status", "gone", "Unknown status 'gone'"),
    ("priority", "", "Unknown priority ''"),
    ("assign", "bob", "Assign to a user id"),
    ("team", "12345", "No team '12345'"),
    ("tag", "no spaces", "A tag is made of"),
    ("snooze", "2001-01-01T00:00Z", "has already passed"),
])
def test_a_bad_action_or_value_changes_nothing(agent, tickets, action, value, reason) -> None:
    with pytest.raises(ApplicationError, match=reason):
        tickets_bulk_apply(user=agent, ids=ids(tickets), action=action, value=value)
    assert not Message.objects.exists()


def test_no_selection_or_too_many(agent) -> None:
    with pytest.raises(ApplicationError, match="Select at least one"):
        tickets_bulk_apply(user=agent, ids=[], action="assign", value="me")
    with pytest.raises(ApplicationError, match="At most 500"):
        tickets_bulk_apply(user=agent, ids=list(range(1, 502)), action="assign", value="me")


SINGLE = {
    "assign": lambda ticket, agent: ticket_assign(ticket=ticket, assignee=agent, by=agent),
    "priority": lambda ticket, agent: ticket_set_priority(ticket=ticket, priority="urgent", by=agent),
    "tag": lambda ticket, agent: ticket_set_tags(ticket=ticket, names=["vip"], by=agent),
    "snooze": lambda ticket, agent: ticket_snooze(ticket=ticket, until=timezone.now() + timedelta(hours=1), by=agent),
    "status": lambda ticket, agent: ticket_set_status(ticket=ticket, status="solved", by=agent),
}
VALUES = {"assign": "me", "priority": "urgent", "tag": "vip", "snooze": "1h", "status": "solved"}


@pytest.mark.parametrize("action", list(SINGLE))
def test_each_conversation_costs_what_its_single_action_costs(agent, inbox, action) -> None:
    Tag.objects.create(name="vip")  # created once, before either counts

    def single() -> int:
        ticket = Ticket.objects.get(pk=TicketFactory(conversation__inbox=inbox, status=Ticket.Status.OPEN).pk)
        with CaptureQueriesContext(connection) as queries:
            SINGLE[action](ticket, agent)
        return len(queries)

    def bulk(count: int) -> int:
        selection = [TicketFactory(conversation__inbox=inbox, status=Ticket.Status.OPEN) for _ in range(count)]
        fresh_agent = type(agent).objects.get(pk=agent.pk)  # no role or inbox ids cached on it
        with CaptureQueriesContext(connection) as queries:
            assert tickets_bulk_apply(user=fresh_agent, ids=ids(selection), action=action, value=VALUES[action]).updated == count
        return len(queries)

    per_ticket = single() + 2  # and the bulk's own savepoint around it (its own transaction)
    # Fixed: the manager check, the agent's inbox ids, the selection (and its tags to add to).
    fixed = 4 if action == "tag" else 3
    assert bulk(2) == fixed + 2 * per_ticket
    assert bulk(5) == fixed + 5 * per_ticket


def test_query_count_of_a_bulk_assignment(agent, inbox, django_assert_num_queries) -> None:
    selection = [TicketFactory(conversation__inbox=inbox, status=Ticket.Status.OPEN) for _ in range(3)]
    fresh_agent = type(agent).objects.get(pk=agent.pk)
    # 1 manager check, 2 the agent's inbox ids, 3 the selection with conversations and inboxes;
    # then per conversation (9): the bulk's savepoint, ticket_assign's savepoint, the locked
    # ticket, its update, the timeline line, the conversation's message count, the event, and
    # the two savepoints released.
    with django_assert_num_queries(3 + 3 * 9):
        tickets_bulk_apply(user=fresh_agent, ids=ids(selection), action="assign", value="me")


# The endpoints --------------------------------------------------------------------------------

def test_dashboard_bulk_takes_form_fields_and_answers_json(client, agent, tickets, foreign) -> None:
    client.force_login(agent)

    response = client.post("/bulk", {"ids": [*ids(tickets), foreign.pk], "action": "priority", "value": "urgent"})

    assert response.status_code == 200
    assert response.json() == {"updated": 3, "skipped": [{"id": foreign.pk, "reason": "No such conversation in your inboxes."}]}
    assert state(tickets, "priority") == ["urgent"] * 3


def test_dashboard_bulk_takes_json_too(client, agent, tickets) -> None:
    client.force_login(agent)

    response = client.post("/bulk", {"ids": ids(tickets), "action": "assign", "value": "me"}, content_type="application/json")

    assert response.status_code == 200 and response.json() == {"updated": 3, "skipped": []}
    assert state(tickets, "assignee_id") == [agent.pk] * 3


@pytest.mark.parametrize("data, reason", [
    ({"ids": ["1", "x"], "action": "assign", "value": "me"}, "ids are conversation numbers."),
    ({"ids": [], "action": "assign", "value": "me"}, "Select at least one conversation."),
    ({"ids": ["1"], "action": "explode"}, "Unknown action 'explode'"),
])
def test_dashboard_bulk_answers_400_with_the_reason(client, agent, tickets, data, reason) -> None:
    client.force_login(agent)

    response = client.post("/bulk", data)

    assert response.status_code == 400 and response.json()["error"].startswith(reason)


def test_dashboard_bulk_needs_a_post_and_a_login(client) -> None:
    assert client.post("/bulk", {"ids": ["1"], "action": "assign", "value": "me"}).status_code == 302  # to the login page
    client.force_login(UserFactory())
    assert client.get("/bulk").status_code == 405


def test_api_bulk(agent, tickets, foreign) -> None:
    api = api_client_for(agent)

    response = api.post("/api/v1/conversations/bulk/", {"ids": [*ids(tickets), foreign.pk], "action": "status",
                                                        "value": "on_hold"}, format="json")
    bad = api.post("/api/v1/conversations/bulk/", {"ids": ids(tickets), "action": "status", "value": "nope"}, format="json")
    invalid = api.post("/api/v1/conversations/bulk/", {"ids": [], "action": "fly"}, format="json")

    assert response.status_code == 200
    assert response.json() == {"updated": 3, "skipped": [{"id": foreign.pk, "reason": "No such conversation in your inboxes."}]}
    assert state(tickets, "status") == ["on_hold"] * 3
    assert bad.status_code == 400 and bad.json()["detail"].startswith("Unknown status 'nope'")
    assert invalid.status_code == 400 and set(invalid.json()) == {"ids", "action"}


def test_a_snooze_over_a_selection_uses_one_wake_up_time(agent, tickets) -> None:
    before = timezone.now()
    tickets_bulk_apply(user=agent, ids=ids(tickets), action="snooze", value="1h")

    wake = set(state(tickets, "snoozed_until"))
    assert len(wake) == 1 and timedelta(minutes=59) < wake.pop() - before <= timedelta(hours=1, seconds=5)
