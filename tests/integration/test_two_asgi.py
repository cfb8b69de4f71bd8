"""Two ASGI processes behind one channel layer, as when scaled out behind a load balancer.

Two uvicorn processes serve helpdesk.asgi on this test's database and share a throwaway
Redis channel layer. An agent's socket on process A must get what a request handled by
process B caused (the event, with its sequence), and presence said on B must reach A.
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from email.message import Message
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.db import connection
from django.test import Client
from rest_framework.authtoken.models import Token
from websockets.sync.client import ClientConnection, connect

from conversations.models import Event
from tests.factories import ContactFactory, EmailChannelFactory, MessageFactory, TicketFactory, UserFactory
from tests.integration.conftest import RedisServer, free_port, uvicorn_popen, wait_until
from tickets.models import Ticket

pytestmark = pytest.mark.integration


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen
    log_path: Path
    redis_url: str  # the channel layer's

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def servers(django_db_setup, django_db_blocker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    """Redis and two uvicorn processes on the test database; module-scoped (a few seconds to start)."""
    directory = tmp_path_factory.mktemp("two-asgi")
    redis = RedisServer(directory)
    redis.start()
    with django_db_blocker.unblock():
        db_name = str(connection.settings_dict["NAME"])
        engine = str(connection.settings_dict["ENGINE"])
    if connection.vendor == "sqlite":
        database_url = f"sqlite:///{db_name}"
    else:  # the same server as DATABASE_URL, its test database
        database_url = urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{db_name}").geturl()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "helpdesk.settings.test",
        "DATABASE_URL": database_url,
        "TEST_DATABASE_ENGINE": engine,
        "TEST_DATABASE_NAME": db_name,
        "TEST_CHANNEL_LAYER_REDIS_URL": redis.url,
        "PYTHONUNBUFFERED": "1",
    }
    started: list[Server] = []
    try:
        for name in ("A", "B"):
            port = free_port()
            log_path = directory / f"uvicorn-{name}.log"
            process = uvicorn_popen(env, port, log_path)
            started.append(Server(name, port, process, log_path, redis.url))
        for server in started:
            wait_until(lambda server=server: serving(server), timeout=30, what=f"uvicorn {server.name}")
        yield started[0], started[1]
    finally:
        for server in started:
            server.process.terminate()
            try:
                server.process.wait(10)
            except subprocess.TimeoutExpired:
                server.process.kill()
            if "Traceback" in server.log():
                sys.stderr.write(f"\n--- uvicorn {server.name} ---\n{server.log()[-6000:]}\n")
        redis.crash()


def serving(server: Server) -> bool:
    if server.process.poll() is not None:
        raise RuntimeError(f"uvicorn {server.name} exited with {server.process.returncode}:\n{server.log()}")
    try:
        with urllib.request.urlopen(f"{server.base}/login/", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)  # a session row both processes read
    return client.cookies["sessionid"].value


@contextmanager
def agent_socket(server: Server, session: str) -> Iterator[ClientConnection]:
    """The dashboard's socket, with the page's session cookie and origin."""
    with connect(f"ws://127.0.0.1:{server.port}/ws/agent/", origin=server.base,
                 additional_headers={"Cookie": f"sessionid={session}"}, open_timeout=10) as socket:
        assert json.loads(socket.recv(timeout=10))["type"] == "hello"
        yield socket


def receive(socket: ClientConnection, count: int) -> list[dict]:
    return [json.loads(socket.recv(timeout=10)) for _ in range(count)]


def request(method: str, url: str, *, body: bytes | None = None, headers: dict[str, str]) -> tuple[int, bytes, Message]:
    """(status, body, headers); the headers are looked up case-insensitively."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers


@pytest.fixture
def desk(transactional_db):
    inbox = EmailChannelFactory(inbox__name="Support").inbox
    alice = UserFactory(username="alice", first_name="Alice")
    bob = UserFactory(username="bob", first_name="Bob")
    inbox.members.add(alice, bob)
    ticket = TicketFactory(conversation__inbox=inbox, conversation__contact=ContactFactory(email="jane@example.org"),
                           conversation__subject="Parcel lost")
    MessageFactory(conversation=ticket.conversation, text="Where is my parcel?")
    return {"alice": alice, "bob": bob, "ticket": ticket}


