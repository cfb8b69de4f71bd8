"""Widget round trip on the real server: visitor sends over the widget socket → agent socket receives.

N visitors each open a session (POST /widget/api/<key>/session) and a socket on /ws/widget/
(token in the subprotocol, an allowed Origin), all held open at once; an agent's dashboard
socket (/ws/agent/) listens. Visitors then send chat messages at a steady total rate; each
latency is from the visitor's send to the message.created frame for that message on the agent's
socket (frames are matched by the message id the visitor's ack carries). No Celery worker is
involved: a widget message is written by the socket's consumer itself.

Standalone: `python bench/widget.py [--visitors 200]` (SQLite, throwaway redis, temp dir).
From bench/run.py: widget_setup() then widget_round_trip() against its running server.
The Django-side step runs as `python -m bench.widget setup` with the desk's env.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import infra, load

BENCH_ORIGIN = "http://shop.bench.example"
SUBPROTOCOL = "desk-widget.v1"


# Django side ---------------------------------------------------------------------------------

def setup_step() -> dict:
    """A widget on the first inbox (the agent's), allowing the bench's page origin."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings.base")
    import django

    django.setup()
    from channels_in.models import WebChatChannel
    from conversations.models import Inbox

    inbox = Inbox.objects.order_by("id").first()
    channel, _ = WebChatChannel.objects.get_or_create(inbox=inbox, defaults={"allowed_origins": BENCH_ORIGIN, "pre_chat_form": False})
    return {"public_key": channel.public_key, "inbox_id": inbox.pk}


