"""The conversation list: views and their counts, filters, sorts, unread marks, the pane
around it, the API list with the same parameters, and every list's query budget."""
from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from conversations.models import Message
from tests.clients import api_client_for, manager_client
from tests.factories import ContactFactory, EmailChannelFactory, InboxFactory, MessageFactory, TeamFactory, TicketFactory, UserFactory
from tickets.models import Tag, Ticket, TicketRead
from tickets.selectors import ticket_list, view_counts
from tickets.unread import ticket_mark_read
from tickets.views import DASHBOARD_CSP

pytestmark = pytest.mark.django_db

NOW = timezone.now()


@pytest.fixture
def agent():
    return UserFactory(username="alice", first_name="Alice", last_name="Agent")


@pytest.fixture
def colleague():
    return UserFactory(username="bob", first_name="Bob", last_name="Builder")


@pytest.fixture
def inbox(agent, colleague):
    inbox = EmailChannelFactory(inbox__name="Support").inbox
    inbox.members.add(agent, colleague)
    return inbox


@pytest.fixture
def team(agent):
    team = TeamFactory(name="Tier 2")
    team.members.add(agent)
    return team


def make(inbox, subject: str, *, minutes_ago: float = 1, **kwargs) -> Ticket:
    conversation = {k.removeprefix("conversation__"): v for k, v in kwargs.items() if k.startswith("conversation__")}
    fields = {k: v for k, v in kwargs.items() if not k.startswith("conversation__")}
    conversation.setdefault("last_message_at", NOW - timedelta(minutes=minutes_ago))
    return TicketFactory(conversation__inbox=inbox, conversation__subject=subject,
                         **{f"conversation__{k}": v for k, v in conversation.items()}, **fields)


def subjects(response) -> list[str]:
    assert response.status_code == 200, response.content
    return re.findall(r'<span class="subject">([^<]+)</span>', response.content.decode())


def row_ids(response) -> list[int]:
    return [int(pk) for pk in re.findall(r'<li class="conv-item[^"]*" data-conversation-id="(\d+)"', response.content.decode())]


def counts_of(response) -> dict:
    return json.loads(re.search(r"data-counts='([^']*)'", response.content.decode()).group(1))


@pytest.fixture
def desk(inbox, agent, colleague, team):
    """One ticket per kind of row an agent meets."""
    other_inbox = InboxFactory(name="Elsewhere")  # not the agent's
    return {
        "new_mine": make(inbox, "new_mine", minutes_ago=1, assignee=agent),
        "open_unassigned": make(inbox, "open_unassigned", minutes_ago=2, status="open"),
        "pending_bob": make(inbox, "pending_bob", minutes_ago=3, status="pending", assignee=colleague),
        "hold_team": make(inbox, "hold_team", minutes_ago=4, status="on_hold", team=team),
        "solved": make(inbox, "solved", minutes_ago=5, status="solved"),
        "snoozed_mine": make(inbox, "snoozed_mine", minutes_ago=6, status="open", assignee=agent, snoozed_at=NOW,
                             snoozed_until=NOW + timedelta(hours=4)),
        "snoozed_pending": make(inbox, "snoozed_pending", minutes_ago=7, status="pending", snoozed_at=NOW),
        "at_risk": make(inbox, "at_risk", minutes_ago=8, status="open", sla_state="warning", sla_due_at=NOW + timedelta(hours=3)),
        "elsewhere": make(other_inbox, "elsewhere", minutes_ago=0),
    }


# Views -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("view", "expected"), [
    ("open", ["new_mine", "open_unassigned", "pending_bob", "hold_team", "at_risk"]),
    ("mine", ["new_mine"]),
    ("unassigned", ["new_mine", "open_unassigned", "hold_team", "at_risk"][1:]),
    ("pending", ["pending_bob"]),
    ("snoozed", ["snoozed_mine", "snoozed_pending"]),
    ("at_risk", ["at_risk"]),
    ("solved", ["solved"]),
    ("all", ["new_mine", "open_unassigned", "pending_bob", "hold_team", "solved", "at_risk"]),
])
def test_each_view_holds_its_tickets_and_snoozed_ones_only_in_snoozed(agent_client, desk, view, expected):
    response = agent_client.get(f"/list?view={view}")

    assert response["Content-Security-Policy"] == DASHBOARD_CSP
    assert subjects(response) == expected


