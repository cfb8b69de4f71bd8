"""Roles, enforced the same way by the dashboard, the API and the socket.

The matrix: an agent of the conversation's inbox, an agent of another inbox, a manager (of no
inbox) and an anonymous visitor, against every route that takes a conversation, message,
contact or attachment id. The routes are read from the URLconf when the tests are collected,
so a new endpoint is in the matrix the day it is added; a route that takes a conversation
some other way (query string, body) must be listed below, or the classification test fails.

What "enforced" means here: outside their inboxes an agent gets exactly what they would get
for an id that does not exist (404; nothing tells them it exists) and nothing changes; the
agent of the inbox and the manager get past the check; the anonymous visitor is sent to the
login page (dashboard) or refused (API).
"""
from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser, Group
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from conversations.models import Attachment, Channel, Contact, Conversation, Event, Inbox, Message
from conversations.realtime import inbox_group
from conversations.services import note_create
from helpdesk.roles import MANAGERS_GROUP, is_admin, is_manager
from tests.factories import AttachmentFactory, ContactFactory, EmailChannelFactory, MessageFactory, TicketFactory, UserFactory
from tickets.consumers import AgentDashboardConsumer
from tickets.models import Notification, Ticket, TicketRead

DASHBOARD_URLCONFS = ("tickets.urls", "tickets.workspace_urls")
API_URLCONFS = ("tickets.api_urls", "tickets.workspace_api_urls")
REPORT_URLCONFS = ("tickets.report_urls", "tickets.report_api_urls")

# Path parameters naming an object an agent may or may not see.
OBJECT_PARAMS = {"conversation_id", "message_id", "contact_id", "attachment_uuid"}
# Routes that take a conversation in the query string: {route: parameter}.
QUERY_ROUTES = {"canned": "conversation", "mentionable": "conversation", "api/v1/canned-responses/": "conversation"}
# Routes that take many conversations in the body (bulk actions: foreign ones are skipped).
BULK_ROUTES = {"bulk", "api/v1/conversations/bulk/"}
# Routes about no conversation in particular; the lists among them are checked below.
UNSCOPED_ROUTES = {
    "", "list", "notifications", "notifications/read", "me/availability",
    "api/v1/auth/token/", "api/v1/conversations/", "api/v1/contacts/", "api/v1/events/",
}

ROUTE_PARAM = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")


@dataclass(frozen=True)
class Route:
    path: str  # as in the URLconf, with its <converter:name> parameters
    urlconf: str
    callback: Any

    @property
    def params(self) -> set[str]:
        return {match["name"] for match in ROUTE_PARAM.finditer(self.path)}

    @property
    def is_api(self) -> bool:
        return self.urlconf in API_URLCONFS or self.urlconf == "tickets.report_api_urls"

    def url(self, **values: object) -> str:
        return "/" + ROUTE_PARAM.sub(lambda match: str(values[match["name"]]), self.path)

    def methods(self) -> list[str]:
        """The HTTP methods the view answers: an API view's handlers, else GET and POST (a
        function view's @require_GET / @require_POST answers 405 to the other)."""
        view_class = getattr(self.callback, "cls", None) or getattr(self.callback, "view_class", None)
        if view_class is None:
            return ["get", "post"]
        return [m for m in ("get", "post", "put", "patch", "delete") if hasattr(view_class, m)]

    def __str__(self) -> str:
        return f"/{self.path}"


def _walk(resolver: URLResolver, prefix: str, urlconf: str) -> Iterator[Route]:
    for entry in resolver.url_patterns:
        path = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            module = entry.urlconf_module
            yield from _walk(entry, path, getattr(module, "__name__", str(entry.urlconf_name)))
        elif isinstance(entry, URLPattern):
            yield Route(path=path, urlconf=urlconf, callback=entry.callback)


def routes(urlconfs: tuple[str, ...]) -> list[Route]:
    return [route for route in _walk(get_resolver(), "", "helpdesk.urls") if route.urlconf in urlconfs]


OBJECT_ROUTES = [route for route in routes(DASHBOARD_URLCONFS + API_URLCONFS) if route.params & OBJECT_PARAMS]
PRESENT_QUERY_ROUTES = [route for route in routes(DASHBOARD_URLCONFS + API_URLCONFS) if route.path in QUERY_ROUTES]
PRESENT_BULK_ROUTES = [route for route in routes(DASHBOARD_URLCONFS + API_URLCONFS) if route.path in BULK_ROUTES]


