"""The load generator's traffic: what customers send, sent on time, and what agents' sockets see.

A phase is planned in full before it starts (payloads built, Twilio signatures computed), then
sent open loop: message i leaves at start + i/rate whatever the answers take, each on its own
task, over a pool of keep-alive connections per ASGI process (round-robin). Chat visitors are
real widget sessions: each opens its session and its socket on its process shortly before its
first message and closes some seconds after its last. Agent sockets on every process record
each message.created frame; frames are tied to what was sent only afterwards, through the ids
the desk stores (bench.loadgen_check).
"""
from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlencode

from bench import load
from bench.widget import VisitorSocket
from tests.providers import build_email, postmark_inbound_json

CHANNELS = ("email", "sms", "chat")
# A returning customer writes again this long after their first message (a back-and-forth).
REPEAT_AFTER = (2.0, 20.0)
# A visitor opens the widget this long before their first message, and leaves this long after their last.
VISITOR_LEAD_SECONDS = 1.5
VISITOR_LINGER_SECONDS = 3.0


def parse_mix(text: str) -> dict[str, float]:
    mix: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, _, weight = part.partition("=")
        name = name.strip()
        if name not in CHANNELS:
            raise ValueError(f"unknown channel {name!r} in the mix (known: {', '.join(CHANNELS)})")
        mix[name] = float(weight)
    if not mix or any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
        raise ValueError(f"the mix {text!r} has no positive weight")
    total = sum(mix.values())
    return {k: v / total for k, v in mix.items() if v > 0}


# The plan -----------------------------------------------------------------------------------

@dataclass
class Send:
    at: float  # seconds after the phase starts
    channel: str
    key: str  # the id the desk stores: the Message-ID (email), the MessageSid (sms), the client_id (chat)
    event_key: str  # the provider's event id (Postmark's MessageID, the MessageSid); "" for chat
    customer: int
    port: int
    repeat: bool
    path: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    text: str = ""
    # What happened
    sent_at: float | None = None  # perf_counter just before the request or frame went out
    answered_at: float | None = None
    outcome: str = ""  # "200", "http 500", an exception's name, "chat error: …", "no ack"
    accepted: bool = False
    ack_message_id: int | None = None
    retried: bool = False  # a stale keep-alive connection: sent again on a new one


@dataclass
class Visitor:
    customer: int
    port: int
    open_at: float
    close_at: float
    sock: VisitorSocket | None = None
    error: str = ""
    ready: asyncio.Event | None = None


@dataclass
class Plan:
    sends: list[Send]
    visitors: dict[int, Visitor]
    duration: float
    rate: float


class Customers:
    """Who writes next: someone new, or (with probability `repeat`) someone who wrote a little earlier."""

    def __init__(self, rng: random.Random, repeat: float) -> None:
        self.rng = rng
        self.repeat = repeat
        self.first: dict[str, list[tuple[float, int]]] = {c: [] for c in CHANNELS}
        self.count: Counter[str] = Counter()

    def pick(self, channel: str, at: float) -> tuple[int, bool]:
        if self.rng.random() < self.repeat:
            low, high = at - REPEAT_AFTER[1], at - REPEAT_AFTER[0]
            candidates = [c for t, c in self.first[channel] if low <= t <= high]
            if candidates:
                return self.rng.choice(candidates), True
        customer = self.count[channel]
        self.count[channel] += 1
        self.first[channel].append((at, customer))
        return customer, False


