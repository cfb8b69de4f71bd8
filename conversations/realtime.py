"""Realtime events. Only services call publish(); the push happens after commit.

Every event is first a row in Event (its id is the sequence), written in the caller's
transaction, so a client that missed a push can always fetch it afterwards.
"""
from __future__ import annotations

import logging
from typing import TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from conversations.models import Event

logger = logging.getLogger(__name__)

EVENT_TYPES = ("message.created", "message.updated", "conversation.updated", "sla.warned", "sla.breached")


class DeskEvent(TypedDict):
    """What a socket receives: small, ids only; the client refetches what it shows."""

    type: str
    seq: int
    event: str
    inbox_id: int
    conversation_id: int | None
    message_id: int | None


def inbox_group(inbox_id: int) -> str:
    return f"inbox.{inbox_id}"


def user_group(user_id: int) -> str:
    """Every open dashboard of one agent (notifications meant for them alone)."""
    return f"agent.{user_id}"


def event_payload(event: Event) -> DeskEvent:
    return {
        "type": "desk.event",
        "seq": event.id,
        "event": event.type,
        "inbox_id": event.inbox_id,
        "conversation_id": event.conversation_id,
        "message_id": event.message_id,
    }


def publish(*, type: str, inbox_id: int, conversation_id: int | None = None, message_id: int | None = None) -> Event:
    """Record the event in the current transaction and push it to sockets once committed."""
    assert type in EVENT_TYPES, type
    event = Event.objects.create(type=type, inbox_id=inbox_id, conversation_id=conversation_id, message_id=message_id)
    payload = event_payload(event)
    transaction.on_commit(lambda: _push(payload))
    return event


def _push(payload: DeskEvent) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(inbox_group(payload["inbox_id"]), dict(payload))
    except Exception:  # noqa: BLE001 - realtime is at-most-once; the Event row is the truth
        logger.warning("realtime push failed for seq %s", payload["seq"], exc_info=True)


# Ephemeral pushes (typing, seen, messages to a customer's widget): no Event row, lost if
# nobody listens. Customers' widgets listen on their conversation's group.

def customer_group(conversation_id: int) -> str:
    """The group a web chat widget showing this conversation listens on."""
    return f"webchat.{conversation_id}"


def push_after_commit(group: str, payload: dict) -> None:
    """group_send once the current transaction commits (at once outside one); never raises."""
    transaction.on_commit(lambda: _send(group, payload))


def _send(group: str, payload: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, payload)
    except Exception:  # noqa: BLE001 - at-most-once by design
        logger.warning("realtime push to %s failed", group, exc_info=True)
