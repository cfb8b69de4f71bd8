"""Realtime events. Only services call publish(); the push happens after commit.

Every event is first a row in Event (its id is the sequence), written in the caller's
transaction, so a client that missed a push can always fetch it afterwards.
"""
from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypedDict

from asgiref.sync import SyncToAsync
from channels.layers import get_channel_layer
from django.db import connection, transaction
from django.utils import timezone

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


# An event's id is taken when its row is inserted, not when its transaction commits. SQLite
# has one writer at a time, so ids become visible in order; PostgreSQL lets a later id become
# visible first (two transactions publishing at once), so a gap in the sequence may be an event
# about to appear. A gap is settled once no transaction that could fill it is still running,
# and at the latest this long after the next event was written (a rolled-back transaction).
SEQ_SETTLE_SECONDS = 30
# How far apart the app's clock (Event.created_at) and the database's may be.
CLOCK_SKEW_SECONDS = 2


def seq_settled(*, after: int, upto: int, now: datetime | None = None) -> int:
    """How far a client that has read every event in (after, upto] may move its cursor.

    `upto`, unless a gap in that range may still fill: then just below the lowest such gap,
    so the next catch-up fetches the late event instead of skipping it for good. No query on
    SQLite; on PostgreSQL one over the events of the last SEQ_SETTLE_SECONDS, and a second
    (running transactions) only when that range has a gap.
    """
    if upto <= after or connection.vendor != "postgresql":
        return upto
    recent_since = (now or timezone.now()) - timedelta(seconds=SEQ_SETTLE_SECONDS)
    gaps: list[tuple[int, datetime]] = []  # (the id just below a gap, when the id above it was written)
    above: tuple[int, datetime] | None = None
    rows = Event.objects.filter(id__gt=after, id__lte=upto).order_by("-id").values_list("id", "created_at")
    for seq, created_at in rows.iterator(chunk_size=200):
        if above is not None and above[0] - seq > 1 and above[1] > recent_since:
            gaps.append((seq, above[1]))
        if created_at <= recent_since:
            break  # every gap further down is older
        above = (seq, created_at)
    else:
        if above is not None and above[0] - after > 1:
            gaps.append((after, above[1]))  # right above the client's cursor
    if not gaps:
        return upto
    running_since = _oldest_other_transaction_start()
    if running_since is None:
        return upto  # nothing in flight: every gap is a rollback
    could_fill = max(recent_since, running_since - timedelta(seconds=CLOCK_SKEW_SECONDS))
    open_gaps = [below for below, written_at in gaps if written_at > could_fill]
    return min(open_gaps) if open_gaps else upto


def _oldest_other_transaction_start() -> datetime | None:
    """When the oldest transaction still running on this database, other than ours, began.

    pg_stat_activity shows it for the sessions of our own role: the desk's processes share one.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT min(xact_start) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND xact_start IS NOT NULL"
        )
        return cursor.fetchone()[0]


def _push(payload: DeskEvent) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        _run(layer.group_send, inbox_group(payload["inbox_id"]), dict(payload))
    except Exception:
        logger.warning("realtime push failed for seq %s", payload["seq"], exc_info=True)


# A push waits at most this long for Redis: realtime is at-most-once, the caller (a worker
# that has committed its work) must not hang on a stalled channel layer.
PUSH_TIMEOUT_SECONDS = 3.0

_loop_lock = threading.Lock()
_push_loop: tuple[int, asyncio.AbstractEventLoop] | None = None


def _run(send: Callable[..., Awaitable[None]], *args: object) -> None:
    """Run a channel layer call from sync code, waiting at most PUSH_TIMEOUT_SECONDS.

    Inside the ASGI server (a sync view in one of the server's threads) it runs on the
    server's own loop, as async_to_sync would. Elsewhere (Celery workers, commands)
    async_to_sync would make an event loop per call, and channels_redis a Redis connection
    per loop: a new connection for every push, most of a push's cost. There, one loop per
    process runs in a thread and keeps its connections.
    """
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    if not (loop is not None and loop.is_running()
            and getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None) == os.getpid()):
        loop = _background_loop()
    future = asyncio.run_coroutine_threadsafe(send(*args), loop)
    try:
        future.result(timeout=PUSH_TIMEOUT_SECONDS)
    except TimeoutError:
        future.cancel()
        raise


def _background_loop() -> asyncio.AbstractEventLoop:
    """This process's push loop, started on first use (and again in a forked child)."""
    global _push_loop
    with _loop_lock:
        if _push_loop is None or _push_loop[0] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="realtime-push", daemon=True).start()
            _push_loop = (os.getpid(), loop)
        return _push_loop[1]


# Ephemeral pushes (typing, seen, messages to a customer's widget): no Event row, lost if
# nobody listens. Customers' widgets listen on their conversation's group.

def customer_group(conversation_id: int) -> str:
    """The group a web chat widget showing this conversation listens on."""
    return f"webchat.{conversation_id}"


def user_sockets_reconnect(*, user_id: int) -> None:
    """Close every open dashboard socket of one agent once the current transaction commits.

    The pages reconnect at once and catch up from the API, and the new sockets are set up
    from what the agent may see by then. Sockets re-check access by themselves within a few
    seconds (tickets.consumers); this is for when that is not soon enough, or to move
    sockets off a process about to stop.
    """
    push_after_commit(user_group(user_id), {"type": "desk.reconnect"})


def push_after_commit(group: str, payload: dict) -> None:
    """group_send once the current transaction commits (at once outside one); never raises."""
    transaction.on_commit(lambda: _send(group, payload))


def _send(group: str, payload: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        _run(layer.group_send, group, payload)
    except Exception:
        logger.warning("realtime push to %s failed", group, exc_info=True)