def test_team_and_inbox_views_hold_their_open_tickets(agent_client, desk, inbox, team):
    assert subjects(agent_client.get(f"/list?view=team:{team.pk}")) == ["hold_team"]
    assert subjects(agent_client.get(f"/list?view=inbox:{inbox.pk}")) == [
        "new_mine", "open_unassigned", "pending_bob", "hold_team", "at_risk"]
    # Another inbox's view shows nothing of it: the agent's inboxes bound every view.
    other = desk["elsewhere"].conversation.inbox_id
    assert subjects(agent_client.get(f"/list?view=inbox:{other}")) == []


def test_counts_of_every_view_in_one_query(agent, desk, inbox, team, django_assert_num_queries):
    agent._inbox_ids = [inbox.pk]  # as list_tabs leaves it: the count is then the one query
    agent._is_manager = False

    with django_assert_num_queries(1):
        counts = view_counts(user=agent, team_ids=[team.pk], inbox_ids=[inbox.pk])

    assert counts == {"open": 5, "mine": 1, "unassigned": 3, "pending": 1, "snoozed": 2, "at_risk": 1,
                      f"team:{team.pk}": 1, f"inbox:{inbox.pk}": 5}


def test_the_fragment_carries_the_counts_and_the_page_shows_them_on_the_tabs(agent_client, desk, inbox, team):
    fragment = agent_client.get("/list?view=mine")
    page = agent_client.get("/?view=mine").content.decode()

    assert counts_of(fragment) == {"open": 5, "mine": 1, "unassigned": 3, "pending": 1, "snoozed": 2, "at_risk": 1,
                                   f"team:{team.pk}": 1, f"inbox:{inbox.pk}": 5}
    assert re.search(r'data-view-tab="mine" class="tab is-active" aria-current="page">Mine'
                     r'<span class="tab-count" data-count-for="mine">1</span></a>', page)
    assert re.search(r'data-view-tab="snoozed" class="tab">Snoozed<span class="tab-count" data-count-for="snoozed">2</span>', page)
    # The archive views have no count (it would cost a scan of every ticket).
    assert re.search(r'data-view-tab="solved" class="tab">Solved<span class="tab-count" data-count-for="solved" hidden></span>', page)
    # The agent's own team and inbox are tabs; another inbox is not.
    assert f'data-view-tab="team:{team.pk}" class="tab tab-team"' in page and ">Tier 2<span" in page
    assert f'data-view-tab="inbox:{inbox.pk}" class="tab tab-inbox"' in page
    assert "Elsewhere<span" not in page


def test_manager_counts_cover_every_inbox(client, desk):
    boss = UserFactory(username="boss", is_superuser=True)
    client.force_login(boss)

    counts = counts_of(client.get("/list"))

    assert counts["open"] == 6 and counts["unassigned"] == 4  # "elsewhere" too


def test_a_snoozed_ticket_shows_when_it_wakes(agent_client, desk):
    response = agent_client.get("/list?view=snoozed")

    row = re.search(rf'data-conversation-id="{desk["snoozed_mine"].pk}"(.*?)</li>', response.content.decode(), re.DOTALL).group(1)
    assert 'data-snoozed="1"' in row
    assert re.search(r'Snoozed until <time datetime="[^"]+">', row)
    pending_row = re.search(rf'data-conversation-id="{desk["snoozed_pending"].pk}"(.*?)</li>', response.content.decode(), re.DOTALL)
    assert "Snoozed until a reply" in pending_row.group(1)


# Filters and sorts -------------------------------------------------------------------------

