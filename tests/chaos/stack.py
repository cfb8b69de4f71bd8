"""The whole desk as production runs it, on loopback, for the chaos suite.

Redis (AOF on, noeviction), two uvicorn processes of helpdesk.asgi, two Celery workers on
every queue and beat with short sweep intervals, on the database of the throwaway cluster
bin/pg-test-cluster made (migrated here: no test of this run needs pytest-django's test
database); the fake Postmark and Twilio APIs are the providers' HTTP edge.
Every process runs in its own process group (killed by group at teardown) and dies with the
test process (DIE_WITH_PARENT). The desk runs its production settings module
(helpdesk.settings.base) configured by environment variables only.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests

from bench.infra import desk_env, manage
from tests.fakes.postmark import FakePostmark
from tests.fakes.twilio import FakeTwilio
from tests.integration.conftest import DIE_WITH_PARENT, ROOT, free_port, wait_until
from tests.providers import WEBHOOK_AUTH

# Short timers, so a lost task is found again within seconds (production: 30 s / 300 s / 15 s).
QUEUE_STUCK_AFTER = 3
OUTBOUND_STUCK_AFTER = 5
SWEEP_EVERY = 1
VISIBILITY_TIMEOUT = 10
# Limits small enough to cross cheaply in the bad-input fault.
WEBHOOK_MAX_BODY_BYTES = 2_000_000
ATTACHMENT_MAX_BYTES = 300_000
MAILGUN_SIGNING_KEY = "mg-signing-key"
# Long enough for the sweeper to have run past every timer after a fault.
SETTLE_TIMEOUT = 90


class Process:
    """A subprocess in its own process group, killed with the test process."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log_path = log
        with open(log, "ab") as out:
            self.popen = subprocess.Popen([*DIE_WITH_PARENT, *argv], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, *, timeout: float = 60) -> None:
        wait_until(lambda: text in self.log() or not self.alive(), timeout=timeout, what=f"{self.name}: {text!r}")
        assert self.alive(), f"{self.name} exited with {self.popen.returncode}:\n{self.log()[-3000:]}"

    def signal_main(self, signum: int) -> None:
        """Signal the main process only (what an OOM kill of it does); its group stays as it was."""
        os.kill(self.pid, signum)

    def stop(self) -> None:
        """SIGKILL the whole process group: the main process and whatever it started."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            pass


class RedisAof:
    """redis-server as production runs it (AOF on, noeviction), restartable on its port and files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: Process | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, socket_connect_timeout=1)

    def start(self) -> None:
        self.process = Process(
            "redis",
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", "everysec", "--dir", str(self.directory), "--maxmemory-policy", "noeviction"],
            env=dict(os.environ), log=self.directory / "redis.log",
        )
        wait_until(self._pong, timeout=20, what="redis-server to answer PING (AOF loaded)")

    def stop(self, signum: int) -> None:
        assert self.process is not None
        self.process.signal_main(signum)
        self.process.popen.wait(20)
        self.process = None

    def restart(self, signum: int, *, down_for: float) -> None:
        """Stop, stay down `down_for` seconds (the outage itself, not a wait), start on the same port and files."""
        self.stop(signum)
        time.sleep(down_for)
        self.start()
        self.restarts += 1

    def _pong(self) -> bool:
        if self.process is not None and not self.process.alive():
            raise AssertionError(f"redis-server exited:\n{self.process.log()[-2000:]}")
        try:
            return bool(self.client().ping())
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
            return False


@dataclass
class Postgres:
    """The cluster bin/pg-test-cluster started (its data dir and binaries come from there)."""

    data: str
    bin: str
    log: str
    run_as: str

    @classmethod
    def from_environment(cls) -> Postgres:
        missing = [name for name in ("PG_TEST_DATA", "PG_TEST_BIN", "PG_TEST_LOG") if not os.environ.get(name)]
        assert not missing, f"run the chaos suite under bin/pg-test-cluster ({', '.join(missing)} not set)"
        return cls(os.environ["PG_TEST_DATA"], os.environ["PG_TEST_BIN"], os.environ["PG_TEST_LOG"], os.environ.get("PG_TEST_RUN_AS", ""))

    def restart(self, mode: str = "fast") -> float:
        """pg_ctl restart (the options of the last start are kept); returns the seconds it took."""
        argv = [f"{self.bin}/pg_ctl", "-D", self.data, "-l", self.log, "-m", mode, "-w", "-t", "60", "restart"]
        if self.run_as:
            argv = ["runuser", "-u", self.run_as, "--", *argv]
        started = time.monotonic()
        result = subprocess.run(argv, check=False, cwd="/", capture_output=True, text=True, timeout=90)
        assert result.returncode == 0, f"pg_ctl restart failed:\n{result.stdout}{result.stderr}"
        return time.monotonic() - started