def test_every_route_of_the_dashboard_and_api_is_in_the_matrix():
    """A new route is covered by the id in its path, or must say how it takes a conversation."""
    unclassified = [
        str(route) for route in routes(DASHBOARD_URLCONFS + API_URLCONFS)
        if not (route.params & OBJECT_PARAMS) and route.path not in set(QUERY_ROUTES) | BULK_ROUTES | UNSCOPED_ROUTES
    ]
    assert unclassified == []
    unknown_params = [str(route) for route in OBJECT_ROUTES if route.params - OBJECT_PARAMS]
    assert unknown_params == []
    # The matrix reads what it is meant to read.
    assert {"/c/<int:conversation_id>/reply", "/api/v1/conversations/<int:conversation_id>/reply/",
            "/messages/<int:message_id>/retry", "/api/v1/messages/<int:message_id>/retry/"} <= {str(r) for r in OBJECT_ROUTES}


# --- The world: two inboxes, the roles ---------------------------------------------------------


@dataclass
class Side:
    """What one inbox holds: the objects a route may name, and others to merge into."""

    inbox_id: int
    ticket: Ticket
    message: Message
    attachment: Attachment
    other_ticket: Ticket

    def ids(self) -> dict[str, object]:
        return {"conversation_id": self.ticket.pk, "message_id": self.message.pk,
                "contact_id": self.ticket.conversation.contact_id, "attachment_uuid": self.attachment.uuid}

    def snapshot(self) -> dict[str, object]:
        """Everything a route could change in this inbox."""
        tickets = [self.ticket.pk, self.other_ticket.pk]
        return {
            "tickets": list(Ticket.objects.filter(pk__in=tickets).order_by("pk").values_list(
                "status", "priority", "assignee_id", "team_id", "snoozed_at", "snoozed_until")),
            "tags": list(Ticket.tags.through.objects.filter(ticket_id__in=tickets).order_by("pk").values_list("tag_id", flat=True)),
            "conversations": list(Conversation.objects.filter(pk__in=tickets).order_by("pk").values_list(
                "merged_into_id", "message_count", "last_message_at", "contact_id", "agent_last_seen_at", "inbox_id")),
            "messages": list(Message.objects.filter(conversation__inbox_id=self.inbox_id).order_by("pk").values_list(
                "pk", "conversation_id", "kind", "delivery_status", "text")),
            "contacts": list(Contact.objects.filter(pk=self.ticket.conversation.contact_id).values_list("merged_into_id", "name")),
            "events": Event.objects.filter(inbox_id=self.inbox_id).count(),
            "reads": TicketRead.objects.filter(ticket_id__in=tickets).count(),
            "notifications": Notification.objects.count(),
        }


def make_side(name: str) -> Side:
    inbox = EmailChannelFactory(inbox__name=name).inbox
    ticket = TicketFactory(conversation__inbox=inbox, conversation__contact=ContactFactory())
    MessageFactory(conversation=ticket.conversation, text="Where is my parcel?")
    failed = MessageFactory(conversation=ticket.conversation, kind=Message.Kind.OUTBOUND, channel=Channel.EMAIL,
                            text="We are on it.", html="<p>We are on it.</p>",
                            delivery_status=Message.DeliveryStatus.FAILED, delivery_error="mailbox full")
    return Side(inbox_id=inbox.pk, ticket=ticket, message=failed, attachment=AttachmentFactory(message=failed),
                other_ticket=TicketFactory(conversation__inbox=inbox, conversation__contact=ContactFactory()))


def missing_ids() -> dict[str, object]:
    return {"conversation_id": 987654, "message_id": 987654, "contact_id": 987654, "attachment_uuid": uuid.uuid4()}


@dataclass
class Desk:
    mine: Side  # the agent's inbox
    foreign: Side  # an inbox the agent is not in
    agent: Any
    manager: Any


@pytest.fixture
def desk(db) -> Desk:
    mine, foreign = make_side("Mine"), make_side("Foreign")
    agent = UserFactory(username="alice")
    Inbox.objects.get(pk=mine.inbox_id).members.add(agent)
    manager = UserFactory(username="maria")
    manager.groups.add(Group.objects.get_or_create(name=MANAGERS_GROUP)[0])
    return Desk(mine=mine, foreign=foreign, agent=agent, manager=manager)


