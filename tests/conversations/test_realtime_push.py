"""How sync code reaches the channel layer: the server's loop in a view, one kept loop elsewhere."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest
from asgiref.sync import async_to_sync, sync_to_async

from conversations import realtime


class Recorder:
    def __init__(self) -> None:
        self.loops: list[asyncio.AbstractEventLoop] = []

    async def send(self, group: str, payload: dict) -> None:
        self.loops.append(asyncio.get_running_loop())


def test_pushes_outside_the_server_share_one_loop_that_outlives_them():
    # A Celery worker: no server loop. A loop per push would mean a Redis connection per push.
    recorder = Recorder()
    realtime._run(recorder.send, "inbox.1", {})
    other: list[BaseException] = []

    def from_another_thread() -> None:
        try:
            realtime._run(recorder.send, "inbox.1", {})
        except BaseException as err:  # noqa: BLE001 - reported below
            other.append(err)

    thread = threading.Thread(target=from_another_thread)
    thread.start()
    thread.join(5)
    realtime._run(recorder.send, "inbox.1", {})
    assert not other
    assert len(recorder.loops) == 3
    assert len(set(map(id, recorder.loops))) == 1
    assert recorder.loops[0].is_running()  # kept, with its connections, for the next push


def test_a_push_from_a_view_runs_on_the_servers_own_loop():
    recorder = Recorder()

    async def server() -> asyncio.AbstractEventLoop:
        await sync_to_async(realtime._run)(recorder.send, "inbox.1", {})  # a sync view under ASGI
        return asyncio.get_running_loop()

    server_loop = async_to_sync(server)()
    assert recorder.loops == [server_loop]


def test_a_stalled_channel_layer_costs_a_push_its_timeout_not_the_worker(monkeypatch):
    monkeypatch.setattr(realtime, "PUSH_TIMEOUT_SECONDS", 0.3)
    cancelled = threading.Event()

    async def hangs(group: str, payload: dict) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        realtime._run(hangs, "inbox.1", {})
    assert time.monotonic() - started < 2
    assert cancelled.wait(2)  # nothing left hanging on the loop
    recorder = Recorder()
    realtime._run(recorder.send, "inbox.1", {})  # the loop still serves the next push
    assert len(recorder.loops) == 1
