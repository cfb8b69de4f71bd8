"""Headless Chromium against the real ASGI app, served by uvicorn on the test database.

One Redis, one server and one browser for the whole package (started on first use, stopped
when the package is done). The server is a subprocess; a realtime push from this process
reaches it through the Redis channel layer, as between two production processes. The widget
tests add a Celery worker (module-scoped) on the same Redis and database, a fake Postmark
for its mail, and a host site on another origin that embeds the widget.

Playwright's sync API keeps an asyncio loop running in this thread while the browser is
open, which makes Django refuse ORM calls here (SynchronousOnlyOperation) and asgiref
refuse async_to_sync. So: the browser fixture allows the ORM for as long as it runs, and
work that pushes to the channel layer goes through `in_thread`.
"""
from __future__ import annotations

import copy
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from urllib.parse import urlsplit
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection
from playwright.sync_api import Browser, Page, sync_playwright

from helpdesk.settings.integrations.channels import CHANNEL_LAYERS as REDIS_CHANNEL_LAYERS
from tests.browser.helpers import HostSite, PixelCounter, free_port, wait_until
from tests.fakes.postmark import FakePostmark

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REPO = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))
# Killed with the test process, so an interrupted run leaves no worker behind.
DIE_WITH_PARENT = ["setpriv", "--pdeathsig", "KILL"]
ATTACHMENT_MAX_BYTES = 1_000_000


