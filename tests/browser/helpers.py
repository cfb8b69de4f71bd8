"""Helpers for the browser tests: ports, waiting, a loop-free thread, login, a counting tracker."""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import TypeVar

from django.db import connections
from playwright.sync_api import Page

from tests.fakes.server import LocalHTTPServer

T = TypeVar("T")
PASSWORD = "pw"  # tests.factories.UserFactory


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], bool], *, timeout: float, what: str, page: Page | None = None) -> None:
    """Poll check() until it holds.

    Pass the page whenever check() reads what page.on(...) handlers collect. Playwright's sync
    API runs those handlers only while one of its own calls is running, never during
    time.sleep: a plain sleep loop would see only what had been delivered before the wait
    began, and give up on a response that had long arrived. With a page, each pause is a
    page.wait_for_timeout, which delivers the events that came in meanwhile.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if page is None:
            time.sleep(0.05)
        else:
            page.wait_for_timeout(50)
    raise TimeoutError(f"gave up waiting for {what}")


def in_thread(fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    """Run fn in a fresh thread (no event loop there) and return its result or raise its error."""
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["value"] = fn(*args, **kwargs)
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller
            result["error"] = err
        finally:
            connections.close_all()  # this thread's connections; SQLite would keep a handle

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(30)
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["value"]  # type: ignore[return-value]


def login(page: Page, username: str, password: str = PASSWORD) -> None:
    page.goto("/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/")
    page.wait_for_selector("#conn[data-state=live]")


class PixelCounter:
    """A tiny HTTP server standing in for an email tracker: it counts every request."""

    GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"

    def __init__(self) -> None:
        self.hits: list[str] = []
        counter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                counter.hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/gif")
                self.send_header("Content-Length", str(len(PixelCounter.GIF)))
                self.end_headers()
                self.wfile.write(PixelCounter.GIF)

            def log_message(self, *args: object) -> None:
                pass

        self._http = LocalHTTPServer(Handler)
        self.port = self._http.port

    def __enter__(self) -> "PixelCounter":
        self._http.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.stop()


class HostSite:
    """A customer's web site on another origin than the desk: plain HTML pages, nothing else.

    Served on 127.0.0.1 and addressed as http://localhost:<port>, while the desk runs on
    http://127.0.0.1:<port>: a different origin for the browser, with no DNS involved.
    """

    def __init__(self) -> None:
        self.pages: dict[str, tuple[str, dict[str, str]]] = {}
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                page = site.pages.get(self.path.partition("?")[0])
                if page is None:
                    self.send_error(404)
                    return
                body, headers = page
                payload = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self._http = LocalHTTPServer(Handler)
        self.port = self._http.port
        self.origin = f"http://localhost:{self.port}"

    def serve(self, path: str, html: str, **headers: str) -> str:
        """Publish a page; returns its URL."""
        self.pages[path] = (html, {name.replace("_", "-"): value for name, value in headers.items()})
        return f"{self.origin}{path}"

    def __enter__(self) -> "HostSite":
        self._http.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.stop()