def payload(route: Route, into: Side) -> dict[str, object]:
    """Valid input for any action (each view reads the fields it knows), so that a refusal is
    the permission check's and not the form's. `into`: where a merge would go."""
    into_id = into.other_ticket.conversation.contact_id if "contact" in route.path else into.other_ticket.pk
    data: dict[str, object] = {
        "text": "Thanks, it ships today.", "status": "open", "priority": "high", "assignee": "", "into": into_id,
        "until": "1h", "team": "", "confirm": "1", "availability": "online",
    }
    if route.is_api:
        data |= {"tags": ["vip"], "assignee": None}
        del data["team"]  # optional there, and an id when given
    else:
        data |= {"tags": "vip"}
    return data


def call(client: Client, route: Route, method: str, url: str, data: dict[str, object]):
    if method == "get":
        return client.get(url, HTTP_X_DESK_FRAGMENT="1")
    if route.is_api:
        body = json.dumps(data) if method != "delete" else None
        return client.generic(method.upper(), url, body or "", content_type="application/json")
    return client.generic(method.upper(), url, _form(data), content_type="application/x-www-form-urlencoded",
                          HTTP_X_DESK_FRAGMENT="1")


def _form(data: dict[str, object]) -> str:
    from urllib.parse import urlencode

    return urlencode({k: ("" if v is None else v) for k, v in data.items()}, doseq=True)


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)  # a real session: each request loads the user afresh
    return client


ALLOWED_FAIL = {401, 403, 404, 405}


@pytest.mark.parametrize("route", OBJECT_ROUTES, ids=str)
def test_object_route_matrix(route: Route, desk: Desk):
    agent, manager = logged_in(desk.agent), logged_in(desk.manager)
    tested = []
    for method in route.methods():
        # Fresh objects per method: the allowed calls really act (a merge, a reply).
        desk.mine, desk.foreign = make_side(f"Mine {method}"), make_side(f"Foreign {method}")
        Inbox.objects.get(pk=desk.mine.inbox_id).members.add(desk.agent)
        mine, foreign = desk.mine, desk.foreign

        inside = call(agent, route, method, route.url(**mine.ids()), payload(route, into=mine))
        if inside.status_code == 405:
            continue  # the view does not answer this method (for anyone)
        tested.append(method)
        assert inside.status_code not in ALLOWED_FAIL and inside.status_code < 500, (method, inside.status_code, inside.content[:300])

        # Outside their inboxes: the answer for an id that does not exist, and no change.
        before = foreign.snapshot()
        outside = call(agent, route, method, route.url(**foreign.ids()), payload(route, into=mine))
        missing = call(agent, route, method, route.url(**missing_ids()), payload(route, into=mine))
        assert outside.status_code in (403, 404), (method, outside.status_code, outside.content[:300])
        assert outside.status_code == missing.status_code, method
        assert foreign.snapshot() == before, method

        allowed = call(manager, route, method, route.url(**foreign.ids()), payload(route, into=foreign))
        assert allowed.status_code not in ALLOWED_FAIL and allowed.status_code < 500, (method, allowed.status_code)

        before = mine.snapshot()
        anonymous = call(Client(), route, method, route.url(**mine.ids()), payload(route, into=mine))
        if route.is_api:
            assert anonymous.status_code in (401, 403), method
        else:
            assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/"), method
        assert mine.snapshot() == before, method
    assert tested, f"{route} answered no method"


@pytest.mark.parametrize("route", PRESENT_QUERY_ROUTES, ids=str)
def test_query_route_matrix(route: Route, desk: Desk):
    param = QUERY_ROUTES[route.path]
    agent = logged_in(desk.agent)

    def get(client: Client, conversation_id: object):
        return client.get(f"/{route.path}", {param: conversation_id, "q": ""}, HTTP_X_DESK_FRAGMENT="1")

    inside = get(agent, desk.mine.ticket.pk)
    assert inside.status_code == 200
    outside, missing = get(agent, desk.foreign.ticket.pk), get(agent, 987654)
    assert outside.status_code in (403, 404)
    assert (outside.status_code, outside.content) == (missing.status_code, missing.content)
    assert get(logged_in(desk.manager), desk.foreign.ticket.pk).status_code == 200
    anonymous = get(Client(), desk.mine.ticket.pk)
    assert anonymous.status_code in ((401, 403) if route.is_api else (302,))


