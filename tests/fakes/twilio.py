"""A local stand-in for Twilio's REST API: sending messages and serving MMS media.

- `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` (form-encoded, HTTP Basic auth
  with the account SID and auth token) answers 201 with Twilio's Message resource JSON
  (a fresh SM… sid, status "queued"), or whatever a test queues: an error status with
  Twilio's error JSON {"code","message","more_info","status"}, or a slow answer.
- `GET /2010-04-01/Accounts/{AccountSid}/Messages/{MM…}/Media/{ME…}` (Basic auth) answers,
  like Twilio, with a redirect to an unauthenticated CDN URL that serves the bytes; a media
  item can be told to fail with a status instead.
Every request is recorded so tests count deliveries.
"""
from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from tests.fakes.server import LocalHTTPServer

API_VERSION = "2010-04-01"
_MESSAGES = re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>AC\w+)/Messages\.json$")
_MEDIA = re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>AC\w+)/Messages/(?P<message>MM\w+)/Media/(?P<media>ME\w+)$")
_CDN = re.compile(r"^/cdn/(?P<media>ME\w+)$")


def twilio_error(code: int, message: str, status: int = 400) -> dict:
    """Twilio's REST error body."""
    return {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}


@dataclass(frozen=True)
class Reply:
    status: int = 201
    body: dict | None = None  # None: Twilio's Message resource for the request
    delay: float = 0.0  # seconds to wait before answering (a slow or hanging API)


OK = Reply()
OPTED_OUT = Reply(400, twilio_error(21610, "Attempt to send to unsubscribed recipient"))
INVALID_TO = Reply(400, twilio_error(21211, "The 'To' number +1555 is not a valid phone number."))
SERVER_ERROR = Reply(500, twilio_error(20500, "An internal server error has occurred", 500))
TOO_MANY = Reply(429, twilio_error(20429, "Too Many Requests", 429))


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]
    sid: str | None = None  # the SM sid we answered with, if success


@dataclass
class Media:
    content: bytes
    content_type: str
    fail_status: int | None = None  # answer this status instead of the file
    delay: float = 0.0  # seconds before the first request for it is answered (a stall)


@dataclass
class FakeTwilio:
    account_sid: str = "AC" + "0" * 31 + "1"
    auth_token: str = "fake-auth-token"
    replies: deque[Reply] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)
    media: dict[str, Media] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.arrived = threading.Condition(self._lock)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                fake._answer_post(self, {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()})

            def do_GET(self) -> None:
                fake._answer_get(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._http = LocalHTTPServer(Handler)

    @property
    def url(self) -> str:
        """The base URL, as settings.TWILIO_API_BASE_URL takes it (no trailing slash)."""
        return f"http://127.0.0.1:{self._http.port}"

    def start(self) -> FakeTwilio:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    def queue(self, *replies: Reply) -> None:
        """Answer the next message creations with these, in order; afterwards success again."""
        with self._lock:
            self.replies.extend(replies)

    def add_media(self, content: bytes, content_type: str, *, fail_status: int | None = None, real_host: bool = False,
                  delay: float = 0.0) -> str:
        """A media file of an incoming MMS; returns its MediaUrl (Twilio's host if real_host)."""
        message_sid, media_sid = "MM" + uuid.uuid4().hex, "ME" + uuid.uuid4().hex
        self.media[media_sid] = Media(content, content_type, fail_status, delay)
        base = "https://api.twilio.com" if real_host else self.url
        return f"{base}/{API_VERSION}/Accounts/{self.account_sid}/Messages/{message_sid}/Media/{media_sid}"

    def sends(self) -> list[Received]:
        return [r for r in self.received if r.method == "POST"]

    def media_requests(self) -> list[Received]:
        return [r for r in self.received if r.method == "GET"]

    def wait_for(self, count: int, timeout: float) -> list[Received]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.sends()) >= count, timeout=timeout)
            return self.sends()

    def wait_for_media_requests(self, count: int, timeout: float) -> list[Received]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.media_requests()) >= count, timeout=timeout)
            return self.media_requests()

    # Answers ----------------------------------------------------------------------------

    def _authorized(self, handler: BaseHTTPRequestHandler, account: str) -> bool:
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return account == self.account_sid and handler.headers.get("Authorization") == expected

    def _record(self, handler: BaseHTTPRequestHandler, form: dict[str, str]) -> Received:
        with self._lock:
            record = Received(method=handler.command, path=handler.path, headers=dict(handler.headers), form=form)
            self.received.append(record)
            self.arrived.notify_all()
            return record

    def _answer_post(self, handler: BaseHTTPRequestHandler, form: dict[str, str]) -> None:
        record = self._record(handler, form)
        match = _MESSAGES.match(urlsplit(handler.path).path)
        if match is None:
            return _send_json(handler, 404, twilio_error(20404, "The requested resource was not found", 404))
        if not self._authorized(handler, match["account"]):
            return _send_json(handler, 401, twilio_error(20003, "Authenticate", 401))
        with self._lock:
            reply = self.replies.popleft() if self.replies else OK
        if reply.body is None and reply.status == 201:
            record.sid = "SM" + uuid.uuid4().hex
            status, body = 201, self._message_resource(record.sid, form)
        else:
            status, body = reply.status, reply.body or {}
        if reply.delay:
            time.sleep(reply.delay)
        _send_json(handler, status, body)

    def _message_resource(self, sid: str, form: dict[str, str]) -> dict:
        now = formatdate(usegmt=True)
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}.json"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": form.get("Body", ""),
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form.get("From") or None,
            "messaging_service_sid": form.get("MessagingServiceSid") or None,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued" if form.get("From") else "accepted",
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": form.get("To", ""),
            "uri": uri,
        }

    def _answer_get(self, handler: BaseHTTPRequestHandler) -> None:
        self._record(handler, {})
        path = urlsplit(handler.path).path
        if (match := _MEDIA.match(path)) is not None:
            media = self.media.get(match["media"])
            if not self._authorized(handler, match["account"]):
                return _send_json(handler, 401, twilio_error(20003, "Authenticate", 401))
            if media is None:
                return _send_json(handler, 404, twilio_error(20404, "The requested resource was not found", 404))
            if media.delay:
                delay, media.delay = media.delay, 0.0
                time.sleep(delay)
            if media.fail_status:
                return _send_json(handler, media.fail_status, twilio_error(20000 + media.fail_status, "Media unavailable", media.fail_status))
            # Twilio answers with a redirect to a short-lived, unauthenticated CDN URL on
            # another host ("localhost" here), to which a client must not send credentials.
            handler.send_response(307)
            handler.send_header("Location", f"{self.url.replace('127.0.0.1', 'localhost')}/cdn/{match['media']}")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return None
        if (match := _CDN.match(path)) is not None and match["media"] in self.media:
            if handler.headers.get("Authorization"):  # credentials must not leak to the CDN
                return _send_json(handler, 400, {"error": "Authorization header sent to the CDN"})
            media = self.media[match["media"]]
            handler.send_response(200)
            handler.send_header("Content-Type", media.content_type)
            handler.send_header("Content-Length", str(len(media.content)))
            handler.end_headers()
            handler.wfile.write(media.content)
            return None
        return _send_json(handler, 404, twilio_error(20404, "The requested resource was not found", 404))


def _send_json(handler: BaseHTTPRequestHandler, status: int, body: dict) -> None:
    payload = json.dumps(body).encode()
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
    except OSError:
        pass  # the client gave up waiting (a timeout test): nothing to answer
