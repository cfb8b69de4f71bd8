"""The widget's WebSocket through the real ASGI application: who gets in, and what they hear."""
from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from channels_in import widget
from channels_in.models import Visitor, WebChatChannel
from conversations.models import Channel, Conversation, Message
from conversations.services import reply_create
from helpdesk.asgi import application
from tests.channels_in.test_widget_http import SITE, clock_at, make_webchat
from tests.factories import UserFactory


# The consumer runs its ORM calls in worker threads: they must see committed rows.
pytestmark = pytest.mark.django_db(transaction=True)


def socket(channel: WebChatChannel, token: str | None, *, origin: str | None = SITE,
           protocols: list[str] | None = None) -> WebsocketCommunicator:
    headers = [(b"origin", origin.encode())] if origin is not None else []
    if protocols is None:
        protocols = [widget.SUBPROTOCOL] + ([token] if token else [])
    return WebsocketCommunicator(application, f"/ws/widget/?key={channel.public_key}", headers=headers, subprotocols=protocols)


def session(channel: WebChatChannel, **kwargs: object) -> tuple[Visitor, str]:
    visitor = widget.visitor_session(channel=channel, **kwargs)
    return visitor, widget.visitor_token(visitor=visitor)


async def receive(comm: WebsocketCommunicator, type_: str, timeout: float = 3) -> dict:
    """The next frame of this type (others, like our own message echoes, are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        frame = await comm.receive_json_from(timeout=max(0.05, deadline - time.monotonic()))
        if frame["type"] == type_:
            return frame


def run(coro) -> object:
    async def main() -> object:
        return await coro

    return async_to_sync(main)()


def test_refused_without_a_valid_token_or_allowed_origin(settings) -> None:
    chat = make_webchat()
    visitor, token = session(chat)
    with clock_at(time.time() - settings.WIDGET_TOKEN_MAX_AGE_SECONDS - 60):
        expired = widget.visitor_token(visitor=visitor)
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    other = make_webchat(email_address=None)
    _, other_token = session(other)
    attempts = {
        "absent token": socket(chat, None),
        "expired token": socket(chat, expired),
        "forged token": socket(chat, forged),
        "another widget's token": socket(chat, other_token),
        "token as the only subprotocol": socket(chat, None, protocols=[token]),
        "foreign origin": socket(chat, token, origin="https://evil.example"),
        "absent origin": socket(chat, token, origin=None),
        "unknown key": WebsocketCommunicator(application, "/ws/widget/?key=nope", headers=[(b"origin", SITE.encode())],
                                             subprotocols=[widget.SUBPROTOCOL, token]),
    }

    async def attempt_all() -> dict[str, bool]:
        results = {}
        for name, comm in attempts.items():
            connected, _ = await comm.connect()
            results[name] = connected
            await comm.disconnect()
        good = socket(chat, token)
        connected, protocol = await good.connect()
        results["valid"] = (connected, protocol)
        await good.disconnect()
        return results

    results = run(attempt_all())
    assert results.pop("valid") == (True, widget.SUBPROTOCOL)
    assert results == {name: False for name in attempts}


def test_a_visitor_chats_live_and_hears_only_their_own_conversation() -> None:
    chat = make_webchat()
    ada, ada_token = session(chat, name="Ada")
    _bob, bob_token = session(chat, name="Bob")
    agent = UserFactory()
    layer = get_channel_layer()

    async def scenario() -> dict:
        inbox_listener = await layer.new_channel()
        await layer.group_add(f"inbox.{chat.inbox_id}", inbox_listener)
        ada_ws, bob_ws = socket(chat, ada_token), socket(chat, bob_token)
        assert (await ada_ws.connect())[0] and (await bob_ws.connect())[0]
        assert (await receive(ada_ws, "hello"))["conversation_id"] is None
        await receive(bob_ws, "hello")
        client_id = str(uuid.uuid4())
        await ada_ws.send_json_to({"type": "message", "text": "Ada's secret", "client_id": client_id})
        ack = await receive(ada_ws, "ack")
        assert ack["client_id"] == client_id and ack["message"]["text"] == "Ada's secret"
        await bob_ws.send_json_to({"type": "message", "text": "Bob here", "client_id": str(uuid.uuid4())})
        await receive(bob_ws, "ack")
        # The agents' inbox group heard of both messages.
        events = [await asyncio.wait_for(layer.receive(inbox_listener), 3) for _ in range(2)]
        assert {e["type"] for e in events} == {"desk.event"}

        ada_conversation = await database_sync_to_async(lambda: Visitor.objects.get(pk=ada.pk).conversation)()
        # Agent typing and reply in Ada's conversation: only Ada's socket hears them.
        await layer.group_send(f"webchat.{ada_conversation.pk}", {"type": "widget.typing", "typing": True, "name": "Sam"})
        typing = await receive(ada_ws, "typing")

        def agent_replies() -> None:
            message = reply_create(conversation=ada_conversation, author=agent, text="Your refund is on its way", channel=Channel.WEBCHAT)
            from channels_in.services import outbound_deliver

            outbound_deliver(message_id=message.pk)

        await database_sync_to_async(agent_replies)()
        pushed = await receive(ada_ws, "message")
        # Bob re-uses Ada's client_id and asks to mark Ada's reply seen: both refused.
        await bob_ws.send_json_to({"type": "message", "text": "give me hers", "client_id": client_id})
        stolen = await receive(bob_ws, "error")
        await bob_ws.send_json_to({"type": "seen", "message_id": pushed["message"]["id"]})
        seen_refused = await receive(bob_ws, "error")
        # Bob's socket heard nothing of Ada's conversation.
        bob_heard = []
        while not await bob_ws.receive_nothing(timeout=0.2):
            bob_heard.append(await bob_ws.receive_json_from())
        # Ada marks it seen over the socket.
        await ada_ws.send_json_to({"type": "seen", "message_id": pushed["message"]["id"]})
        status = await receive(ada_ws, "status")
        await ada_ws.disconnect()
        await bob_ws.disconnect()
        return {"typing": typing, "pushed": pushed, "stolen": stolen, "seen_refused": seen_refused,
                "bob_heard": bob_heard, "status": status, "ada_conversation": ada_conversation.pk}

    result = run(scenario())
    assert result["typing"] == {"type": "typing", "typing": True, "name": "Sam"}
    assert result["pushed"]["message"]["text"] == "Your refund is on its way"
    assert result["pushed"]["message"]["direction"] == "out"
    assert result["stolen"]["error"] == "This client_id is already used by another message."
    assert "Ada" not in str(result["stolen"]) and "secret" not in str(result["stolen"])
    assert result["seen_refused"]["error"] == "No such message in this conversation."
    assert all("refund" not in str(frame) and "secret" not in str(frame) for frame in result["bob_heard"])
    assert result["status"] == {"type": "status", "message_id": result["pushed"]["message"]["id"], "status": "read"}
    ada_conversation = Conversation.objects.get(pk=result["ada_conversation"])
    assert list(ada_conversation.messages.filter(kind="inbound").values_list("text", flat=True)) == ["Ada's secret"]
    assert Message.objects.get(pk=result["pushed"]["message"]["id"]).delivery_status == "read"


def test_visitor_typing_goes_to_the_agents_and_pings_keep_the_visitor_online() -> None:
    chat = make_webchat()
    visitor, token = session(chat, name="Ada")
    widget.visitor_message_send(visitor=visitor, text="hi", client_id=str(uuid.uuid4()))
    conversation_id = Visitor.objects.get(pk=visitor.pk).conversation_id
    layer = get_channel_layer()

    async def scenario() -> tuple[dict, bool, bool]:
        listener = await layer.new_channel()
        await layer.group_add(f"inbox.{chat.inbox_id}", listener)
        ws = socket(chat, token)
        assert (await ws.connect())[0]
        assert (await receive(ws, "hello"))["conversation_id"] == conversation_id
        await ws.send_json_to({"type": "typing", "typing": True})
        typing = await asyncio.wait_for(layer.receive(listener), 3)
        await ws.send_json_to({"type": "ping"})
        await receive(ws, "pong")
        online = await database_sync_to_async(lambda: Visitor.objects.get(pk=visitor.pk).online_until > timezone.now())()
        await ws.disconnect()
        offline = await database_sync_to_async(lambda: Visitor.objects.get(pk=visitor.pk).online_until <= timezone.now())()
        return typing, online, offline

    typing, online, offline = run(scenario())
    assert typing == {"type": "desk.typing", "conversation_id": conversation_id, "typing": True,
                      "who": "visitor", "user_id": None, "name": "Ada"}
    assert online and offline


def test_the_first_message_over_the_socket_joins_its_conversation() -> None:
    chat = make_webchat()
    _, token = session(chat)

    async def scenario() -> dict:
        ws = socket(chat, token)
        assert (await ws.connect())[0]
        await receive(ws, "hello")
        await ws.send_json_to({"type": "message", "text": "first", "client_id": str(uuid.uuid4())})
        ack = await receive(ws, "ack")
        conversation_id = await database_sync_to_async(lambda: Message.objects.get(pk=ack["message"]["id"]).conversation_id)()
        await get_channel_layer().group_send(f"webchat.{conversation_id}", {"type": "widget.seen", "agent_last_seen_at": "2026-11-23T10:00:00+00:00"})
        seen = await receive(ws, "seen")
        await ws.send_json_to({"type": "message", "text": "", "client_id": str(uuid.uuid4())})
        error = await receive(ws, "error")
        await ws.disconnect()
        return {"seen": seen, "error": error}

    result = run(scenario())
    assert result["seen"] == {"type": "seen", "agent_last_seen_at": "2026-11-23T10:00:00+00:00"}
    assert result["error"]["error"] == "A message needs some text." and result["error"]["client_id"]


def test_the_cors_check_works_inside_the_event_loop() -> None:
    """Under ASGI CorsMiddleware asks from async code, where the ORM refuses to run."""
    from django.test import RequestFactory

    from channels_in.widget_views import cors_allow_widget_origin

    chat = make_webchat(origins="https://loop.example")
    path = f"/widget/api/{chat.public_key}/session"

    async def ask(origin: str) -> bool:
        return cors_allow_widget_origin(None, RequestFactory().options(path, headers={"Origin": origin}))

    assert run(ask("https://loop.example")) is True
    assert run(ask("https://evil.example")) is False


def test_one_visitors_slow_message_does_not_hold_up_another_visitors_frames(monkeypatch) -> None:
    """Frames of different visitors run in parallel threads; one visitor's stay in order."""
    chat = make_webchat()
    _ada, ada_token = session(chat, name="Ada")
    _bob, bob_token = session(chat, name="Bob")
    release = threading.Event()
    real_send = widget.visitor_message_send

    def slow_send(*, visitor, text, client_id):  # noqa: ANN001, ANN202 - Ada's write waits until released
        if visitor.name == "Ada":
            assert release.wait(10)
        return real_send(visitor=visitor, text=text, client_id=client_id)

    monkeypatch.setattr(widget, "visitor_message_send", slow_send)

    async def scenario() -> list[str]:
        ada_ws, bob_ws = socket(chat, ada_token), socket(chat, bob_token)
        assert (await ada_ws.connect())[0] and (await bob_ws.connect())[0]
        await receive(ada_ws, "hello")
        await receive(bob_ws, "hello")
        await ada_ws.send_json_to({"type": "message", "text": "first", "client_id": str(uuid.uuid4())})
        await ada_ws.send_json_to({"type": "ping"})
        await asyncio.sleep(0.2)  # Ada's write is under way and blocked
        await bob_ws.send_json_to({"type": "message", "text": "Bob here", "client_id": str(uuid.uuid4())})
        bob_ack = await receive(bob_ws, "ack", timeout=5)
        assert bob_ack["message"]["text"] == "Bob here"
        release.set()
        # Ada's own frames stayed in order: the ack of her message before the pong.
        order = []
        while len(order) < 2:
            frame = await ada_ws.receive_json_from(timeout=5)
            if frame["type"] in ("ack", "pong"):
                order.append(frame["type"])
        await ada_ws.disconnect()
        await bob_ws.disconnect()
        return order

    try:
        assert run(scenario()) == ["ack", "pong"]
    finally:
        release.set()