def test_filters_narrow_the_view(agent_client, agent, colleague, inbox, team):
    vip, billing = Tag.objects.create(name="vip"), Tag.objects.create(name="billing")
    make(inbox, "email", minutes_ago=1, status="open", priority="high", conversation__last_message_channel="email")
    make(inbox, "sms", minutes_ago=2, status="open", conversation__last_message_channel="sms", assignee=colleague)
    tagged = make(inbox, "tagged", minutes_ago=3, status="pending", team=team)
    tagged.tags.add(vip, billing)
    other = make(inbox, "other", minutes_ago=4, assignee=agent)
    other.tags.add(billing)

    def shown(query: str) -> list[str]:
        return subjects(agent_client.get(f"/list?view=open&{query}"))

    assert shown("status=pending") == ["tagged"]
    assert shown("channel=sms") == ["sms"]
    assert shown("priority=high") == ["email"]
    assert shown("tag=vip") == ["tagged"]
    assert shown("tag=vip&tag=billing") == ["tagged", "other"]  # any of them, each ticket once
    assert shown("tag=VIP,billing") == ["tagged", "other"]  # one value, split as typed
    assert shown(f"assignee={colleague.pk}") == ["sms"]
    assert shown("assignee=none") == ["email", "tagged"]
    assert shown(f"team={team.pk}") == ["tagged"]
    assert shown("team=none") == ["email", "sms", "other"]
    assert shown(f"inbox={inbox.pk}&assignee={agent.pk}") == ["other"]
    assert shown("channel=email&priority=high&assignee=none") == ["email"]


def test_created_dates_are_whole_days_both_included(agent_client, inbox):
    from conversations.models import Conversation

    for name, day in (("jan1", "2025-01-01T00:00:00Z"), ("jan2", "2025-01-02T23:59:00Z"), ("jan3", "2025-01-03T00:00:00Z")):
        ticket = make(inbox, name)
        Conversation.objects.filter(pk=ticket.pk).update(created_at=day)

    assert subjects(agent_client.get("/list?view=all&sort=created&created_after=2025-01-02")) == ["jan3", "jan2"]
    assert subjects(agent_client.get("/list?view=all&sort=created&created_before=2025-01-02")) == ["jan2", "jan1"]
    assert subjects(agent_client.get("/list?view=all&sort=created&created_after=2025-01-02&created_before=2025-01-02")) == ["jan2"]


def test_sorts(agent_client, inbox):
    from conversations.models import Conversation

    quiet = make(inbox, "quiet", minutes_ago=1, status="open")  # nobody waits on it
    long_wait = make(inbox, "long_wait", minutes_ago=30, status="open", conversation__waiting_since=NOW - timedelta(hours=5),
                     sla_due_at=NOW + timedelta(hours=2))
    short_wait = make(inbox, "short_wait", minutes_ago=10, status="open", conversation__waiting_since=NOW - timedelta(minutes=10),
                      sla_due_at=NOW + timedelta(minutes=20))
    Conversation.objects.filter(pk=quiet.pk).update(created_at=NOW - timedelta(days=3))
    Conversation.objects.filter(pk=long_wait.pk).update(created_at=NOW - timedelta(days=1))
    Conversation.objects.filter(pk=short_wait.pk).update(created_at=NOW - timedelta(days=2))

    assert subjects(agent_client.get("/list?view=open")) == ["quiet", "short_wait", "long_wait"]
    assert subjects(agent_client.get("/list?view=open&sort=activity")) == ["quiet", "short_wait", "long_wait"]
    assert subjects(agent_client.get("/list?view=open&sort=waiting")) == ["long_wait", "short_wait", "quiet"]
    assert subjects(agent_client.get("/list?view=open&sort=sla_due")) == ["short_wait", "long_wait", "quiet"]
    assert subjects(agent_client.get("/list?view=open&sort=created")) == ["long_wait", "short_wait", "quiet"]


@pytest.mark.parametrize(("query", "reason"), [
    ("view=everything", "view: Unknown view 'everything'"),
    ("view=team:abc", "view: Unknown view 'team:abc'"),
    ("sort=oldest", "sort: Select a valid choice. oldest"),
    ("status=lost", "status: Select a valid choice. lost"),
    ("channel=fax", "channel: Select a valid choice. fax"),
    ("priority=meh", "priority: Select a valid choice. meh"),
    ("assignee=bob", 'assignee: An id or "none".'),
    ("team=-1", 'team: An id or "none".'),
    ("inbox=abc", "inbox: Enter a whole number."),
    ("created_after=yesterday", "created_after: Enter a valid date."),
    ("created_before=2025-13-01", "created_before: Enter a valid date."),
    ("tag=<b>", "tag: Tags are made of letters, digits, - and _ (up to 60): <b>."),
    ("q=" + "x" * 201, "q: Ensure this value has at most 200 characters (it has 201)."),
])
def test_bad_parameters_get_400_with_the_reason(agent_client, query, reason):
    response = agent_client.get(f"/list?{query}")

    assert response.status_code == 400
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode().startswith(reason)