def plan_phase(*, rate: float, duration: float, mix: dict[str, float], repeat: float, ports: list[int], desk: dict,
               tag: str, seed: int, webhook_auth: str, offset: int = 0) -> Plan:
    """Every send of a phase, with its payload, in time order. `offset` keeps the round-robin going across phases."""
    from twilio.request_validator import RequestValidator

    rng = random.Random(seed)
    customers = Customers(rng, repeat)
    total = max(1, round(rate * duration))
    names, weights = list(mix), [mix[n] for n in mix]
    email_threads: dict[int, tuple[str, str]] = {}  # customer -> (subject, last Message-ID)
    sms_path = f"/twilio/sms/{desk['sms']['uuid']}/"
    validator = RequestValidator(desk["sms"]["auth_token"])
    email_headers = load.webhook_headers(webhook_auth)
    sends: list[Send] = []
    visitors: dict[int, Visitor] = {}
    for i in range(total):
        at = i / rate
        port = ports[(offset + i) % len(ports)]
        channel = rng.choices(names, weights)[0]
        customer, repeated = customers.pick(channel, at)
        if channel == "email":
            rfc = f"lg-{tag}-{i}-{uuid.uuid4().hex[:10]}@mail.customers.example.net"
            event_key = str(uuid.uuid4())
            subject, previous = email_threads.get(customer, (f"Order #{20000 + customer} arrived damaged ({tag})", ""))
            text = (f"Hello,\n\nmy order #{20000 + customer} arrived damaged: the box was crushed and the screen is "
                    f"cracked. Could you send a replacement?\n\nThanks,\nCustomer {customer}\n")
            email = build_email(
                sender=f"Customer {customer} <c{customer}-{tag}@customers.example.net>", to=desk["email"]["address"],
                subject=f"Re: {subject}" if previous else subject, text=text,
                html=f"<p>{text.replace(chr(10), '<br>')}</p>", message_id=f"<{rfc}>",
                in_reply_to=f"<{previous}>" if previous else None, references=f"<{previous}>" if previous else None,
            )
            email_threads[customer] = (subject, rfc)
            body = json.dumps(postmark_inbound_json(email, recipient=desk["email"]["address"], postmark_id=event_key)).encode()
            sends.append(Send(at=at, channel=channel, key=rfc, event_key=event_key, customer=customer, port=port,
                              repeat=repeated, path=load.WEBHOOK_PATH, headers=email_headers, body=body))
        elif channel == "sms":
            sid = "SM" + uuid.uuid4().hex
            params = sms_params(sid=sid, from_=f"+1646{customer:07d}", to=desk["sms"]["number"],
                                account_sid=desk["sms"]["account_sid"],
                                body=f"Hi, it's about order #{30000 + customer}: still not here. ({i})")
            # Twilio signs the URL it called, host and port included (request.build_absolute_uri()).
            signature = validator.compute_signature(f"http://127.0.0.1:{port}{sms_path}", params)
            headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
            sends.append(Send(at=at, channel=channel, key=sid, event_key=sid, customer=customer, port=port, repeat=repeated,
                              path=sms_path, headers=headers, body=urlencode(params).encode()))
        else:
            visitor = visitors.get(customer)
            if visitor is None:
                visitor = visitors[customer] = Visitor(customer=customer, port=port, open_at=max(0.0, at - VISITOR_LEAD_SECONDS),
                                                       close_at=at)
            visitor.close_at = at + VISITOR_LINGER_SECONDS
            sends.append(Send(at=at, channel=channel, key=str(uuid.uuid4()), event_key="", customer=customer, port=visitor.port,
                              repeat=repeated, text=f"Hello, a question about my order #{40000 + customer} ({i})"))
    return Plan(sends=sends, visitors=visitors, duration=total / rate, rate=rate)


def sms_params(*, sid: str, from_: str, to: str, account_sid: str, body: str) -> dict[str, str]:
    """The form Twilio posts for an incoming SMS (RELIABILITY.md §2)."""
    return {
        "ToCountry": "US", "ToState": "CA", "SmsMessageSid": sid, "NumMedia": "0", "ToCity": "SAN FRANCISCO",
        "FromZip": "10001", "SmsSid": sid, "FromState": "NY", "SmsStatus": "received", "FromCity": "NEW YORK",
        "Body": body, "FromCountry": "US", "To": to, "MessagingServiceSid": "", "ToZip": "94105", "NumSegments": "1",
        "MessageSid": sid, "AccountSid": account_sid, "From": from_, "ApiVersion": "2010-04-01",
    }


# Agents -------------------------------------------------------------------------------------

class AgentSocket(load.AgentSocket):
    """bench.load's agent socket, also noting when and how the server closed it (a dashboard
    would reconnect and refetch; the load generator reports it instead)."""

    closed_at: float | None = None
    close_code: int | None = None

    async def _read(self) -> None:
        try:
            await super()._read()
        finally:
            self.closed_at = time.perf_counter()
            self.close_code = getattr(self._ws, "close_code", None)

    @property
    def open(self) -> bool:
        return self._task is not None and not self._task.done()


# Sending ------------------------------------------------------------------------------------

class Pool:
    """Keep-alive connections to one process: a free one per request, a new one when none is free."""

    def __init__(self, port: int, *, limit: int, timeout: float) -> None:
        self.port = port
        self.limit = limit
        self.timeout = timeout
        self.idle: list[load.HttpConnection] = []
        self.opened = 0
        self.busy = 0
        self.busy_max = 0
        self.freed = asyncio.Condition()

    async def get(self) -> load.HttpConnection:
        async with self.freed:
            while not self.idle and self.opened >= self.limit:
                await self.freed.wait()
            self.busy += 1
            self.busy_max = max(self.busy_max, self.busy)
            if self.idle:
                return self.idle.pop()
            self.opened += 1
            return load.HttpConnection(self.port, timeout=self.timeout)

    async def put(self, conn: load.HttpConnection) -> None:
        async with self.freed:
            self.busy -= 1
            self.idle.append(conn)
            self.freed.notify()

    async def close(self) -> None:
        for conn in self.idle:
            await conn.close()
        self.idle.clear()