@pytest.fixture(scope="package")
def redis_url() -> Iterator[str]:
    """A throwaway Redis for the channel layer: no persistence, gone with the package."""
    port = free_port()
    proc = subprocess.Popen(
        [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )

    def accepting() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    try:
        wait_until(accepting, timeout=10, what="redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(5)


@pytest.fixture(scope="package")
def broker_url(redis_url: str) -> str:
    """Celery's queues: the same Redis as the channel layer, another database."""
    return redis_url.rpartition("/")[0] + "/1"


@pytest.fixture(scope="package")
def server_env(django_db_setup, django_db_blocker, redis_url: str, broker_url: str) -> dict[str, str]:
    """The environment of the processes that stand in for production: the test database, Redis."""
    with django_db_blocker.unblock():
        db_name = str(connection.settings_dict["NAME"])
        engine = str(connection.settings_dict["ENGINE"])
    if connection.vendor == "sqlite":
        database_url = f"sqlite:///{db_name}"
    else:  # the same server as DATABASE_URL, its test database
        database_url = urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{db_name}").geturl()
    return {
        **os.environ,
        # The server's own address: links it builds (the widget's signed file URLs) point at it.
        "SITE_URL": f"http://127.0.0.1:{free_port()}",
        "DJANGO_SETTINGS_MODULE": "helpdesk.settings.test",
        "DATABASE_URL": database_url,
        "TEST_DATABASE_ENGINE": engine,
        "TEST_DATABASE_NAME": db_name,
        "TEST_CHANNEL_LAYER_REDIS_URL": redis_url,
        # Replies are enqueued on Redis; only the widget tests run a worker that takes them.
        "TEST_CELERY_BROKER_URL": broker_url,
        # Small enough for a browser test to send a file over the limit.
        "ATTACHMENT_MAX_BYTES": str(ATTACHMENT_MAX_BYTES),
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture(scope="package")
def asgi_server(server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """uvicorn serving helpdesk.asgi on the test database; yields its base URL."""
    port = urlsplit(server_env["SITE_URL"]).port
    log_path = tmp_path_factory.mktemp("uvicorn") / "server.log"
    env = dict(server_env)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "helpdesk.asgi:application", "--host", "127.0.0.1", "--port", str(port),
             "--lifespan", "off", "--no-access-log", "--log-level", "warning"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"

    def serving() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"{base}/login/", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    try:
        wait_until(serving, timeout=30, what="uvicorn")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        output = log_path.read_text(errors="replace")
        if "Traceback" in output:
            sys.stderr.write(f"\n--- uvicorn log ---\n{output}\n")


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # see the module docstring
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    finally:
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="module")
def fake_postmark() -> Iterator[FakePostmark]:
    """Postmark's send API for the worker's anymail backend (tests.integration.worker_settings)."""
    fake = FakePostmark().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def celery_worker(server_env: dict[str, str], broker_url: str, fake_postmark: FakePostmark,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen]:
    """A real worker on the server's broker and database: it delivers replies and processes webhooks.

    Module-scoped: the dashboard tests process stored events themselves and must not race a
    worker. What they left queued is dropped before this worker starts.
    """
    import redis

    with redis.Redis.from_url(broker_url) as client:
        client.flushdb()
    log_path = tmp_path_factory.mktemp("celery") / "worker.log"
    env = {
        **server_env,
        "DJANGO_SETTINGS_MODULE": "tests.integration.worker_settings",
        "TEST_POSTMARK_API_URL": fake_postmark.url,
        "TEST_POSTMARK_SERVER_TOKEN": fake_postmark.token,
        "PYTHONPATH": str(REPO),
    }
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*DIE_WITH_PARENT, CELERY, "-A", "helpdesk", "worker", "-Q", "inbound,outbound,default", "--pool", "solo",
             "-n", "browser@%h", "--without-mingle", "--without-gossip", "--without-heartbeat", "-l", "INFO"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        )

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"celery worker exited with {proc.returncode}:\n{log_path.read_text()}")
        return " ready." in log_path.read_text(errors="replace")

    try:
        wait_until(ready, timeout=30, what="celery worker")
        yield proc
    finally:
        proc.kill()
        proc.wait(10)
        output = log_path.read_text(errors="replace")
        if "Traceback" in output:
            sys.stderr.write(f"\n--- celery worker log ---\n{output[-8000:]}\n")


@pytest.fixture(scope="package")
def host_site() -> Iterator[HostSite]:
    with HostSite() as site:
        yield site


@pytest.fixture
def redis_layer(settings, redis_url: str) -> None:
    """This process pushes through the same Redis the server listens on."""
    layers = copy.deepcopy(REDIS_CHANNEL_LAYERS)  # the production layer's settings
    layers["default"]["CONFIG"]["hosts"][0]["address"] = redis_url
    settings.CHANNEL_LAYERS = layers


@pytest.fixture
def server_media(settings) -> Iterator[Path]:
    """Attachments written here must be readable by the server, which uses the test settings' MEDIA_ROOT."""
    from helpdesk.settings import test as test_settings

    root = Path(test_settings.MEDIA_ROOT)
    settings.MEDIA_ROOT = root
    before = set(root.rglob("*")) if root.exists() else set()
    yield root
    for path in sorted(set(root.rglob("*")) - before, reverse=True):
        path.unlink() if path.is_file() else path.rmdir()


@pytest.fixture
def page(browser: Browser, asgi_server: str, django_db_reset_sequences, redis_layer) -> Iterator[Page]:
    # Sequences restart with each test: on PostgreSQL, TRUNCATE alone leaves the event ids of
    # earlier tests as a gap right above a fresh page's cursor, and the desk rightly holds a
    # cursor below a recent gap while any transaction runs (realtime.seq_settled).
    context = browser.new_context(base_url=asgi_server)
    context.set_default_timeout(8000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def tracker() -> Iterator[PixelCounter]:
    with PixelCounter() as counter:
        yield counter


class CeleryProcesses:
    """Celery workers and beat started (and SIGKILLed) by a test, on the server's broker and
    database, each with its log in a file. Everything still running is killed at teardown."""

    def __init__(self, env: dict[str, str], directory: Path) -> None:
        self.env = env
        self.directory = directory
        self.started: list[tuple[str, subprocess.Popen]] = []

    def _start(self, name: str, args: list[str], ready: str) -> subprocess.Popen:
        log_path = self.directory / f"{name}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([*DIE_WITH_PARENT, CELERY, "-A", "helpdesk", *args], cwd=REPO, env=self.env,
                                    stdout=log, stderr=subprocess.STDOUT)
        self.started.append((name, proc))

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log_path.read_text(errors='replace')}")
            return ready in log_path.read_text(errors="replace")

        wait_until(up, timeout=30, what=name)
        return proc

    def worker(self, name: str, queues: str = "sla,default") -> subprocess.Popen:
        """A prefork worker with one pool process: killing it kills a main process and its child."""
        return self._start(name, ["worker", "-Q", queues, "-c", "1", "--pool", "prefork", "-n", f"{name}@%h",
                                  "--without-mingle", "--without-gossip", "--without-heartbeat", "-l", "INFO"], " ready.")

    def beat(self, name: str) -> subprocess.Popen:
        return self._start(name, ["beat", "-s", str(self.directory / f"{name}-schedule"), "--pidfile=", "-l", "INFO"],
                           "beat: Starting...")

    @staticmethod
    def kill(proc: subprocess.Popen) -> None:
        """SIGKILL the process and its pool children: nothing gets to ack, finish or clean up."""
        found = subprocess.run(["pgrep", "-P", str(proc.pid)], check=False, capture_output=True, text=True).stdout.split()
        for pid in [proc.pid, *map(int, found)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(10)

    def logs(self) -> str:
        return "\n".join(f"----- {name} -----\n{(self.directory / f'{name}.log').read_text(errors='replace')[-4000:]}"
                         for name, _ in self.started)


@pytest.fixture
def celery_processes(server_env: dict[str, str], broker_url: str, tmp_path: Path) -> Iterator[CeleryProcesses]:
    """Start workers and beat from the test (SLA_SWEEP_INTERVAL_SECONDS=5); the broker starts empty."""
    import redis

    with redis.Redis.from_url(broker_url) as client:
        client.flushdb()
    env = {**server_env, "DJANGO_SETTINGS_MODULE": "tests.integration.worker_settings", "PYTHONPATH": str(REPO),
           "SLA_SWEEP_INTERVAL_SECONDS": "5"}
    processes = CeleryProcesses(env, tmp_path)
    try:
        yield processes
    finally:
        for _name, proc in processes.started:
            if proc.poll() is None:
                processes.kill(proc)
        logs = processes.logs()
        if "Traceback" in logs:
            sys.stderr.write(f"\n--- celery logs ---\n{logs}\n")
