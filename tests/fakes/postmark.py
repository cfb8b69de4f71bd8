"""A local stand-in for Postmark's send API (POST /email), for the real anymail backend.

It answers like Postmark (https://postmarkapp.com/developer/api/email-api): 200 with
{"To","SubmittedAt","MessageID","ErrorCode":0,"Message":"OK"}, or whatever a test queues
up: a 422 {"ErrorCode":300,...}, a 500, or a response that never comes in time.
Every request is recorded (headers and parsed JSON) so tests count deliveries.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parseaddr
from http.server import BaseHTTPRequestHandler

from tests.fakes.server import LocalHTTPServer


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: dict | None = None  # None: Postmark's success body for the request
    delay: float = 0.0  # seconds to wait before answering (a slow or hanging provider)


OK = Reply()
# Postmark names the refused address in the message; "{to}" is filled in from the request.
INVALID_TO = Reply(422, {"ErrorCode": 300, "Message": "Invalid 'To' address: '{to}'."})
SERVER_ERROR = Reply(500, {"ErrorCode": 500, "Message": "Internal server error"})


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    json: dict
    message_id: str | None = None  # the MessageID we answered with, if success

    def header(self, name: str) -> str | None:
        """A mail header the backend put in Postmark's "Headers" list."""
        for item in self.json.get("Headers", []):
            if item["Name"].lower() == name.lower():
                return item["Value"]
        return None


@dataclass
class FakePostmark:
    token: str = "server-token"
    replies: deque[Reply] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.arrived = threading.Condition(self._lock)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                data = json.loads(self.rfile.read(length) or b"{}")
                fake._answer(self, data)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
                pass

        self._http = LocalHTTPServer(Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.port}/"

    def start(self) -> FakePostmark:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    def queue(self, *replies: Reply) -> None:
        """Answer the next requests with these, in order; afterwards success again."""
        with self._lock:
            self.replies.extend(replies)

    def wait_for(self, count: int, timeout: float) -> list[Received]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.received) >= count, timeout=timeout)
            return list(self.received)

    def _answer(self, handler: BaseHTTPRequestHandler, data: dict) -> None:
        with self._lock:
            reply = self.replies.popleft() if self.replies else OK
            record = Received(path=handler.path, headers=dict(handler.headers), json=data)
            self.received.append(record)
            self.arrived.notify_all()
        if handler.path != "/email":
            status, body = 404, {"ErrorCode": 404, "Message": "Not found"}
        elif handler.headers.get("X-Postmark-Server-Token") != self.token:
            status, body = 401, {"ErrorCode": 10, "Message": "Bad or missing Server API token."}
        elif reply.body is None and reply.status == 200:
            record.message_id = str(uuid.uuid4())
            status, body = 200, {
                "To": data.get("To", ""),
                "SubmittedAt": datetime.now(timezone.utc).isoformat(),
                "MessageID": record.message_id,
                "ErrorCode": 0,
                "Message": "OK",
            }
        else:
            to = parseaddr(data.get("To", ""))[1]
            status, body = reply.status, {k: v.replace("{to}", to) if isinstance(v, str) else v for k, v in (reply.body or {}).items()}
        if reply.delay:
            time.sleep(reply.delay)
        payload = json.dumps(body).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except OSError:
            pass  # the client gave up waiting (a timeout test): nothing to answer
