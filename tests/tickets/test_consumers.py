"""The agent dashboard's socket: typing both ways, checked against the agent's inboxes."""
from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from conversations.realtime import customer_group, inbox_group
from tests.factories import InboxFactory, TicketFactory, UserFactory
from tickets.consumers import AgentDashboardConsumer

# The consumer reaches the database from its own thread: the rows must be committed.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def layer():
    layer = get_channel_layer()
    async_to_sync(layer.flush)()
    yield layer
    async_to_sync(layer.flush)()


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
