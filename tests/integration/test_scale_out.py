"""The scaled-out deployment: two ASGI processes and two Celery workers on one database and Redis.

As behind a load balancer, requests go to either process: customers' webhooks (each one
delivered twice, once to each process, as a provider's retry may be) and an agent's API
replies. Two workers share the queues. An agent's socket on process A must get every event,
whichever process or worker caused it; every inbound email must be in the timeline once and
every reply must reach the provider once.
"""
from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token

from conversations.models import Event, Message
from tests.factories import EmailChannelFactory, UserFactory
from tests.fakes.desk import SUPPORT
from tests.fakes.postmark import FakePostmark
from tests.integration.conftest import Cluster, free_port, uvicorn_popen, wait_until
from tests.integration.test_two_asgi import agent_socket, request, session_cookie
from tests.providers import basic_auth_header, build_email, postmark_inbound_json

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CUSTOMERS = 12


@dataclass
class Web:
    name: str
    port: int
    process: subprocess.Popen
    log_path: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def fake_postmark() -> Iterator[FakePostmark]:
    fake = FakePostmark().start()
    yield fake
    fake.stop()


@pytest.fixture
def deployment(cluster: Cluster, fake_postmark: FakePostmark, tmp_path: Path) -> Iterator[tuple[Web, Web]]:
    """Two workers and beat, and two uvicorn processes publishing to the same broker and layer."""
    layer = cluster.redis.url.rpartition("/")[0] + "/2"
    extra = {"TEST_POSTMARK_API_URL": fake_postmark.url, "TEST_POSTMARK_SERVER_TOKEN": fake_postmark.token,
             "TEST_CHANNEL_LAYER_REDIS_URL": layer}
    cluster.start_worker("w1", **extra)
    cluster.start_worker("w2", **extra)
    cluster.start_beat()
    env = {**cluster.worker_env(**extra), "PYTHONUNBUFFERED": "1"}
    webs: list[Web] = []
    try:
        for name in ("A", "B"):
            port = free_port()
            log_path = tmp_path / f"uvicorn-{name}.log"
            webs.append(Web(name, port, uvicorn_popen(env, port, log_path), log_path))
        for web in webs:
            wait_until(lambda web=web: _serving(web), timeout=30, what=f"uvicorn {web.name}")
        yield webs[0], webs[1]
    finally:
        for web in webs:
            web.process.kill()
            web.process.wait(10)
            log = web.log_path.read_text(errors="replace")
            if "Traceback" in log:
                print(f"----- uvicorn {web.name} -----\n{log[-4000:]}")  # noqa: T201 - shown when the test fails


def _serving(web: Web) -> bool:
    if web.process.poll() is not None:
        raise RuntimeError(f"uvicorn {web.name} exited: {web.log_path.read_text(errors='replace')}")
    try:
        return request("GET", f"{web.base}/login/", headers={})[0] == 200
    except OSError:
        return False


def post_email(web: Web, payload: bytes) -> int:
    return request("POST", f"{web.base}/anymail/postmark/inbound/", body=payload,
                   headers={"Authorization": basic_auth_header(), "Content-Type": "application/json"})[0]


def test_two_processes_and_two_workers_lose_nothing_and_double_nothing(deployment, fake_postmark, cluster):
    a, b = deployment
    inbox = EmailChannelFactory(address=SUPPORT).inbox
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    inbox.members.add(alice, bob)
    token = Token.objects.create(user=bob).key
    emails = {
        f"order-{i}@mail.example.org": json.dumps(postmark_inbound_json(build_email(
            sender=f"Customer {i} <customer{i}@example.net>", to=SUPPORT, subject=f"Order {i} is late",
            text=f"Where is order {i}?", message_id=f"<order-{i}@mail.example.org>",
        ), recipient=SUPPORT)).encode()
        for i in range(CUSTOMERS)
    }

    frames: list[dict] = []
    with agent_socket(a, session_cookie(alice)) as socket:
        def listen() -> None:
            try:
                while True:
                    frames.append(json.loads(socket.recv(timeout=60)))
            except Exception:  # noqa: BLE001 - the socket closes at the end of the test
                return

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        # Every email reaches both processes at once: the provider retried while the first
        # delivery was still being answered.
        statuses: list[int] = []
        posters = [threading.Thread(target=lambda web=web, body=body: statuses.append(post_email(web, body)))
                   for body in emails.values() for web in (a, b)]
        for poster in posters:
            poster.start()
        for poster in posters:
            poster.join(30)
        assert statuses == [200] * (2 * CUSTOMERS)
        wait_until(lambda: Message.objects.filter(kind=Message.Kind.INBOUND).count() >= CUSTOMERS, timeout=60,
                   what="every email in a timeline")

        # Bob answers each customer through process B's API; the workers send the replies.
        inbound = list(Message.objects.filter(kind=Message.Kind.INBOUND).order_by("id"))
        for message in inbound:
            status, body, _ = request("POST", f"{b.base}/api/v1/conversations/{message.conversation_id}/reply/",
                                      body=json.dumps({"text": f"On its way ({message.rfc_message_id})."}).encode(),
                                      headers={"Authorization": f"Token {token}", "Content-Type": "application/json"})
            assert status == 201, body
        fake_postmark.wait_for(CUSTOMERS, timeout=60)
        wait_until(lambda: not Message.objects.filter(kind=Message.Kind.OUTBOUND).exclude(
            delivery_status=Message.DeliveryStatus.SENT).exists(), timeout=30, what="every reply marked sent")

        # Past the sweeper's grace with beat running: nothing is enqueued or sent again.
        time.sleep(4)
        expected = set(Event.objects.values_list("id", flat=True))
        wait_until(lambda: expected <= {f.get("seq") for f in frames if f.get("type") == "event"}, timeout=20,
                   what="every event on the socket of process A")

    assert Message.objects.filter(kind=Message.Kind.INBOUND).count() == CUSTOMERS
    assert sorted(Message.objects.filter(kind=Message.Kind.INBOUND).values_list("rfc_message_id", flat=True)) == sorted(emails)
    assert {m.conversation_id for m in inbound} == set(Message.objects.values_list("conversation_id", flat=True))
    sent = fake_postmark.received
    assert len(sent) == CUSTOMERS  # one send per reply, whichever worker took it
    replies = Message.objects.filter(kind=Message.Kind.OUTBOUND)
    assert sorted(request.header("Message-ID") for request in sent) == sorted(f"<{m.rfc_message_id}>" for m in replies)
    events = [f for f in frames if f.get("type") == "event"]
    assert len(events) == len({f["seq"] for f in events})  # no event pushed twice
    created = {f["message_id"] for f in events if f["event"] == "message.created"}
    assert created == set(Message.objects.values_list("id", flat=True))
    # Both workers did part of the work: the deployment really ran on two.
    logs = {p.name: p.log() for p in cluster.processes}
    assert "channels_in.inbound_process" in logs["w1"] and "channels_in.inbound_process" in logs["w2"]