async def _request(conn: object, method: str, path: str, *, headers: dict, body: bytes) -> tuple[int, bytes, bool]:
    """(status, body, retried). The server may close an idle keep-alive connection just as a
    request goes out on it (uvicorn's keep-alive timeout): nothing was read, so the request
    is sent once more on a new connection, as HTTP clients do."""
    for attempt in (1, 2):
        reused = conn.writer is not None
        try:
            status, data = await conn.request(method, path, headers=headers, body=body)
            return status, data, attempt == 2
        except (ConnectionResetError, asyncio.IncompleteReadError):
            if not reused or attempt == 2:
                raise
    raise AssertionError("unreachable")


async def _post(pool: Pool, send: Send) -> None:
    conn = await pool.get()
    try:
        send.sent_at = time.perf_counter()
        status, _, send.retried = await _request(conn, "POST", send.path, headers=send.headers, body=send.body)
        send.outcome = str(status) if 200 <= status < 300 else f"http {status}"
        send.accepted = 200 <= status < 300
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as err:
        send.outcome = type(err).__name__
    finally:
        send.answered_at = time.perf_counter()
        await pool.put(conn)


async def _chat(visitor: Visitor, send: Send, ack_timeout: float) -> None:
    await visitor.ready.wait()
    if visitor.sock is None:
        send.outcome = f"visitor socket: {visitor.error}"
        return
    try:
        send.sent_at = time.perf_counter()
        await visitor.sock.send(send.text, send.key)
    except Exception as err:  # noqa: BLE001 - a closed socket is an error of this send
        send.outcome = f"chat send {type(err).__name__}"
        return
    deadline = time.perf_counter() + ack_timeout
    while send.key not in visitor.sock.acks and time.perf_counter() < deadline and not visitor.sock.errors:
        await asyncio.sleep(0.01)
    if send.key in visitor.sock.acks:
        send.answered_at, send.ack_message_id = visitor.sock.acks[send.key]
        send.outcome, send.accepted = "ack", True
    elif visitor.sock.errors:
        send.outcome = f"chat error: {visitor.sock.errors[-1][:80]}"
    else:
        send.outcome = "no ack"


async def _visitor_open(visitor: Visitor, public_key: str, origin: str, pools: dict[int, Pool]) -> None:
    try:
        pool = pools[visitor.port]
        conn = await pool.get()
        try:
            body = json.dumps({"name": f"Visitor {visitor.customer}"}).encode()
            status, data, _ = await _request(conn, "POST", f"/widget/api/{public_key}/session",
                                             headers={"Origin": origin, "Content-Type": "application/json"}, body=body)
        finally:
            await pool.put(conn)
        if status != 200:
            raise RuntimeError(f"session answered {status}")
        sock = VisitorSocket(visitor.port, public_key, json.loads(data)["token"])
        await sock.open()
        visitor.sock = sock
    except Exception as err:  # noqa: BLE001 - reported with each send of this visitor
        visitor.error = f"{type(err).__name__}: {str(err)[:120]}"
    finally:
        visitor.ready.set()


@dataclass
class Sent:
    started: float  # perf_counter at the phase start
    finished: float  # when the last send was answered
    lag: list[float]  # how late each send left against its plan (the client's own delay)
    busy_max: dict[int, int]


async def send_phase(plan: Plan, *, pools: dict[int, Pool], desk: dict, timeout: float) -> Sent:
    """Send the plan on time; visitors' sockets open and close around their messages."""
    chat = desk["chat"]
    timeline: list[tuple[float, int, object]] = []  # (at, order, action)
    for visitor in plan.visitors.values():
        visitor.ready = asyncio.Event()
        timeline.append((visitor.open_at, 0, ("open", visitor)))
        timeline.append((visitor.close_at, 2, ("close", visitor)))
    for send in plan.sends:
        timeline.append((send.at, 1, ("send", send)))
    timeline.sort(key=lambda item: (item[0], item[1]))
    tasks: list[asyncio.Task] = []
    closers: list[asyncio.Task] = []
    lag: list[float] = []
    started = time.perf_counter()

    async def close_later(visitor: Visitor, after: list[asyncio.Task]) -> None:
        await asyncio.gather(*after, return_exceptions=True)
        if visitor.sock is not None:
            await visitor.sock.close()

    pending_chat: dict[int, list[asyncio.Task]] = {}
    for at, _, (kind, item) in timeline:
        delay = started + at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if kind == "open":
            tasks.append(asyncio.create_task(_visitor_open(item, chat["public_key"], chat["origin"], pools)))
        elif kind == "close":
            closers.append(asyncio.create_task(close_later(item, pending_chat.pop(item.customer, []))))
        else:
            lag.append(time.perf_counter() - (started + at))
            if item.channel == "chat":
                task = asyncio.create_task(_chat(plan.visitors[item.customer], item, timeout))
                pending_chat.setdefault(item.customer, []).append(task)
            else:
                task = asyncio.create_task(_post(pools[item.port], item))
            tasks.append(task)
    await asyncio.gather(*tasks, return_exceptions=True)
    finished = time.perf_counter()
    await asyncio.gather(*closers, return_exceptions=True)
    return Sent(started=started, finished=finished, lag=lag, busy_max={p: pool.busy_max for p, pool in pools.items()})