def test_the_page_forgives_a_stale_view_in_a_bookmark(agent_client, desk):
    response = agent_client.get("/?view=vanished")

    assert response.status_code == 200
    assert 'data-view-tab="open" class="tab is-active"' in response.content.decode()


def test_the_pane_offers_filters_search_selection_and_the_bulk_toolbar(agent_client, agent, colleague, team, inbox):
    page = re.sub(r"\s+", " ", agent_client.get(f"/?view=open&assignee=none&tag=vip&q=printer&inbox={inbox.pk}").content.decode())

    assert '<input type="search" name="q" value="printer"' in page
    assert re.search(r'<details class="list-filters" id="list-filters-box" open>', page)
    assert '<option value="none" selected>Unassigned</option>' in page
    assert f'<option value="{inbox.pk}" selected>Support</option>' in page
    assert '<input type="text" name="tag" value="vip"' in page
    assert f'<option value="{colleague.pk}">Bob Builder</option>' in page and "Alice Agent (me)" in page
    assert f'<option value="{team.pk}">Tier 2</option>' in page
    bar = re.search(r'<div class="bulk-bar" id="bulk-bar" data-testid="bulk-bar" data-bulk-url="/bulk" hidden>(.*?)</div> <div class="list-scroll"', page).group(1)
    assert 'name="csrfmiddlewaretoken"' in bar
    assert 'data-bulk-action="assign" data-bulk-value="me"' in bar
    for action in ("assign", "team", "status", "priority", "tag", "snooze"):
        assert f'data-bulk-action="{action}"' in bar
    assert '<option value="tomorrow">Tomorrow 9:00</option>' in bar
    assert "/static/desk/list.js" in page and "<script>" not in page


# Unread ------------------------------------------------------------------------------------

def unread_ids(client) -> set[int]:
    page = client.get("/list?view=all").content.decode()
    return {int(pk) for pk in re.findall(r'data-conversation-id="(\d+)" data-unread="1"', page)}


def test_unread_until_opened_then_unread_again_on_new_activity(agent_client, client, agent, colleague, inbox):
    ticket = make(inbox, "printer")
    quiet = TicketFactory(conversation__inbox=inbox)  # no activity at all: nothing to read
    assert unread_ids(agent_client) == {ticket.pk}

    agent_client.get(f"/c/{ticket.pk}/")  # opening the conversation reads it
    assert unread_ids(agent_client) == set()
    assert TicketRead.objects.filter(user=agent, ticket=ticket).count() == 1

    # The customer writes again: unread for the agent; the colleague never opened it.
    _customer_writes(ticket)
    assert unread_ids(agent_client) == {ticket.pk}
    client.force_login(colleague)
    assert unread_ids(client) == {ticket.pk}
    assert quiet.pk not in unread_ids(client)


def _customer_writes(ticket: Ticket) -> None:
    from conversations.models import Conversation

    MessageFactory(conversation=ticket.conversation, kind=Message.Kind.INBOUND, author_contact=ticket.conversation.contact)
    Conversation.objects.filter(pk=ticket.pk).update(last_message_at=timezone.now())


def test_the_seen_receipt_also_reads_and_the_open_row_is_never_marked(agent_client, agent, inbox):
    ticket = make(inbox, "printer")
    # A pane refreshed in the background (a hidden tab) is not read by fetching it.
    agent_client.get(f"/c/{ticket.pk}/timeline", HTTP_X_DESK_FRAGMENT="1")
    assert unread_ids(agent_client) == {ticket.pk}

    assert f'data-conversation-id="{ticket.pk}" data-unread="1"' not in agent_client.get(f"/list?view=all&selected={ticket.pk}").content.decode()
    assert agent_client.post(f"/c/{ticket.pk}/seen").status_code == 204
    assert unread_ids(agent_client) == set()


def test_mark_read_is_one_upsert_and_moves_forward(agent, inbox, django_assert_num_queries):
    ticket = make(inbox, "printer")
    ticket_mark_read(user=agent, ticket=ticket, at=NOW - timedelta(hours=1))

    with django_assert_num_queries(1):
        ticket_mark_read(user=agent, ticket=ticket, at=NOW)

    assert list(TicketRead.objects.values_list("user_id", "ticket_id", "read_at")) == [(agent.pk, ticket.pk, NOW)]


