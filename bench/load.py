"""Load on the real server: Postmark inbound webhooks over HTTP/1.1 keep-alive, and an agent's socket.

One asyncio loop drives every connection, so the client stays cheap next to the server it
measures (2 cores are shared). All requests go to 127.0.0.1, in a bounded count and time.
"""
from __future__ import annotations

import asyncio
import base64
import json
import math
import statistics
import time
import uuid
from collections import Counter
from dataclasses import dataclass

from tests.providers import build_email, postmark_inbound_json

WEBHOOK_PATH = "/anymail/postmark/inbound/"
# Queue wait growing by more than this from the first to the last third of a paced run.
BACKLOG_GROWTH_SECONDS = 0.25
SUPPORT_ADDRESS = "support@acme.test"


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of the samples; None without samples."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


@dataclass(frozen=True)
class Posting:
    rfc_message_id: str  # without <>, as the desk stores it
    body: bytes


def postings(*, count: int, tag: str) -> list[Posting]:
    """Distinct customers writing new emails (text + HTML), as Postmark posts them."""
    result = []
    for i in range(count):
        rfc = f"{tag}-{i}-{uuid.uuid4().hex[:8]}@mail.bench.example.org"
        html = (f"<html><body><p>Hello,</p><p>Order <b>#{10000 + i}</b> arrived damaged. The box was crushed and the "
                f"screen is cracked.</p><p>Could you send a replacement?</p><p>Thanks,<br>Customer {i}</p></body></html>")
        email = build_email(
            sender=f"Customer {i} <customer-{tag}-{i}@bench.example.net>",
            to=SUPPORT_ADDRESS,
            subject=f"Damaged order #{10000 + i} ({tag})",
            text=f"Hello,\n\nOrder #{10000 + i} arrived damaged. The box was crushed and the screen is cracked.\n"
                 f"Could you send a replacement?\n\nThanks,\nCustomer {i}\n",
            html=html,
            message_id=f"<{rfc}>",
        )
        payload = postmark_inbound_json(email, recipient=SUPPORT_ADDRESS)
        result.append(Posting(rfc_message_id=rfc, body=json.dumps(payload).encode()))
    return result


