"""The agent dashboard's socket: typing and presence, checked against the agent's inboxes;
bad and excessive frames; access re-checked while the socket lives; the sequence catch-up trusts."""
from __future__ import annotations

import asyncio
import json
from typing import Self

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from conversations.realtime import customer_group, inbox_group
from tests.factories import InboxFactory, TicketFactory, UserFactory
from tickets.consumers import AgentDashboardConsumer

# The consumer reaches the database from its own thread: the rows must be committed.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def desk():
    inbox = InboxFactory(name="Website chat", kind="webchat")
    alice = UserFactory(username="alice", first_name="Alice")
    bob = UserFactory(username="bob", first_name="")
    inbox.members.add(alice, bob)
    ticket = TicketFactory(conversation__inbox=inbox)
    elsewhere = TicketFactory(conversation__inbox=InboxFactory(name="Other"))
    return {"inbox": inbox, "alice": alice, "bob": bob, "conversation": ticket.conversation,
            "elsewhere": elsewhere.conversation}


async def connected(user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(AgentDashboardConsumer.as_asgi(), "/ws/agent/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from())["type"] == "hello"
    return communicator


async def listen(layer, group: str) -> str:
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    return channel


async def nothing_on(layer, channel: str) -> bool:
    try:
        await asyncio.wait_for(layer.receive(channel), timeout=0.05)
    except TimeoutError:
        return True
    return False


async def roundtrip(communicator: WebsocketCommunicator) -> None:
    """A ping answered means every frame sent before it has been handled."""
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from() == {"type": "pong"}


def test_agent_typing_reaches_the_widget_and_the_other_agents_not_the_typist(layer, desk):
    conversation, alice, bob = desk["conversation"], desk["alice"], desk["bob"]

    async def scenario():
        widget = await listen(layer, customer_group(conversation.pk))
        alice_socket, bob_socket = await connected(alice), await connected(bob)

        await alice_socket.send_json_to({"type": "typing", "conversation_id": conversation.pk, "typing": True})

        assert await layer.receive(widget) == {"type": "widget.typing", "typing": True, "name": "Alice"}
        assert await bob_socket.receive_json_from() == {
            "type": "typing", "conversation_id": conversation.pk, "typing": True,
            "who": "agent", "user_id": alice.pk, "name": "Alice",
        }
        await roundtrip(alice_socket)  # no echo of her own typing came before the pong
        assert await alice_socket.receive_nothing()

        await bob_socket.send_json_to({"type": "typing", "conversation_id": conversation.pk, "typing": False})
        # Without a first name the username stands in.
        assert await layer.receive(widget) == {"type": "widget.typing", "typing": False, "name": "bob"}
        assert (await alice_socket.receive_json_from())["name"] == "bob"
        await alice_socket.disconnect()
        await bob_socket.disconnect()

    async_to_sync(scenario)()


def test_typing_in_a_conversation_outside_the_agents_inboxes_is_refused(layer, desk):
    elsewhere, alice = desk["elsewhere"], desk["alice"]

    async def scenario():
        widget = await listen(layer, customer_group(elsewhere.pk))
        agents = await listen(layer, inbox_group(elsewhere.inbox_id))
        socket = await connected(alice)

        for frame in ({"type": "typing", "conversation_id": elsewhere.pk, "typing": True},
                      {"type": "typing", "conversation_id": 999999, "typing": True}):
            await socket.send_json_to(frame)
            assert await socket.receive_json_from() == {"type": "error", "error": "No such conversation."}
        await socket.send_json_to({"type": "typing", "conversation_id": str(elsewhere.pk), "typing": True})
        assert await socket.receive_json_from() == {"type": "error", "error": "conversation_id must be a number."}

        assert await nothing_on(layer, widget)
        assert await nothing_on(layer, agents)
        await socket.disconnect()

    async_to_sync(scenario)()


def test_a_managers_typing_passes_the_check_anywhere(layer, desk):
    from django.contrib.auth.models import Group

    from helpdesk.roles import MANAGERS_GROUP

    manager = UserFactory(username="maria", first_name="Maria")
    manager.groups.add(Group.objects.get_or_create(name=MANAGERS_GROUP)[0])
    elsewhere = desk["elsewhere"]

    async def scenario():
        widget = await listen(layer, customer_group(elsewhere.pk))
        socket = await connected(manager)
        await socket.send_json_to({"type": "typing", "conversation_id": elsewhere.pk, "typing": True})
        assert await layer.receive(widget) == {"type": "widget.typing", "typing": True, "name": "Maria"}
        await socket.disconnect()

    async_to_sync(scenario)()


def test_visitor_typing_on_the_inbox_group_reaches_the_agents_socket(layer, desk):
    conversation, alice = desk["conversation"], desk["alice"]

    async def scenario():
        socket = await connected(alice)
        await layer.group_send(inbox_group(conversation.inbox_id), {
            "type": "desk.typing", "conversation_id": conversation.pk, "typing": True,
            "who": "visitor", "user_id": None, "name": "Jane",
        })
        assert await socket.receive_json_from() == {
            "type": "typing", "conversation_id": conversation.pk, "typing": True,
            "who": "visitor", "user_id": None, "name": "Jane",
        }
        await socket.disconnect()

    async_to_sync(scenario)()


def test_anonymous_socket_is_refused(desk):
    from django.contrib.auth.models import AnonymousUser

    async def scenario():
        communicator = WebsocketCommunicator(AgentDashboardConsumer.as_asgi(), "/ws/agent/")
        communicator.scope["user"] = AnonymousUser()
        connected, _ = await communicator.connect()
        assert not connected

    async_to_sync(scenario)()


def test_typing_checks_the_conversations_inbox_at_each_frame(layer, desk):
    """Access is checked per frame against the database: a conversation moved to an inbox the
    agent does not work is refused at once, though the socket was opened before the move."""
    conversation, alice = desk["conversation"], desk["alice"]

    async def scenario():
        socket = await connected(alice)
        await database_sync_to_async(type(conversation).objects.filter(pk=conversation.pk).update)(
            inbox=desk["elsewhere"].inbox)
        await socket.send_json_to({"type": "typing", "conversation_id": conversation.pk, "typing": True})
        assert await socket.receive_json_from() == {"type": "error", "error": "No such conversation."}
        await socket.disconnect()

    async_to_sync(scenario)()


# --- Presence ------------------------------------------------------------------------------


def test_viewing_reaches_the_other_agents_never_the_viewer_and_is_taken_back_on_close(layer, desk):
    conversation, alice, bob = desk["conversation"], desk["alice"], desk["bob"]

    async def scenario():
        alice_socket, bob_socket = await connected(alice), await connected(bob)

        await alice_socket.send_json_to({"type": "viewing", "conversation_id": conversation.pk, "viewing": True})
        assert await bob_socket.receive_json_from() == {
            "type": "presence", "conversation_id": conversation.pk, "user_id": alice.pk, "name": "Alice", "viewing": True,
        }
        await roundtrip(alice_socket)
        assert await alice_socket.receive_nothing()  # never her own presence

        await bob_socket.send_json_to({"type": "viewing", "conversation_id": conversation.pk, "viewing": True})
        assert await alice_socket.receive_json_from() == {
            "type": "presence", "conversation_id": conversation.pk, "user_id": bob.pk, "name": "bob", "viewing": True,
        }
        await bob_socket.send_json_to({"type": "viewing", "conversation_id": conversation.pk, "viewing": False})
        assert (await alice_socket.receive_json_from())["viewing"] is False

        # Alice's page closes without saying anything: her socket takes her presence back.
        await alice_socket.disconnect()
        assert await bob_socket.receive_json_from() == {
            "type": "presence", "conversation_id": conversation.pk, "user_id": alice.pk, "name": "Alice", "viewing": False,
        }
        await roundtrip(bob_socket)
        await bob_socket.disconnect()

    async_to_sync(scenario)()


def test_viewing_a_conversation_outside_the_agents_inboxes_is_refused_like_a_missing_one(layer, desk):
    elsewhere, alice = desk["elsewhere"], desk["alice"]

    async def scenario():
        agents = await listen(layer, inbox_group(elsewhere.inbox_id))
        socket = await connected(alice)
        answers = []
        for conversation_id in (elsewhere.pk, 999999):
            await socket.send_json_to({"type": "viewing", "conversation_id": conversation_id, "viewing": True})
            answers.append(await socket.receive_json_from())
        # The same answer for a foreign conversation as for none at all: nothing leaks.
        assert answers == [{"type": "error", "error": "No such conversation."}] * 2
        assert await nothing_on(layer, agents)

        # Closing the socket takes back nothing it was refused.
        await socket.disconnect()
        assert await nothing_on(layer, agents)

    async_to_sync(scenario)()


def test_a_managers_viewing_reaches_the_inbox_they_are_not_a_member_of(layer, desk):
    from django.contrib.auth.models import Group

    from helpdesk.roles import MANAGERS_GROUP

    manager = UserFactory(username="maria", first_name="Maria")
    manager.groups.add(Group.objects.get_or_create(name=MANAGERS_GROUP)[0])
    carol = UserFactory(username="carol", first_name="Carol")
    elsewhere = desk["elsewhere"]
    elsewhere.inbox.members.add(carol)

    async def scenario():
        manager_socket, carol_socket, alice_socket = await connected(manager), await connected(carol), await connected(desk["alice"])
        await manager_socket.send_json_to({"type": "viewing", "conversation_id": elsewhere.pk, "viewing": True})
        assert await carol_socket.receive_json_from() == {
            "type": "presence", "conversation_id": elsewhere.pk, "user_id": manager.pk, "name": "Maria", "viewing": True,
        }
        await roundtrip(manager_socket)
        assert await alice_socket.receive_nothing()  # another inbox's presence is none of hers
        for socket in (manager_socket, carol_socket, alice_socket):
            await socket.disconnect()

    async_to_sync(scenario)()


def test_malformed_frames_get_an_error_frame_and_the_socket_lives_on(layer, desk):
    conversation, alice = desk["conversation"], desk["alice"]

    async def scenario():
        socket = await connected(alice)
        cases = [
            ({"text_data": "{not json"}, "Frames are JSON objects."),
            ({"text_data": "[1, 2]"}, "Frames are JSON objects."),
            ({"text_data": "null"}, "Frames are JSON objects."),
            ({"bytes_data": b"\x00\x01"}, "Frames are JSON text."),
            ({"text_data": json.dumps({"type": "ping", "pad": "x" * 4000})}, "Frame too large."),
            ({"text_data": json.dumps({"type": "subscribe", "inbox_id": 1})}, "Unknown frame type."),
            ({"text_data": json.dumps({"conversation_id": conversation.pk})}, "Unknown frame type."),
            ({"text_data": json.dumps({"type": "viewing", "conversation_id": True, "viewing": True})},
             "conversation_id must be a number."),
            ({"text_data": json.dumps({"type": "viewing", "conversation_id": conversation.pk, "viewing": "yes"})},
             "viewing must be true or false."),
            ({"text_data": json.dumps({"type": "viewing", "conversation_id": conversation.pk})}, "viewing must be true or false."),
        ]
        for frame, error in cases:
            await socket.send_to(**frame)
            assert await socket.receive_json_from() == {"type": "error", "error": error}, frame
        await roundtrip(socket)
        await socket.disconnect()

    async_to_sync(scenario)()


class FakeClock:
    """Stands in for time.monotonic in the consumer: the tests move time, never sleep."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    clock = FakeClock()
    monkeypatch.setattr("tickets.consumers.monotonic", clock)
    return clock


def test_a_flood_of_frames_is_cut_down_to_the_rate_with_one_error(layer, desk, clock):
    from tickets.consumers import FRAME_BURST, FRAME_RATE_PER_SECOND

    async def scenario():
        socket = await connected(desk["alice"])
        for _ in range(FRAME_BURST + 20):
            await socket.send_json_to({"type": "ping"})
        answers = []
        while not await socket.receive_nothing(timeout=0.2):
            answers.append(await socket.receive_json_from())
        assert answers == [{"type": "pong"}] * FRAME_BURST + [{"type": "error", "error": "Too many frames: slow down."}]

        clock.advance(2 / FRAME_RATE_PER_SECOND)  # two frames' worth
        for _ in range(3):
            await socket.send_json_to({"type": "ping"})
        assert await socket.receive_json_from() == {"type": "pong"}
        assert await socket.receive_json_from() == {"type": "pong"}
        assert await socket.receive_json_from() == {"type": "error", "error": "Too many frames: slow down."}
        assert await socket.receive_nothing()
        await socket.disconnect()

    async_to_sync(scenario)()


def test_viewing_is_bounded_per_socket(layer, desk):
    from tickets.consumers import MAX_VIEWING

    inbox = desk["inbox"]
    tickets = [TicketFactory(conversation__inbox=inbox) for _ in range(MAX_VIEWING + 1)]

    async def scenario():
        socket = await connected(desk["alice"])
        watcher = await listen(layer, inbox_group(inbox.pk))
        for ticket in tickets[:MAX_VIEWING]:
            await socket.send_json_to({"type": "viewing", "conversation_id": ticket.pk, "viewing": True})
            assert (await layer.receive(watcher))["viewing"] is True
        await socket.send_json_to({"type": "viewing", "conversation_id": tickets[-1].pk, "viewing": True})
        assert await socket.receive_json_from() == {"type": "error", "error": f"Viewing more than {MAX_VIEWING} conversations at once."}
        # Re-announcing one already viewed is no new one.
        await socket.send_json_to({"type": "viewing", "conversation_id": tickets[0].pk, "viewing": True})
        assert (await layer.receive(watcher))["conversation_id"] == tickets[0].pk
        await socket.disconnect()
        retracted = {(await layer.receive(watcher))["conversation_id"] for _ in range(MAX_VIEWING)}
        assert retracted == {ticket.pk for ticket in tickets[:MAX_VIEWING]}

    async_to_sync(scenario)()


# --- Events and access while the socket lives ------------------------------------------------


def event_for(conversation, seq: int = 1) -> dict:
    return {"type": "desk.event", "seq": seq, "event": "message.created", "inbox_id": conversation.inbox_id,
            "conversation_id": conversation.pk, "message_id": None}


def test_a_service_event_reaches_the_socket_with_its_sequence(layer, desk):
    from conversations.models import Event
    from conversations.services import note_create

    conversation, alice, bob = desk["conversation"], desk["alice"], desk["bob"]

    async def scenario():
        socket = await connected(alice)
        note = await database_sync_to_async(note_create)(conversation=conversation, author=bob, text="Call them back.")
        event = await database_sync_to_async(Event.objects.get)(message=note)
        assert await socket.receive_json_from() == {
            "type": "event", "seq": event.pk, "event": "message.created", "inbox_id": conversation.inbox_id,
            "conversation_id": conversation.pk, "message_id": note.pk,
        }
        await socket.disconnect()

    async_to_sync(scenario)()


def test_an_agent_removed_from_an_inbox_stops_receiving_it_without_reconnecting(layer, desk, clock):
    from tickets.consumers import ACCESS_RECHECK_SECONDS

    conversation, alice, inbox = desk["conversation"], desk["alice"], desk["inbox"]

    async def scenario():
        socket = await connected(alice)
        bob_socket = await connected(desk["bob"])
        await layer.group_send(inbox_group(inbox.pk), event_for(conversation, seq=1))
        assert (await socket.receive_json_from())["seq"] == 1
        assert (await bob_socket.receive_json_from())["seq"] == 1
        await bob_socket.send_json_to({"type": "viewing", "conversation_id": conversation.pk, "viewing": True})
        assert (await socket.receive_json_from())["type"] == "presence"

        await database_sync_to_async(inbox.members.remove)(alice)
        clock.advance(ACCESS_RECHECK_SECONDS)
        await layer.group_send(inbox_group(inbox.pk), event_for(conversation, seq=2))
        await bob_socket.send_json_to({"type": "typing", "conversation_id": conversation.pk, "typing": True})
        await bob_socket.send_json_to({"type": "viewing", "conversation_id": conversation.pk, "viewing": False})
        assert (await bob_socket.receive_json_from())["seq"] == 2  # a member still gets it
        await roundtrip(bob_socket)
        await roundtrip(socket)
        assert await socket.receive_nothing()
        # And the socket left the inbox's group: later pushes do not even reach it.
        assert socket_channels_in(layer, inbox_group(inbox.pk)) == 1  # bob's alone
        await socket.disconnect()
        await bob_socket.disconnect()

    async_to_sync(scenario)()


def test_frames_are_checked_against_the_agents_inboxes_at_once(layer, desk):
    conversation, alice, inbox = desk["conversation"], desk["alice"], desk["inbox"]

    async def scenario():
        socket = await connected(alice)
        watcher = await listen(layer, inbox_group(inbox.pk))
        await socket.send_json_to({"type": "viewing", "conversation_id": conversation.pk, "viewing": True})
        assert (await layer.receive(watcher))["viewing"] is True
        await database_sync_to_async(inbox.members.remove)(alice)
        # Like a request: no re-check interval for what the agent asks to do.
        for frame in ({"type": "typing", "conversation_id": conversation.pk, "typing": True},
                      {"type": "viewing", "conversation_id": conversation.pk, "viewing": True}):
            await socket.send_json_to(frame)
            assert await socket.receive_json_from() == {"type": "error", "error": "No such conversation."}
        # Her presence in the inbox she lost was taken back; nothing else was said there.
        assert await layer.receive(watcher) == {
            "type": "desk.presence", "conversation_id": conversation.pk, "inbox_id": inbox.pk, "user_id": alice.pk,
            "name": "Alice", "viewing": False,
        }
        await socket.disconnect()
        assert await nothing_on(layer, watcher)

    async_to_sync(scenario)()


def socket_channels_in(layer, group: str) -> int:
    return len(layer.groups.get(group, {}))


def test_an_agent_added_to_an_inbox_starts_receiving_it_without_reconnecting(layer, desk, clock):
    from tickets.consumers import ACCESS_RECHECK_SECONDS

    elsewhere, alice = desk["elsewhere"], desk["alice"]

    async def scenario():
        socket = await connected(alice)
        await layer.group_send(inbox_group(elsewhere.inbox_id), event_for(elsewhere, seq=1))
        await database_sync_to_async(elsewhere.inbox.members.add)(alice)
        clock.advance(ACCESS_RECHECK_SECONDS)
        await roundtrip(socket)  # the page's heartbeat: the socket re-reads its inboxes
        await layer.group_send(inbox_group(elsewhere.inbox_id), event_for(elsewhere, seq=2))
        assert (await socket.receive_json_from())["seq"] == 2
        await socket.disconnect()

    async_to_sync(scenario)()


def test_a_manager_demoted_loses_the_other_inboxes(layer, desk, clock):
    from django.contrib.auth.models import Group

    from helpdesk.roles import MANAGERS_GROUP
    from tickets.consumers import ACCESS_RECHECK_SECONDS

    managers = Group.objects.get_or_create(name=MANAGERS_GROUP)[0]
    maria = UserFactory(username="maria", first_name="Maria")
    maria.groups.add(managers)
    desk["inbox"].members.add(maria)
    elsewhere, conversation = desk["elsewhere"], desk["conversation"]

    async def scenario():
        socket = await connected(maria)
        await layer.group_send(inbox_group(elsewhere.inbox_id), event_for(elsewhere, seq=1))
        assert (await socket.receive_json_from())["seq"] == 1

        await database_sync_to_async(maria.groups.remove)(managers)
        clock.advance(ACCESS_RECHECK_SECONDS)
        await layer.group_send(inbox_group(elsewhere.inbox_id), event_for(elsewhere, seq=2))
        await layer.group_send(inbox_group(conversation.inbox_id), event_for(conversation, seq=3))
        assert (await socket.receive_json_from())["seq"] == 3  # her own inbox only
        await socket.disconnect()

    async_to_sync(scenario)()


def test_a_socket_stops_when_its_session_ends(layer, desk, clock, client):
    from channels.auth import AuthMiddlewareStack

    from tickets.consumers import ACCESS_RECHECK_SECONDS

    alice = desk["alice"]
    client.force_login(alice)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    async def scenario():
        app = AuthMiddlewareStack(AgentDashboardConsumer.as_asgi())
        socket = WebsocketCommunicator(app, "/ws/agent/", headers=[(b"cookie", cookie)])
        assert (await socket.connect())[0]
        assert (await socket.receive_json_from())["type"] == "hello"
        await roundtrip(socket)

        await database_sync_to_async(client.logout)()  # e.g. from another tab
        clock.advance(ACCESS_RECHECK_SECONDS)
        await layer.group_send(inbox_group(desk["inbox"].pk), event_for(desk["conversation"]))
        assert await socket.receive_output() == {"type": "websocket.close", "code": 4401}

        # Reconnecting with the dead session is refused before accept().
        again = WebsocketCommunicator(app, "/ws/agent/", headers=[(b"cookie", cookie)])
        assert not (await again.connect())[0]

    async_to_sync(scenario)()


def test_a_deactivated_account_loses_its_socket_at_the_next_heartbeat(layer, desk, clock):
    from tickets.consumers import ACCESS_RECHECK_SECONDS

    alice = desk["alice"]

    async def scenario():
        socket = await connected(alice)
        await database_sync_to_async(type(alice).objects.filter(pk=alice.pk).update)(is_active=False)
        await roundtrip(socket)  # within the re-check interval: still on
        clock.advance(ACCESS_RECHECK_SECONDS)
        await socket.send_json_to({"type": "ping"})
        assert await socket.receive_output() == {"type": "websocket.close", "code": 4401}

    async_to_sync(scenario)()


def test_sockets_of_one_agent_can_be_told_to_reconnect(layer, desk):
    from conversations.realtime import user_sockets_reconnect

    alice, bob = desk["alice"], desk["bob"]

    async def scenario():
        first, second, other = await connected(alice), await connected(alice), await connected(bob)
        await database_sync_to_async(user_sockets_reconnect)(user_id=alice.pk)
        assert await first.receive_output() == {"type": "websocket.close", "code": 4000}
        assert await second.receive_output() == {"type": "websocket.close", "code": 4000}
        await roundtrip(other)
        await other.disconnect()

    async_to_sync(scenario)()


# --- The sequence a client may trust ------------------------------------------------------------
# Catch-up (the events API) must never move a client's cursor past an event still being
# committed: on PostgreSQL ids are taken at insert, so a later id can become visible first.


def seq_rows(inbox, count: int) -> list[int]:
    from conversations.models import Event

    return [Event.objects.create(type="conversation.updated", inbox=inbox).pk for _ in range(count)]


class OtherTransaction:
    """A transaction left running on another connection, as a request still at work would be.

    Begun by hand: Django's atomic() on SQLite begins IMMEDIATE, which would hold the write lock.
    """

    def __enter__(self) -> Self:
        import threading

        from django.db import connection, connections

        started, self.release = threading.Event(), threading.Event()

        def run() -> None:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("BEGIN")
                    cursor.execute("SELECT count(*) FROM conversations_event")
                    started.set()
                    self.release.wait(20)
                    cursor.execute("ROLLBACK")
            finally:
                connections.close_all()

        self.thread = threading.Thread(target=run)
        self.thread.start()
        assert started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.thread.join(20)


def test_a_gap_holds_the_cursor_only_while_a_transaction_that_could_fill_it_runs(desk):
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from conversations.models import Event
    from conversations.realtime import SEQ_SETTLE_SECONDS, seq_settled

    # SQLite has one writer at a time: ids become visible in order, a gap is never in flight.
    in_flight = connection.vendor == "postgresql"
    with OtherTransaction():
        ids = seq_rows(desk["inbox"], 6)
        first, last = ids[0] - 1, ids[-1]
        assert seq_settled(after=first, upto=last) == last  # no gap
        Event.objects.filter(pk=ids[3]).delete()  # as if ids[3] were not committed yet
        assert seq_settled(after=first, upto=last) == (ids[2] if in_flight else last)
        assert seq_settled(after=ids[2], upto=last) == (ids[2] if in_flight else last)  # right above the cursor
        assert seq_settled(after=first, upto=ids[2]) == ids[2]  # the range ends below it
        # Long after the event above it was written, the gap is a rollback: it never fills.
        old = timezone.now() - timedelta(seconds=SEQ_SETTLE_SECONDS + 1)
        Event.objects.filter(pk__in=ids).update(created_at=old)
        assert seq_settled(after=first, upto=last) == last
    # Recent again, but no transaction is left that could fill it.
    Event.objects.filter(pk__in=ids).update(created_at=timezone.now())
    assert seq_settled(after=first, upto=last) == last


def test_a_client_following_the_settled_sequence_misses_no_event_committed_late(desk):
    """Two transactions publish at once and the later id commits first (PostgreSQL lets it;
    SQLite makes the second writer wait). A catch-up in between must not skip the first."""
    import threading

    from django.db import connections, transaction

    from conversations import realtime
    from conversations.realtime import seq_settled
    from tickets.selectors import events_after

    conversation, manager = desk["conversation"], UserFactory(username="root", is_superuser=True)
    ids: dict[str, int] = {}
    first_published, release_first, second_done = threading.Event(), threading.Event(), threading.Event()

    def publish(name: str, *, hold: bool) -> None:
        try:
            with transaction.atomic():
                ids[name] = realtime.publish(type="conversation.updated", inbox_id=conversation.inbox_id,
                                             conversation_id=conversation.pk).pk
                if hold:
                    first_published.set()
                    release_first.wait(20)
        finally:
            connections.close_all()
            if not hold:
                second_done.set()

    cursor = realtime.Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
    slow = threading.Thread(target=publish, args=("first",), kwargs={"hold": True})
    slow.start()
    assert first_published.wait(10)
    fast = threading.Thread(target=publish, args=("second",), kwargs={"hold": False})
    fast.start()
    second_done.wait(1)  # PostgreSQL: committed already; SQLite: waits for the first writer

    seen: list[int] = []
    visible = [event.pk for event in events_after(user=manager, after=cursor)]
    seen += visible
    cursor = seq_settled(after=cursor, upto=visible[-1]) if visible else cursor
    release_first.set()
    slow.join(20)
    fast.join(20)
    seen += [event.pk for event in events_after(user=manager, after=cursor)]

    assert ids["first"] < ids["second"]
    assert {ids["first"], ids["second"]} <= set(seen)


def test_events_are_forwarded_from_the_event_loop_until_a_recheck_is_due(layer, desk, clock, monkeypatch):
    # The most frequent work of a web process under load: no thread and no database per event
    # while what the socket may see is fresh; the sync path (with its re-check) once it is not.
    from tickets.consumers import ACCESS_RECHECK_SECONDS

    conversation = desk["conversation"]
    group = f"inbox.{conversation.inbox_id}"
    event = {"type": "desk.event", "seq": 7, "event": "conversation.updated", "inbox_id": conversation.inbox_id,
             "conversation_id": conversation.pk, "message_id": None}
    threads: list[str] = []
    original = AgentDashboardConsumer.desk_event

    def desk_event(self, message: dict) -> None:  # noqa: ANN001
        threads.append("sync")
        original(self, message)

    monkeypatch.setattr(AgentDashboardConsumer, "desk_event", desk_event)

    async def scenario():
        socket = await connected(desk["alice"])
        await layer.group_send(group, event)
        assert (await socket.receive_json_from())["seq"] == 7
        # An event of an inbox the socket no longer sees (its group not left yet): dropped.
        await layer.group_send(f"agent.{desk['alice'].pk}", {**event, "seq": 8, "inbox_id": desk["elsewhere"].inbox_id})
        assert await socket.receive_nothing(timeout=0.2)
        assert threads == []
        clock.now += ACCESS_RECHECK_SECONDS + 1
        await layer.group_send(group, {**event, "seq": 9})
        assert (await socket.receive_json_from())["seq"] == 9
        assert threads == ["sync"]
        await socket.disconnect()

    async_to_sync(scenario)()