def test_a_reply_of_ones_own_leaves_the_row_read(agent_client, agent, inbox, tasks):
    ticket = make(inbox, "printer")
    agent_client.post(f"/c/{ticket.pk}/seen")

    response = agent_client.post(f"/c/{ticket.pk}/reply", {"text": "On it."}, HTTP_X_DESK_FRAGMENT="1")

    assert response.status_code == 200
    assert unread_ids(agent_client) == set()


# Query budgets -----------------------------------------------------------------------------

def _rows(inbox, agent, team, count: int) -> None:
    """Rows for every view: each status, half mine, a third in the team, one in five snoozed,
    all at SLA risk, a third read already."""
    tag = Tag.objects.create(name=f"vip-{count}")
    statuses = ("open", "pending", "solved", "new", "on_hold")
    for i in range(count):
        ticket = make(inbox, f"t{i}", minutes_ago=i, status=statuses[i % 5], assignee=agent if i % 2 else None,
                      team=team if i % 3 == 0 else None, snoozed_at=NOW if i % 5 == 4 else None, sla_state="warning",
                      conversation__last_message_channel="email")
        ticket.tags.add(tag)
        if i % 3 == 0:
            ticket_mark_read(user=agent, ticket=ticket)


LIST_QUERIES = 7


@pytest.mark.parametrize("rows", [5, 30])
@pytest.mark.parametrize("query", ["view=open", "view=mine", "view=unassigned", "view=pending", "view=snoozed", "view=at_risk",
                                   "view=solved", "view=all", "view=team", "view=inbox", "view=open&sort=waiting",
                                   ("view=open&tag=vip-5&tag=vip-30&assignee=none&channel=email&priority=normal&team=TEAM"
                                    "&created_after=2020-01-01&created_before=2099-01-01&status=open")])
def test_list_query_count_does_not_grow_with_rows(agent_client, agent, inbox, team, rows, query, django_assert_num_queries):
    _rows(inbox, agent, team, rows)
    query = (query.replace("view=team", f"view=team:{team.pk}").replace("view=inbox", f"view=inbox:{inbox.pk}")
             .replace("TEAM", str(team.pk)))
    # 1 session, 2 user, 3 manager group check, 4 the agent's teams and inboxes (the tabs;
    # also the inboxes they may see), 5 every view's count, 6 the page of tickets with
    # conversation, contact, inbox, assignee and team joined and the unread mark computed,
    # 7 their tags (prefetch).
    with django_assert_num_queries(LIST_QUERIES):
        response = agent_client.get(f"/list?{query}")

    assert response.status_code == 200
    assert row_ids(response)  # every view has rows: the tags prefetch runs


@pytest.mark.parametrize("rows", [5, 30])
def test_search_list_query_count_does_not_grow_with_rows(agent_client, agent, inbox, team, rows, django_assert_num_queries):
    _rows(inbox, agent, team, rows)
    for ticket in Ticket.objects.all():
        MessageFactory(conversation=ticket.conversation, text="the printer is on fire")
    # The list's seven, plus the search (messages, subjects and contacts, with snippets).
    with django_assert_num_queries(LIST_QUERIES + 1):
        response = agent_client.get("/list?view=mine&q=printer")

    assert len(row_ids(response)) == rows
    assert response.content.decode().count('data-testid="search-hit"') == rows


@pytest.mark.parametrize("rows", [5, 30])
def test_dashboard_page_query_count_does_not_grow_with_rows(agent_client, agent, inbox, team, rows, django_assert_num_queries):
    _rows(inbox, agent, team, rows)
    # The list's seven, plus: the feed position, the unread notifications, the agents (assign
    # choices), every team (filter and bulk), the inboxes the agent sees (filter), the
    # agent's availability (top bar).
    with django_assert_num_queries(LIST_QUERIES + 6):
        response = agent_client.get("/")

    assert response.status_code == 200


# The API list ------------------------------------------------------------------------------

def api_ids(response) -> list[int]:
    assert response.status_code == 200, response.json()
    return [row["id"] for row in response.json()["results"]]