class HttpConnection:
    """A minimal HTTP/1.1 keep-alive client (no extra dependency; httpx is not installed)."""

    def __init__(self, port: int, *, timeout: float) -> None:
        self.port = port
        self.timeout = timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None

    async def request(self, method: str, path: str, *, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
        try:
            return await asyncio.wait_for(self._request(method, path, headers, body), self.timeout)
        except BaseException:
            await self.close()  # a half-read response would poison the next request
            raise

    async def _request(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        fields = {}
        for line in header_lines:
            if ":" in line:
                k, _, v = line.partition(":")
                fields[k.strip().lower()] = v.strip()
        if "content-length" in fields:
            data = await self.reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                data += await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        else:
            data = await self.reader.read()
            fields["connection"] = "close"
        if fields.get("connection", "").lower() == "close":
            await self.close()
        return status, data


def webhook_headers(auth: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode(), "Content-Type": "application/json"}


async def wait_http(port: int, *, timeout: float) -> int:
    """Until the app answers (any status: /healthz is 503 while no worker runs)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        conn = HttpConnection(port, timeout=5)
        try:
            status, _ = await conn.request("GET", "/healthz", headers={})
            return status
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as err:
            last = err
            await asyncio.sleep(0.2)
        finally:
            await conn.close()
    raise RuntimeError(f"the app did not answer /healthz within {timeout} s: {last!r}")


# 1. Webhooks accepted per second -----------------------------------------------------------

async def webhook_throughput(port: int, items: list[Posting], *, auth: str, concurrency: int, max_seconds: float,
                             timeout: float = 30) -> dict:
    """Post every item once over `concurrency` keep-alive connections; stop early at max_seconds."""
    headers = webhook_headers(auth)
    next_index = 0
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    started = time.perf_counter()
    deadline = started + max_seconds

    async def client() -> None:
        nonlocal next_index
        conn = HttpConnection(port, timeout=timeout)
        try:
            while next_index < len(items) and time.perf_counter() < deadline:
                item = items[next_index]
                next_index += 1
                t0 = time.perf_counter()
                try:
                    status, _ = await conn.request("POST", WEBHOOK_PATH, headers=headers, body=item.body)
                    statuses[str(status)] += 1
                    if status == 200:
                        latencies.append(time.perf_counter() - t0)
                except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as err:
                    statuses[type(err).__name__] += 1
        finally:
            await conn.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    ok = statuses.get("200", 0)
    sent = sum(statuses.values())
    return {
        "planned": len(items), "sent": sent, "ok": ok, "errors": sent - ok, "statuses": dict(statuses),
        "concurrency": concurrency, "seconds": round(elapsed, 3), "stopped_by_time_cap": sent < len(items),
        "accepted_per_s": round(ok / elapsed, 1) if elapsed else None,
        "post_ms_p50": _ms(percentile(latencies, 50)), "post_ms_p99": _ms(percentile(latencies, 99)),
    }


# 2. Webhook to agent socket ----------------------------------------------------------------

class AgentSocket:
    """The agent dashboard's WebSocket, logged in by session cookie, recording message.created."""

    def __init__(self, port: int, session_key: str) -> None:
        self.port = port
        self.session_key = session_key
        self.created: list[tuple[float, int]] = []  # (perf_counter at receipt, message_id)
        self.other_events = 0
        self._ws = None
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> "AgentSocket":
        from websockets.asyncio.client import connect

        self._ws = await connect(
            f"ws://127.0.0.1:{self.port}/ws/agent/",
            origin=f"http://127.0.0.1:{self.port}",  # AllowedHostsOriginValidator checks it
            additional_headers={"Cookie": f"sessionid={self.session_key}"},
            proxy=None, compression=None, open_timeout=15, max_queue=None,
        )
        hello = json.loads(await asyncio.wait_for(self._ws.recv(), 15))
        if hello.get("type") != "hello":
            raise RuntimeError(f"unexpected first frame on the agent socket: {hello}")
        self._task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        async for frame in self._ws:
            now = time.perf_counter()
            event = json.loads(frame)
            if event.get("type") == "event" and event.get("event") == "message.created" and event.get("message_id"):
                self.created.append((now, int(event["message_id"])))
            else:
                self.other_events += 1

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._ws is not None:
            await self._ws.close()


async def _paced_posts(port: int, items: list[Posting], *, auth: str, rate: float, connections: int,
                       timeout: float) -> tuple[dict[str, float], Counter[str]]:
    """POST at a steady rate whatever the answers take (a free connection is taken per post)."""
    headers = webhook_headers(auth)
    pool: asyncio.Queue[HttpConnection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(HttpConnection(port, timeout=timeout))
    posted_at: dict[str, float] = {}
    statuses: Counter[str] = Counter()

    async def post(item: Posting) -> None:
        conn = await pool.get()
        try:
            posted_at[item.rfc_message_id] = time.perf_counter()
            status, _ = await conn.request("POST", WEBHOOK_PATH, headers=headers, body=item.body)
            statuses[str(status)] += 1
            if status != 200:
                posted_at.pop(item.rfc_message_id, None)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as err:
            statuses[type(err).__name__] += 1
            posted_at.pop(item.rfc_message_id, None)
        finally:
            pool.put_nowait(conn)

    started = time.perf_counter()
    tasks = []
    for i, item in enumerate(items):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(post(item)))
    await asyncio.gather(*tasks)
    while not pool.empty():
        await pool.get_nowait().close()
    return posted_at, statuses


async def end_to_end(port: int, session_key: str, items: list[Posting], warmup: list[Posting], *, auth: str, rate: float,
                     connections: int, lookup, max_wait: float, warmup_wait: float, timeout: float = 30) -> dict:
    """Latency from each POST to its message.created frame on the agent's socket.

    `lookup(message_ids) -> {message_id: (rfc_message_id, received_at, processed_at)}` maps the
    frames (ids only) back to the posted emails from the database after the run; the inbound
    event's own times (epoch seconds) split each latency into: the POST until the event row
    is written, the queue until a worker claims it, and the worker's processing plus the push.
    """
    async with AgentSocket(port, session_key) as sock:
        # Warm-up: the worker is up and the path is hot before anything is measured.
        warm_posted, warm_statuses = await _paced_posts(port, warmup, auth=auth, rate=rate, connections=connections, timeout=timeout)
        deadline = time.perf_counter() + warmup_wait
        while len(sock.created) < len(warm_posted) and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        warm_seen = len(sock.created)
        await asyncio.sleep(0.5)  # let stragglers from before (the drain) arrive, then forget them
        skip = len(sock.created)

        wall_offset = time.time() - time.perf_counter()
        started = time.perf_counter()
        posted_at, statuses = await _paced_posts(port, items, auth=auth, rate=rate, connections=connections, timeout=timeout)
        send_seconds = time.perf_counter() - started
        deadline = time.perf_counter() + max_wait
        while len(sock.created) - skip < len(posted_at) and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        frames = sock.created[skip:]
    found = await asyncio.to_thread(lookup, [mid for _, mid in frames])
    latencies, ingest, queued, queued_posted, work = [], [], [], [], []
    matched: set[str] = set()
    for received, message_id in frames:
        rfc, row_at, claimed_at = found.get(message_id, (None, None, None))
        if rfc in posted_at and rfc not in matched:
            matched.add(rfc)
            posted = posted_at[rfc]
            latencies.append(received - posted)
            if row_at is not None and claimed_at is not None:
                ingest.append(row_at - (posted + wall_offset))
                queued.append(claimed_at - row_at)
                queued_posted.append(posted)
                work.append(received + wall_offset - claimed_at)
    sent = sum(statuses.values())
    post_errors = sent - statuses.get("200", 0)
    lost = len(posted_at) - len(matched)
    # A queue that keeps growing means the rate was above what the worker could do while
    # the server took its share of the CPU: the latency then measures the backlog.
    in_post_order = [q for _, q in sorted(zip(queued_posted, queued))]
    third = len(in_post_order) // 3
    growth = (statistics.median(in_post_order[-third:]) - statistics.median(in_post_order[:third])) if third >= 5 else None
    return {
        "rate_per_s": rate, "count": len(items), "sent": sent, "post_statuses": dict(statuses), "post_errors": post_errors,
        "send_seconds": round(send_seconds, 3), "achieved_rate_per_s": round(sent / send_seconds, 1) if send_seconds else None,
        "received": len(latencies), "lost_or_late": lost, "max_wait_s": max_wait,
        "warmup": {"count": len(warmup), "statuses": dict(warm_statuses), "events_seen": warm_seen},
        "p50_ms": _ms(percentile(latencies, 50)), "p90_ms": _ms(percentile(latencies, 90)),
        "p99_ms": _ms(percentile(latencies, 99)), "max_ms": _ms(max(latencies) if latencies else None),
        "mean_ms": _ms(statistics.fmean(latencies) if latencies else None),
        "split_p50_ms": {"post_to_row": _ms(percentile(ingest, 50)), "row_to_claim": _ms(percentile(queued, 50)),
                         "claim_to_frame": _ms(percentile(work, 50))},
        "split_p99_ms": {"post_to_row": _ms(percentile(ingest, 99)), "row_to_claim": _ms(percentile(queued, 99)),
                         "claim_to_frame": _ms(percentile(work, 99))},
        "queue_growth_ms": _ms(growth), "backlog": growth is not None and growth > BACKLOG_GROWTH_SECONDS,
        "errors": post_errors + lost,
    }