@pytest.mark.parametrize("route", PRESENT_BULK_ROUTES, ids=str)
def test_bulk_route_skips_foreign_conversations_like_missing_ones(route: Route, desk: Desk):
    agent = logged_in(desk.agent)
    ids = [desk.mine.ticket.pk, desk.foreign.ticket.pk, 987654]
    data = {"ids": ids, "action": "status", "value": "pending"}
    before = desk.foreign.snapshot()
    if route.is_api:
        response = agent.post(f"/{route.path}", json.dumps(data), content_type="application/json")
    else:
        response = agent.post(f"/{route.path}", data)
    assert response.status_code == 200, response.content[:300]
    body = response.json()
    assert body["updated"] == 1
    reasons = {row["id"]: row["reason"] for row in body["skipped"]}
    assert set(reasons) == {desk.foreign.ticket.pk, 987654}
    assert reasons[desk.foreign.ticket.pk] == reasons[987654]  # nothing tells it exists
    assert desk.foreign.snapshot() == before
    assert Ticket.objects.get(pk=desk.mine.ticket.pk).status == "pending"


# --- Lists: nothing of a foreign inbox ------------------------------------------------------------


def test_lists_and_search_show_only_the_agents_inboxes(desk: Desk):
    agent, manager = logged_in(desk.agent), logged_in(desk.manager)
    foreign_subject = desk.foreign.ticket.conversation.subject
    for client, sees_foreign in ((agent, False), (manager, True)):
        listing = client.get("/list", {"view": "all"}).content.decode()
        assert f'data-conversation-id="{desk.mine.ticket.pk}"' in listing
        assert (f'data-conversation-id="{desk.foreign.ticket.pk}"' in listing) is sees_foreign
        api_ids = {row["id"] for row in client.get("/api/v1/conversations/", {"view": "all"}).json()["results"]}
        assert desk.mine.ticket.pk in api_ids
        assert (desk.foreign.ticket.pk in api_ids) is sees_foreign
        contact_ids = {row["id"] for row in client.get("/api/v1/contacts/").json()["results"]}
        assert (desk.foreign.ticket.conversation.contact_id in contact_ids) is sees_foreign
    # A search that matches the foreign conversation's subject finds nothing for the agent.
    searched = agent.get("/list", {"view": "all", "q": foreign_subject}).content.decode()
    assert f'data-conversation-id="{desk.foreign.ticket.pk}"' not in searched


def test_events_api_returns_no_event_of_a_foreign_inbox(desk: Desk):
    mine_note = note_create(conversation=desk.mine.ticket.conversation, author=desk.manager, text="Mine")
    foreign_note = note_create(conversation=desk.foreign.ticket.conversation, author=desk.manager, text="Theirs")
    later_note = note_create(conversation=desk.mine.ticket.conversation, author=desk.manager, text="Mine again")
    seq = {note.pk: Event.objects.get(message=note).pk for note in (mine_note, foreign_note, later_note)}

    mine = logged_in(desk.agent).get("/api/v1/events/", {"after": 0}).json()
    assert [e["seq"] for e in mine["results"]] == [seq[mine_note.pk], seq[later_note.pk]]
    assert {e["inbox_id"] for e in mine["results"]} == {desk.mine.inbox_id}
    assert mine["last_seq"] == seq[later_note.pk]
    # Catching up across the foreign event's gap yields just what was missed.
    gap = logged_in(desk.agent).get("/api/v1/events/", {"after": seq[mine_note.pk]}).json()
    assert [e["seq"] for e in gap["results"]] == [seq[later_note.pk]]

    everything = logged_in(desk.manager).get("/api/v1/events/", {"after": 0}).json()
    assert [e["seq"] for e in everything["results"]] == sorted(seq.values())
    assert Client().get("/api/v1/events/").status_code in (401, 403)


# --- Managers' reports and the admins' settings ---------------------------------------------------


REPORT_ROUTES = [route for route in routes(REPORT_URLCONFS) if not route.params]