def test_api_list_takes_the_same_views_and_filters(agent, desk, inbox, team):
    api = api_client_for(agent)

    def listed(query: str) -> list[str]:
        pks = api_ids(api.get("/api/v1/conversations/?" + query))
        names = {t.pk: name for name, t in desk.items()}
        return [names.get(pk, pk) for pk in pks]

    assert listed("view=snoozed") == ["snoozed_mine", "snoozed_pending"]
    assert listed("view=all") == ["new_mine", "open_unassigned", "pending_bob", "hold_team", "solved", "at_risk"]
    assert listed(f"view=team:{team.pk}") == ["hold_team"]
    assert listed(f"view=inbox:{inbox.pk}&assignee=none") == ["open_unassigned", "hold_team", "at_risk"]
    assert listed("view=open&team=none&priority=normal") == ["new_mine", "open_unassigned", "pending_bob", "at_risk"]
    desk["hold_team"].tags.add(Tag.objects.create(name="vip"))
    assert listed("view=all&tag=vip&tag=other") == ["hold_team"]
    assert listed("view=all&created_after=2000-01-01&created_before=2000-01-02") == []


@pytest.mark.parametrize(("query", "field"), [("view=team:x", "view"), ("assignee=bob", "assignee"), ("team=0", "team"),
                                              ("tag=a%20b", "tag"), ("created_after=soon", "created_after"),
                                              ("priority=meh", "priority")])
def test_api_list_rejects_bad_parameters_with_the_reason(agent, query, field):
    response = api_client_for(agent).get("/api/v1/conversations/?" + query)

    assert response.status_code == 400
    assert list(response.json()) == [field]


@pytest.mark.parametrize("rows", [3, 30])
def test_api_list_with_filters_and_search_keeps_its_query_budget(agent, inbox, team, rows, django_assert_num_queries):
    _rows(inbox, agent, team, rows)
    for ticket in Ticket.objects.all():
        MessageFactory(conversation=ticket.conversation, text="the printer is on fire")
    api = api_client_for(agent)
    # 1 session, 2 user, 3 manager check, 4 the agent's inbox ids, 5 the page, 6 its tags.
    with django_assert_num_queries(6):
        response = api.get(f"/api/v1/conversations/?view=inbox:{inbox.pk}&tag=vip-3&tag=vip-30&team={team.pk}&page_size=50")
    expected = Ticket.objects.filter(team=team, status__in=Ticket.OPEN_STATUSES, snoozed_at__isnull=True).count()
    assert len(api_ids(response)) == expected > 0
    # The same, plus the search.
    with django_assert_num_queries(7):
        response = api.get("/api/v1/conversations/?q=printer&page_size=50")
    assert len(api_ids(response)) == rows


# The conversation fragment -----------------------------------------------------------------

@pytest.mark.parametrize("count", [2, 30])
def test_conversation_fragment_query_count_does_not_grow_with_messages(agent_client, agent, inbox, count, django_assert_num_queries):
    ticket = make(inbox, "printer", conversation__contact=ContactFactory(name="Jane"))
    for _ in range(count):
        MessageFactory(conversation=ticket.conversation, author_contact=ticket.conversation.contact)
    # 1 session, 2 user, 3 manager group check, 4 the agent's inbox ids, 5 the ticket,
    # 6 the inbox's agents, 7 the contact's identities, 8 the channel of the latest customer
    # message, 9 the SLA clocks, 10 the ticket's tags, 11 the messages with their authors,
    # 12 their attachments, 13 the teams (the header's transfer select). Fetching it marks
    # nothing read (a hidden tab refreshes this way): the seen receipt does.
    with django_assert_num_queries(13):
        response = agent_client.get(f"/c/{ticket.pk}/timeline")

    assert response.content.decode().count('<li class="msg ') == count


def test_manager_api_list_sees_every_inbox_with_filters(desk):
    api = manager_client()

    response = api.get("/api/v1/conversations/?view=open&assignee=none")

    names = {t.pk: name for name, t in desk.items()}
    assert [names[pk] for pk in api_ids(response)] == ["elsewhere", "open_unassigned", "hold_team", "at_risk"]


def test_ticket_list_selector_takes_search_ids_instead_of_the_view(agent, desk):
    ids = [desk["solved"].pk, desk["snoozed_mine"].pk, desk["elsewhere"].pk]

    found = list(ticket_list(user=agent, view="mine", ticket_ids=ids))

    # Every status and snoozed ones, but still only the agent's inboxes.
    assert found == [desk["solved"], desk["snoozed_mine"]]