@dataclass
class Web:
    name: str
    port: int
    process: Process

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Stack:
    directory: Path
    database_url: str
    redis: RedisAof
    postmark: FakePostmark
    twilio: FakeTwilio
    postgres: Postgres
    env: dict[str, str] = field(default_factory=dict)
    webs: list[Web] = field(default_factory=list)
    workers: dict[str, Process] = field(default_factory=dict)
    beat: Process | None = None
    blocker: object = None  # pytest-django's django_db_blocker: this process reads the database for the checks
    reported_doubles: set[int] = field(default_factory=set)  # replies a fault's check already counted as doubled
    _generation: int = 0

    @contextmanager
    def db(self) -> Iterator[None]:
        """Read the database from the test process; the connection is closed afterwards (it may
        not survive the next fault, a PostgreSQL restart)."""
        from django.db import connection

        with self.blocker.unblock():
            try:
                yield
            finally:
                connection.close()

    # Processes ---------------------------------------------------------------------------

    def start_web(self, name: str, port: int | None = None) -> Web:
        port = port or free_port()
        process = Process(f"uvicorn-{name}",
                          [sys.executable, "-m", "uvicorn", "helpdesk.asgi:application", "--host", "127.0.0.1", "--port", str(port),
                           "--lifespan", "off", "--no-access-log", "--log-level", "warning"],
                          env=self.env, log=self.directory / f"uvicorn-{name}.log")
        web = Web(name, port, process)
        self.webs.append(web)
        return web

    def start_worker(self, name: str) -> Process:
        """A worker on every queue; `name` is its slot (w1, w2): a replacement takes the slot."""
        self._generation += 1
        node = f"chaos-{name}-{self._generation}"
        worker = Process(node, [sys.executable, "-m", "celery", "-A", "helpdesk", "worker", "-Q", "inbound,outbound,sla,default",
                                "-c", "2", "--pool", "prefork", "-n", f"{node}@%h", "--without-mingle", "--without-gossip",
                                "--without-heartbeat", "-l", "INFO"],
                         env=self.env, log=self.directory / f"{node}.log")
        self.workers[name] = worker
        worker.wait_for_log(" ready.")
        return worker

    def start_beat(self) -> None:
        self.beat = Process("beat", [sys.executable, "-m", "celery", "-A", "helpdesk", "beat", "-s", str(self.directory / "beat-schedule"),
                                     "--pidfile=", "-l", "INFO"], env=self.env, log=self.directory / "beat.log")
        self.beat.wait_for_log("beat: Starting...")

    def processes(self) -> list[Process]:
        found = [web.process for web in self.webs] + list(self.workers.values()) + [self.beat]
        return [p for p in found if p is not None]

    def stop(self) -> None:
        for process in self.processes():
            process.stop()
        if self.redis.process is not None:
            self.redis.process.stop()
        self.postmark.stop()
        self.twilio.stop()

    def logs(self, tail: int = 3000) -> str:
        return "\n".join(f"----- {p.name} -----\n{p.log()[-tail:]}" for p in self.processes())

    # Health ------------------------------------------------------------------------------

    def healthz(self) -> dict[str, int]:
        """/healthz status of each ASGI process."""
        statuses = {}
        for web in self.webs:
            try:
                statuses[web.name] = requests.get(f"{web.base}/healthz", timeout=5).status_code
            except requests.RequestException:
                statuses[web.name] = 0
        return statuses

    def wait_healthy(self, timeout: float = 60) -> None:
        wait_until(lambda: set(self.healthz().values()) == {200}, timeout=timeout, what="/healthz 200 on every ASGI process",
                   interval=0.3)


def start_stack(directory: Path, *, blocker: object) -> Stack:
    """Migrate the cluster's database and start everything; the caller stops it (Stack.stop)."""
    database_url = os.environ["DATABASE_URL"]
    stack = Stack(directory=directory, database_url=database_url, redis=RedisAof(directory), postmark=FakePostmark(),
                  twilio=FakeTwilio(), postgres=Postgres.from_environment(), blocker=blocker)
    stack.postmark.start()
    stack.twilio.start()
    try:
        stack.redis.start()
        site_port = free_port()
        env = desk_env(database_url=database_url, redis_url=stack.redis.url, media_root=directory / "media")
        env.update({
            "ANYMAIL_WEBHOOK_SECRET": WEBHOOK_AUTH,
            "ANYMAIL_MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_SIGNING_KEY,
            "EMAIL_BACKEND": "anymail.backends.postmark.EmailBackend",
            "ANYMAIL_POSTMARK_SERVER_TOKEN": stack.postmark.token,
            "ANYMAIL_POSTMARK_API_URL": stack.postmark.url,
            "TWILIO_API_BASE_URL": stack.twilio.url,
            "TWILIO_TIMEOUT_SECONDS": "5",
            "SITE_URL": f"http://127.0.0.1:{site_port}",
            "QUEUE_STUCK_AFTER_SECONDS": str(QUEUE_STUCK_AFTER),
            "OUTBOUND_STUCK_AFTER_SECONDS": str(OUTBOUND_STUCK_AFTER),
            "SWEEP_INTERVAL_SECONDS": str(SWEEP_EVERY),
            "ROUTING_INTERVAL_SECONDS": "5",
            "SLA_SWEEP_INTERVAL_SECONDS": "5",
            "SNOOZE_INTERVAL_SECONDS": "5",
            "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
            "WEBHOOK_MAX_BODY_BYTES": str(WEBHOOK_MAX_BODY_BYTES),
            "ATTACHMENT_MAX_BYTES": str(ATTACHMENT_MAX_BYTES),
            "LOG_LEVEL": "INFO",
            "PYTHONPATH": str(ROOT),
        })
        stack.env = env
        manage(env, "migrate", "--noinput", log=directory / "migrate.log")
        stack.start_web("A", site_port)  # Twilio's status callbacks name it (SITE_URL)
        stack.start_web("B")
        stack.start_worker("w1")
        stack.start_worker("w2")
        stack.start_beat()
        stack.wait_healthy(timeout=90)
    except BaseException:
        stack.stop()
        raise
    return stack
