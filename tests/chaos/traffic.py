"""Real HTTP traffic into the stack: provider webhooks in their own formats, and agents' API calls.

A webhook that gets no 2xx (a 5xx, a refused connection) is posted again with backoff, as
Postmark and Twilio retry on any non-2xx; the retries are counted. Everything goes to the
ASGI processes over loopback; nothing here calls the desk's code.
"""
from __future__ import annotations

import itertools
import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlencode

import requests

from tests.channels_in.sms_helpers import DESK_NUMBER, inbound_params, sign
from tests.chaos.stack import Web
from tests.providers import basic_auth_header, build_email, postmark_inbound_json

SUPPORT = "support@acme.test"
POSTMARK_INBOUND = "/anymail/postmark/inbound/"
POSTMARK_TRACKING = "/anymail/postmark/tracking/"
# A provider keeps retrying for hours; here a webhook must get through within this.
RETRY_DEADLINE = 60.0
_phones = itertools.count(2000)  # distinct customers' numbers across the session (+1415555xxxx)
_local = threading.local()


def session() -> requests.Session:
    """One keep-alive session per thread (requests.Session is not thread-safe)."""
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
        _local.session.trust_env = False  # loopback only: never through a proxy from the environment
    return _local.session


@dataclass
class Tally:
    """What the client saw: posts, retries after a non-2xx, and the statuses that caused them."""

    posts: int = 0
    retries: int = 0
    retry_statuses: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, *, retry_status: str | None = None) -> None:
        with self.lock:
            if retry_status is None:
                self.posts += 1
            else:
                self.retries += 1
                self.retry_statuses[retry_status] += 1

    def summary(self) -> str:
        causes = ", ".join(f"{n}x {s}" for s, n in sorted(self.retry_statuses.items())) or "none"
        return f"{self.retries} retried ({causes})"


def post_until_accepted(url: str, *, body: bytes | Callable[[], bytes], headers: dict[str, str] | Callable[[], dict[str, str]],
                        tally: Tally, deadline: float = RETRY_DEADLINE) -> requests.Response:
    """POST until a 2xx answer, as the provider's retry loop does (backoff, bounded in time)."""
    tally.count()
    started, delay = time.monotonic(), 0.2
    while True:
        try:
            response = session().post(url, data=body() if callable(body) else body,
                                      headers=headers() if callable(headers) else headers, timeout=30)
            if response.status_code < 300:
                return response
            if response.status_code < 500 and response.status_code != 429:
                return response  # a 4xx is final: the provider gives up on it
            cause = str(response.status_code)
        except requests.ConnectionError:
            cause = "connection refused"
        except requests.Timeout:
            cause = "timeout"
        if time.monotonic() - started > deadline:
            raise AssertionError(f"POST {url} not accepted within {deadline:.0f} s (last: {cause})")
        tally.count(retry_status=cause)
        time.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(delay * 2, 2.0)


# Inbound ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Inbound:
    """One customer message as its provider posts it."""

    kind: str  # "email" or "sms"
    provider_id: str  # Postmark's MessageID / Twilio's MessageSid (InboundEvent.event_id)
    external_id: str  # how the timeline message is known: RFC Message-ID (no <>) / MessageSid
    path: str
    body: bytes = b""
    params: dict[str, str] = field(default_factory=dict)

    def post(self, web: Web, tally: Tally) -> requests.Response:
        if self.kind == "email":
            headers = {"Authorization": basic_auth_header(), "Content-Type": "application/json"}
            response = post_until_accepted(web.base + self.path, body=self.body, headers=headers, tally=tally)
        else:
            # Twilio signs the exact URL it calls: each process has its own address.
            headers = {"X-Twilio-Signature": sign(web.base + self.path, self.params), "Content-Type": "application/x-www-form-urlencoded"}
            response = post_until_accepted(web.base + self.path, body=urlencode(self.params).encode(), headers=headers, tally=tally)
        assert response.status_code == 200, f"{self.kind} webhook answered {response.status_code}: {response.text[:300]}"
        return response


def emails(count: int, tag: str) -> list[Inbound]:
    """New conversations by email: distinct customers, Postmark's inbound JSON."""
    items = []
    for i in range(count):
        rfc = f"{tag}-{i}-{uuid.uuid4().hex[:10]}@mail.chaos.example.org"
        postmark_id = str(uuid.uuid4())
        email = build_email(sender=f"Customer {tag} {i} <{tag}-{i}@customers.example.net>", to=SUPPORT,
                            subject=f"Order {tag}-{i} arrived damaged", text=f"Order {tag}-{i} arrived damaged. Please help.",
                            message_id=f"<{rfc}>")
        body = json.dumps(postmark_inbound_json(email, recipient=SUPPORT, postmark_id=postmark_id)).encode()
        items.append(Inbound("email", postmark_id, rfc, POSTMARK_INBOUND, body=body))
    return items


def texts(count: int, tag: str, channel_uuid: str) -> list[Inbound]:
    """New conversations by SMS: distinct customers' numbers, Twilio's form."""
    items = []
    for i in range(count):
        params = inbound_params(body=f"Order {tag}-{i} is late", from_=f"+1415555{next(_phones):04d}", to=DESK_NUMBER)
        items.append(Inbound("sms", params["MessageSid"], params["MessageSid"], f"/twilio/sms/{channel_uuid}/", params=params))
    return items


def post_all(items: Iterable[Inbound], webs: list[Web], tally: Tally, *, threads: int = 8,
             pace: float = 0.0, copies: int = 1) -> None:
    """Post every item (`copies` times each, concurrently, spread over the processes)."""
    jobs = [(item, webs[(n + copy) % len(webs)]) for n, item in enumerate(items) for copy in range(copies)]
    if copies > 1:
        random.shuffle(jobs)
    with ThreadPoolExecutor(threads) as pool:
        futures = []
        for item, web in jobs:
            futures.append(pool.submit(item.post, web, tally))
            if pace:
                time.sleep(pace)
        for future in futures:
            future.result()


# Agents ----------------------------------------------------------------------------------

@dataclass
class Agent:
    token: str

    def reply(self, web: Web, conversation_id: int, text: str) -> int:
        """An agent's reply through the REST API; the id of the queued message."""
        response = session().post(f"{web.base}/api/v1/conversations/{conversation_id}/reply/", json={"text": text},
                                  headers={"Authorization": f"Token {self.token}"}, timeout=30)
        assert response.status_code == 201, f"reply answered {response.status_code}: {response.text[:300]}"
        return response.json()["id"]

    def reply_all(self, webs: list[Web], conversation_ids: list[int], *, tag: str, threads: int = 4, pace: float = 0.0) -> list[int]:
        with ThreadPoolExecutor(threads) as pool:
            futures = []
            for n, conversation_id in enumerate(conversation_ids):
                futures.append(pool.submit(self.reply, webs[n % len(webs)], conversation_id, f"Reply {tag}-{n}: a replacement is on its way."))
                if pace:
                    time.sleep(pace)
            return [future.result() for future in futures]


def run_in_background(target: Callable[[], object]) -> Callable[[], object]:
    """Start target in a thread; the returned function joins it and re-raises what it raised."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = target()
        except BaseException as err:  # noqa: BLE001 - handed to the joining thread
            outcome["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def join(timeout: float = 180) -> object:
        thread.join(timeout)
        assert not thread.is_alive(), "traffic did not finish in time"
        if "error" in outcome:
            raise outcome["error"]  # type: ignore[misc]
        return outcome.get("value")

    return join