@pytest.mark.parametrize("route", REPORT_ROUTES, ids=str)
def test_reports_are_for_managers(route: Route, desk: Desk):
    url = route.url()
    assert logged_in(desk.agent).get(url).status_code == 403
    assert logged_in(desk.manager).get(url).status_code == 200
    anonymous = Client().get(url)
    assert anonymous.status_code in ((401, 403) if route.is_api else (302,))


def test_the_admin_is_for_staff_only(desk: Desk):
    staff = UserFactory(username="root", is_staff=True)
    assert logged_in(desk.agent).get("/admin/").status_code == 302
    assert logged_in(desk.manager).get("/admin/").status_code == 302  # managing the desk is not administering it
    assert logged_in(staff).get("/admin/").status_code == 200
    assert (is_admin(staff), is_admin(desk.manager), is_admin(desk.agent)) == (True, False, False)
    # Staff alone sees no inbox: the admin role is about settings.
    assert (is_manager(staff), is_manager(desk.manager), is_manager(desk.agent)) == (False, True, False)
    assert logged_in(staff).get(f"/c/{desk.mine.ticket.pk}/timeline").status_code == 404


def test_an_inactive_superuser_is_no_manager(db):
    boss = UserFactory(username="boss", is_superuser=True, is_active=False)
    assert not is_manager(boss)
    assert not is_manager(AnonymousUser())


# --- The socket ----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_socket_matrix():
    """Frames for a foreign conversation get the error a missing one gets; a foreign inbox's
    events never reach the agent; the manager gets everything; anonymous is refused."""
    mine, foreign = make_side("Mine"), make_side("Foreign")
    agent = UserFactory(username="alice")
    Inbox.objects.get(pk=mine.inbox_id).members.add(agent)
    manager = UserFactory(username="maria")
    manager.groups.add(Group.objects.get_or_create(name=MANAGERS_GROUP)[0])
    layer = get_channel_layer()

    async def socket_for(user) -> WebsocketCommunicator:
        communicator = WebsocketCommunicator(AgentDashboardConsumer.as_asgi(), "/ws/agent/")
        communicator.scope["user"] = user
        assert (await communicator.connect())[0]
        assert (await communicator.receive_json_from())["type"] == "hello"
        return communicator

    async def scenario():
        agent_socket, manager_socket = await socket_for(agent), await socket_for(manager)
        for kind, flag in (("typing", "typing"), ("viewing", "viewing")):
            answers = []
            for conversation_id in (foreign.ticket.pk, 987654):
                await agent_socket.send_json_to({"type": kind, "conversation_id": conversation_id, flag: True})
                answers.append(await agent_socket.receive_json_from())
            assert answers == [{"type": "error", "error": "No such conversation."}] * 2
            await agent_socket.send_json_to({"type": kind, "conversation_id": mine.ticket.pk, flag: True})
            await manager_socket.send_json_to({"type": kind, "conversation_id": foreign.ticket.pk, flag: True})
        # The manager saw the agent's typing and viewing in her inbox, in order.
        assert [(await manager_socket.receive_json_from())["type"] for _ in range(2)] == ["typing", "presence"]

        foreign_note = await database_sync_to_async(note_create)(
            conversation=foreign.ticket.conversation, author=manager, text="Theirs")
        mine_note = await database_sync_to_async(note_create)(conversation=mine.ticket.conversation, author=manager, text="Mine")
        got = await agent_socket.receive_json_from()
        assert (got["type"], got["message_id"]) == ("event", mine_note.pk)  # the foreign one never came
        assert await agent_socket.receive_nothing()
        seen = [await manager_socket.receive_json_from() for _ in range(2)]
        assert [e["message_id"] for e in seen] == [foreign_note.pk, mine_note.pk]
        # Even a push on the foreign inbox's group is not forwarded: the socket is not in it.
        await layer.group_send(inbox_group(foreign.inbox_id), {
            "type": "desk.event", "seq": 1, "event": "message.created", "inbox_id": foreign.inbox_id,
            "conversation_id": foreign.ticket.pk, "message_id": None})
        assert await agent_socket.receive_nothing()
        await agent_socket.disconnect()
        await manager_socket.disconnect()

        anonymous = WebsocketCommunicator(AgentDashboardConsumer.as_asgi(), "/ws/agent/")
        anonymous.scope["user"] = AnonymousUser()
        assert not (await anonymous.connect())[0]

    async_to_sync(scenario)()