def test_an_event_caused_on_one_process_reaches_a_socket_on_the_other_with_its_sequence(servers, desk):
    a, b = servers
    ticket, alice, bob = desk["ticket"], desk["alice"], desk["bob"]
    with agent_socket(a, session_cookie(alice)) as socket:
        before = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0

        # A reply through the API, handled by B.
        token = Token.objects.create(user=bob).key
        status, body, _ = request("POST", f"{b.base}/api/v1/conversations/{ticket.pk}/reply/",
                                  body=json.dumps({"text": "It is on its way."}).encode(),
                                  headers={"Authorization": f"Token {token}", "Content-Type": "application/json"})
        assert status == 201, body
        reply_id = json.loads(body)["id"]
        reply_events = list(Event.objects.filter(id__gt=before).order_by("id").values("id", "type", "message_id"))
        assert {"type": "message.created", "message_id": reply_id} in [
            {"type": e["type"], "message_id": e["message_id"]} for e in reply_events]
        frames = receive(socket, len(reply_events))
        assert [(f["type"], f["seq"], f["event"], f["message_id"]) for f in frames] == [
            ("event", e["id"], e["type"], e["message_id"]) for e in reply_events]
        assert all(f["conversation_id"] == ticket.pk for f in frames)

        # A status change through the dashboard (session and CSRF), handled by B.
        bob_session = session_cookie(bob)
        status, _, headers = request("GET", f"{b.base}/c/{ticket.pk}/", headers={"Cookie": f"sessionid={bob_session}"})
        assert status == 200
        csrf = SimpleCookie(headers["Set-Cookie"])["csrftoken"].value
        last = reply_events[-1]["id"]
        status, body, _ = request(
            "POST", f"{b.base}/c/{ticket.pk}/status", body=b"status=pending",
            headers={"Cookie": f"sessionid={bob_session}; csrftoken={csrf}", "X-CSRFToken": csrf, "X-Desk-Fragment": "1",
                     "Content-Type": "application/x-www-form-urlencoded", "Origin": b.base})
        assert status == 200, body[:300]
        assert Ticket.objects.get(pk=ticket.pk).status == "pending"
        status_events = list(Event.objects.filter(id__gt=last).order_by("id").values_list("id", "type"))
        assert ("conversation.updated" in [kind for _, kind in status_events])
        frames = receive(socket, len(status_events))
        assert [(f["seq"], f["event"]) for f in frames] == status_events


def test_presence_and_typing_cross_between_the_processes(servers, desk):
    a, b = servers
    ticket, alice, bob = desk["ticket"], desk["alice"], desk["bob"]
    with agent_socket(a, session_cookie(alice)) as alice_socket, agent_socket(b, session_cookie(bob)) as bob_socket:
        bob_socket.send(json.dumps({"type": "viewing", "conversation_id": ticket.pk, "viewing": True}))
        assert json.loads(alice_socket.recv(timeout=10)) == {
            "type": "presence", "conversation_id": ticket.pk, "user_id": bob.pk, "name": "Bob", "viewing": True}

        alice_socket.send(json.dumps({"type": "typing", "conversation_id": ticket.pk, "typing": True}))
        assert json.loads(bob_socket.recv(timeout=10)) == {
            "type": "typing", "conversation_id": ticket.pk, "typing": True, "who": "agent", "user_id": alice.pk, "name": "Alice"}

        # Bob's page goes away without a word: process B takes his presence back, A hears it.
        bob_socket.close()
        assert json.loads(alice_socket.recv(timeout=10)) == {
            "type": "presence", "conversation_id": ticket.pk, "user_id": bob.pk, "name": "Bob", "viewing": False}
        # Nothing of her own came back to her.
        alice_socket.send(json.dumps({"type": "ping"}))
        assert json.loads(alice_socket.recv(timeout=10)) == {"type": "pong"}


def test_an_event_published_by_a_third_process_reaches_the_sockets_of_both(servers, desk, settings):
    """The worker side (here: this test process) publishes once; each process's sockets get it."""
    from conversations.services import note_create
    from helpdesk.settings.integrations.channels import CHANNEL_LAYERS

    a, b = servers
    ticket, alice, bob = desk["ticket"], desk["alice"], desk["bob"]
    layers = copy.deepcopy(CHANNEL_LAYERS)
    layers["default"]["CONFIG"]["hosts"][0]["address"] = a.redis_url
    settings.CHANNEL_LAYERS = layers  # this process publishes through the servers' Redis
    with ExitStack() as stack:
        sockets = [stack.enter_context(agent_socket(a, session_cookie(alice))),
                   stack.enter_context(agent_socket(b, session_cookie(bob)))]
        note = note_create(conversation=ticket.conversation, author=bob, text="Called the carrier.")
        seq = Event.objects.get(message=note).id
        for socket in sockets:
            [frame] = receive(socket, 1)
            assert (frame["type"], frame["seq"], frame["message_id"]) == ("event", seq, note.pk)