def widget_setup(env: dict[str, str], *, log: Path, timeout: float = 120) -> str:
    """Run the Django-side step with the desk's env; returns the widget's public key."""
    result = subprocess.run([sys.executable, "-m", "bench.widget", "setup"], cwd=REPO, env=env, capture_output=True, text=True, check=False,
                            timeout=timeout)
    with open(log, "a") as handle:
        handle.write(f"$ bench.widget setup\n{result.stdout}{result.stderr}\n")
    if result.returncode != 0:
        raise infra.BenchError(f"bench.widget setup failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["public_key"]


# Client side ---------------------------------------------------------------------------------

class VisitorSocket:
    def __init__(self, port: int, public_key: str, token: str) -> None:
        self.url = f"ws://127.0.0.1:{port}/ws/widget/?key={public_key}"
        self.token = token
        self.acks: dict[str, tuple[float, int]] = {}  # client_id -> (perf_counter, message id)
        self.errors: list[str] = []
        self._ws = None
        self._task: asyncio.Task | None = None

    async def open(self) -> None:
        from websockets.asyncio.client import connect

        self._ws = await connect(self.url, origin=BENCH_ORIGIN, subprotocols=[SUBPROTOCOL, self.token],
                                 proxy=None, compression=None, open_timeout=60, max_queue=None, ping_interval=None)
        hello = json.loads(await asyncio.wait_for(self._ws.recv(), 60))
        if hello.get("type") != "hello":
            raise RuntimeError(f"unexpected first frame on a widget socket: {hello}")
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for frame in self._ws:
            event = json.loads(frame)
            if event.get("type") == "ack":
                self.acks[event["client_id"]] = (time.perf_counter(), int(event["message"]["id"]))
            elif event.get("type") == "error":
                self.errors.append(str(event.get("error")))

    async def send(self, text: str, client_id: str) -> None:
        await self._ws.send(json.dumps({"type": "message", "text": text, "client_id": client_id}))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._ws is not None:
            await self._ws.close()


async def _sessions(port: int, public_key: str, count: int) -> list[str]:
    conn = load.HttpConnection(port, timeout=60)
    headers = {"Origin": BENCH_ORIGIN, "Content-Type": "application/json"}
    tokens = []
    try:
        for i in range(count):
            body = json.dumps({"name": f"Visitor {i}"}).encode()
            status, data = await conn.request("POST", f"/widget/api/{public_key}/session", headers=headers, body=body)
            if status != 200:
                raise RuntimeError(f"session {i} answered {status}: {data[:300]!r}")
            tokens.append(json.loads(data)["token"])
    finally:
        await conn.close()
    return tokens


async def widget_round_trip(port: int, session_key: str, public_key: str, *, visitors: int = 200, messages_per_visitor: int = 2,
                            rate: float = 20, max_wait: float = 60, open_concurrency: int = 20) -> dict:
    """p50/p99 of visitor send → agent socket frame, with `visitors` widget sockets held open."""
    started = time.perf_counter()
    tokens = await _sessions(port, public_key, visitors)
    sessions_seconds = time.perf_counter() - started
    sockets = [VisitorSocket(port, public_key, token) for token in tokens]
    gate = asyncio.Semaphore(open_concurrency)

    async def open_one(sock: VisitorSocket) -> None:
        async with gate:
            await sock.open()

    t0 = time.perf_counter()
    opened = await asyncio.gather(*(open_one(s) for s in sockets), return_exceptions=True)
    open_seconds = time.perf_counter() - t0
    open_errors = [repr(r) for r in opened if isinstance(r, BaseException)]
    live = [s for s, r in zip(sockets, opened) if not isinstance(r, BaseException)]
    sent_at: dict[str, float] = {}
    first_of_visitor: set[str] = set()
    try:
        async with load.AgentSocket(port, session_key) as agent:
            skip = len(agent.created)
            plan = [(sock, round_) for round_ in range(messages_per_visitor) for sock in live]
            t_send = time.perf_counter()
            for i, (sock, round_) in enumerate(plan):
                delay = t_send + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                client_id = str(uuid.uuid4())
                if round_ == 0:
                    first_of_visitor.add(client_id)
                sent_at[client_id] = time.perf_counter()
                await sock.send(f"Hello, message {round_} from a bench visitor", client_id)
            send_seconds = time.perf_counter() - t_send
            deadline = time.perf_counter() + max_wait
            while time.perf_counter() < deadline:
                acked = {mid for s in live for _, mid in s.acks.values()}
                seen = {mid for _, mid in agent.created[skip:]}
                if len(acked) >= len(sent_at) and acked <= seen:
                    break
                await asyncio.sleep(0.05)
            frames = {mid: at for at, mid in reversed(agent.created[skip:])}
    finally:
        await asyncio.gather(*(s.close() for s in live), return_exceptions=True)
    latencies, first, later, ack_latencies = [], [], [], []
    for sock in live:
        for client_id, (acked_at, message_id) in sock.acks.items():
            if client_id not in sent_at:
                continue
            ack_latencies.append(acked_at - sent_at[client_id])
            if message_id in frames:
                value = frames[message_id] - sent_at[client_id]
                latencies.append(value)
                (first if client_id in first_of_visitor else later).append(value)
    frame_errors = [e for s in live for e in s.errors]
    lost = len(sent_at) - len(latencies)
    ms = load._ms
    return {
        "visitors": visitors, "sockets_open": len(live), "open_errors": open_errors[:5], "open_seconds": round(open_seconds, 3),
        "sessions_seconds": round(sessions_seconds, 3), "messages": len(sent_at), "rate_per_s": rate,
        "send_seconds": round(send_seconds, 3), "received": len(latencies), "lost_or_late": lost,
        "p50_ms": ms(load.percentile(latencies, 50)), "p90_ms": ms(load.percentile(latencies, 90)),
        "p99_ms": ms(load.percentile(latencies, 99)), "max_ms": ms(max(latencies) if latencies else None),
        "mean_ms": ms(statistics.fmean(latencies) if latencies else None),
        # The first message opens a conversation and its ticket; later ones append.
        "first_message_p50_ms": ms(load.percentile(first, 50)), "later_message_p50_ms": ms(load.percentile(later, 50)),
        "ack_p50_ms": ms(load.percentile(ack_latencies, 50)), "ack_p99_ms": ms(load.percentile(ack_latencies, 99)),
        "frame_errors": frame_errors[:5],
        "errors": len(open_errors) + len(frame_errors) + lost,
    }


# Standalone run ------------------------------------------------------------------------------

def main(argv: list[str]) -> int:
    if argv[:1] == ["setup"]:
        print(json.dumps(setup_step()))
        return 0
    p = argparse.ArgumentParser(prog="bench/widget.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--visitors", type=int, default=200)
    p.add_argument("--messages", type=int, default=2, help="messages per visitor (default 2)")
    p.add_argument("--rate", type=float, default=20, help="total messages per second (default 20)")
    p.add_argument("--wait", type=float, default=60)
    p.add_argument("--keep-tmp", action="store_true")
    args = p.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="helpdesk-bench-widget-"))
    services: list[infra.Service] = []
    try:
        redis_service, redis_url = infra.redis_start(workdir)
        services.append(redis_service)
        env = infra.desk_env(database_url=f"sqlite:///{workdir / 'desk.sqlite3'}", redis_url=redis_url, media_root=workdir / "media")
        log = workdir / "setup.log"
        infra.manage(env, "migrate", "--noinput", "-v0", log=log)
        setup = json.loads(infra.desk_script(env, "setup", log=log).strip().splitlines()[-1])
        public_key = widget_setup(env, log=log)
        server, port = infra.uvicorn_start(env, workdir)
        services.append(server)
        asyncio.run(load.wait_http(port, timeout=30))
        result = asyncio.run(widget_round_trip(port, setup["session_key"], public_key, visitors=args.visitors,
                                               messages_per_visitor=args.messages, rate=args.rate, max_wait=args.wait))
        print(json.dumps(result, indent=2))
        return 1 if result["errors"] else 0
    finally:
        for service in reversed(services):
            service.stop()
        if args.keep_tmp:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
