"""A throwaway Redis and real Celery worker/beat processes sharing this test's database.

Each test gets its own redis-server on a free port and its own log directory, and workers
open the database pytest-django created for this test process (SQLite: its file, named per
process; PostgreSQL: test_<name> on the DATABASE_URL server), so test processes can run side
by side on SQLite. Nothing in the desk is patched: the test process publishes to Redis like
the web process does, and the workers run the production tasks.
"""
from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from django.db import connection
from psycopg.pq import TransactionStatus

from channels_in.models import InboundEvent
from helpdesk.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))
VISIBILITY_TIMEOUT = 10  # seconds before Redis hands an unacked message out again
STUCK_AFTER = 3  # QUEUE_STUCK_AFTER_SECONDS and OUTBOUND_STUCK_AFTER_SECONDS for the workers
SWEEP_EVERY = 1  # beat's sweep interval
# Killed with the test process, so a crashed or interrupted run leaves no Redis or worker behind.
DIE_WITH_PARENT = ["setpriv", "--pdeathsig", "KILL"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], object], *, timeout: float, what: str, interval: float = 0.1) -> float:
    """Poll until predicate() is truthy; returns the seconds it took."""
    started = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"Timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def uvicorn_popen(env: dict[str, str], port: int, log_path: Path) -> subprocess.Popen:
    """The desk's ASGI app in a uvicorn process of its own, as in production; logs to log_path."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [*DIE_WITH_PARENT, sys.executable, "-m", "uvicorn", "helpdesk.asgi:application", "--host", "127.0.0.1",
             "--port", str(port), "--lifespan", "off", "--no-access-log", "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )


class RedisServer:
    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2)

    def start(self) -> None:
        with open(self.directory / "redis.log", "ab") as log:
            self.process = subprocess.Popen(
                [*DIE_WITH_PARENT, "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.directory), "--maxmemory-policy", "noeviction"],
                stdout=log, stderr=subprocess.STDOUT,
            )
        wait_until(self._pong, timeout=5, what="redis-server to answer PING")

    def crash(self) -> None:
        """SIGKILL: what a crashed or OOM-killed Redis looks like (nothing persisted)."""
        assert self.process is not None
        self.process.kill()  # works on a paused process too
        self.process.wait(5)
        self.process = None

    def pause(self) -> None:
        """SIGSTOP: Redis hangs with its port open (a partition, a stalled host): TCP connects, nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def _pong(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.ConnectionError:
            return False

    def queued(self, queue: str) -> int:
        return self.client().llen(queue)

    def unacked(self) -> int:
        return self.client().hlen("unacked")


class CeleryProcess:
    """A `celery worker` or `celery beat` subprocess with its log in a file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log_path = log
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [*DIE_WITH_PARENT, CELERY, "-A", "helpdesk", *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, *, timeout: float = 20) -> None:
        wait_until(lambda: text in self.log() or self.process.poll() is not None, timeout=timeout, what=f"{self.name}: {text!r}")
        assert self.process.poll() is None, f"{self.name} exited:\n{self.log()[-3000:]}"

    def children(self) -> list[int]:
        """The prefork pool processes (pgrep -P: psutil is not installed)."""
        found = subprocess.run(["pgrep", "-P", str(self.pid)], capture_output=True, text=True).stdout.split()
        return [int(pid) for pid in found]

    def kill(self) -> None:
        """SIGKILL the main process and its pool: nothing gets to ack, reject or clean up."""
        children = self.children()
        os.kill(self.pid, signal.SIGKILL)
        for child in children:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        children = self.children()
        self.process.terminate()  # warm shutdown
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()
        for child in children:  # never leave a pool process writing to the next test's data
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass


class Cluster:
    """Redis, workers and beat for one test; everything is stopped at teardown."""

    def __init__(self, directory: Path, env: dict[str, str]) -> None:
        self.directory = directory
        self.redis = RedisServer(directory)
        self.env = env
        self.processes: list[CeleryProcess] = []

    def worker_env(self, **extra: str) -> dict[str, str]:
        return {
            **self.env,
            "TEST_CELERY_BROKER_URL": self.redis.url,
            **extra,
        }

    def start_worker(self, name: str, **extra_env: str) -> CeleryProcess:
        worker = CeleryProcess(
            name,
            ["worker", "-Q", "inbound,outbound,default,sla", "-c", "1", "--pool", "prefork", "-n", f"{name}@%h",
             "--without-mingle", "--without-gossip", "--without-heartbeat", "-l", "INFO"],
            self.worker_env(**extra_env), self.directory / f"{name}.log",
        )
        self.processes.append(worker)
        worker.wait_for_log(f"{name}@")  # the banner
        worker.wait_for_log(" ready.")
        return worker

    def start_beat(self) -> CeleryProcess:
        beat = CeleryProcess(
            "beat",
            ["beat", "-s", str(self.directory / "beat-schedule"), "--pidfile=", "-l", "INFO"],
            self.worker_env(), self.directory / "beat.log",
        )
        self.processes.append(beat)
        beat.wait_for_log("beat: Starting...")
        return beat

    def logs(self) -> str:
        return "\n".join(f"----- {p.name} -----\n{p.log()[-4000:]}" for p in self.processes)

    def stop(self) -> None:
        for process in self.processes:  # throwaway processes: no need to wait for a warm shutdown
            if process.process.poll() is None:
                process.kill()
        if self.redis.process is not None:
            self.redis.crash()


@pytest.fixture
def cluster(transactional_db, tmp_path, settings) -> Iterator[Cluster]:  # noqa: ANN001
    """Needs transactional_db: requests commit, so their on-commit publishes reach Redis."""
    db_name = str(connection.settings_dict["NAME"])
    assert "memory" not in db_name, "worker processes need the test database in a file (or a server)"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.integration.worker_settings",
        "TEST_DATABASE_ENGINE": connection.settings_dict["ENGINE"],
        "TEST_DATABASE_NAME": db_name,
        "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        "QUEUE_STUCK_AFTER_SECONDS": str(STUCK_AFTER),
        "OUTBOUND_STUCK_AFTER_SECONDS": str(STUCK_AFTER),
        "SWEEP_INTERVAL_SECONDS": str(SWEEP_EVERY),
        "PYTHONPATH": str(ROOT),
        "LOG_LEVEL": "INFO",
    }
    cluster = Cluster(tmp_path, env)
    cluster.redis.start()
    settings.CELERY_BROKER_URL = cluster.redis.url
    # The web side computes due times with the same configuration as the workers.
    settings.HELPDESK = {**settings.HELPDESK, "QUEUE_STUCK_AFTER_SECONDS": STUCK_AFTER, "OUTBOUND_STUCK_AFTER_SECONDS": STUCK_AFTER,
                         "SWEEP_INTERVAL_SECONDS": SWEEP_EVERY}
    original_url = celery_app.conf.broker_url
    _point_app_at(cluster.redis.url)
    try:
        yield cluster
    finally:
        cluster.stop()
        _point_app_at(original_url)
        # pytest shows a test's captured output only when it failed: then the workers' and
        # beat's logs say what they were doing.
        print(cluster.logs())  # noqa: T201


def _point_app_at(url: str) -> None:
    """The web side's Celery app publishes to `url` from now on (fresh connection pools)."""
    if celery_app._pool is not None:  # noqa: SLF001 - no public way to drop the pools
        celery_app._pool.force_close_all()  # noqa: SLF001
    celery_app._pool = None  # noqa: SLF001
    celery_app.amqp._producer_pool = None  # noqa: SLF001
    celery_app.conf.broker_url = url


class SQLiteWriteLock:
    """Holds SQLite's write lock from a second connection, as a long writer would.

    A task's first write meanwhile waits in SQLite's busy handler (busy_timeout 20 s in
    settings): the worker is stuck inside the task, with the message received and unacked.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        # mode=rw: the test database must exist; never create a file named after a database.
        self.connection = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None, timeout=20)

    def __enter__(self) -> SQLiteWriteLock:
        self.connection.execute("BEGIN IMMEDIATE")
        return self

    def wait_for_writer(self, pid: int, *, timeout: float = 10) -> None:
        """Return once process `pid` (a pool child) is waiting inside its first write."""
        wait_until(lambda: holds_file_open(pid, self.path), timeout=timeout, what="the task to open the database")
        time.sleep(0.3)  # from opening the connection to its first write: now in SQLite's busy wait

    def release(self) -> None:
        if self.connection.in_transaction:
            self.connection.execute("ROLLBACK")

    def __exit__(self, *exc: object) -> None:
        self.release()
        self.connection.close()


class PostgresRowLock:
    """Holds the row locks of the pending inbound events from a second connection.

    The task's first statement, the UPDATE that counts its attempt, then waits for the row
    lock in its backend: the worker is stuck inside the task, with the message received and
    unacked, as behind SQLite's write lock.
    """

    def __init__(self, settings_dict: dict) -> None:
        self.connection = psycopg.connect(
            dbname=settings_dict["NAME"], host=settings_dict["HOST"] or None, port=settings_dict["PORT"] or None,
            user=settings_dict["USER"] or None, password=settings_dict["PASSWORD"] or None, autocommit=True,
        )
        self.backend_pid = self.connection.info.backend_pid

    def __enter__(self) -> PostgresRowLock:
        self.connection.execute("BEGIN")
        locked = self.connection.execute(
            "SELECT id FROM channels_in_inboundevent WHERE status = %s FOR UPDATE", [InboundEvent.Status.PENDING]
        ).fetchall()
        assert locked, "no pending inbound event to hold"
        return self

    def wait_for_writer(self, pid: int, *, timeout: float = 10) -> None:
        """Return once a backend of the test database waits for the lock on an inbound event.

        The backend is found by what it waits for, not by `pid`: only the worker's pool child
        writes to inbound events meanwhile. pg_stat_activity is read through the test's own
        connection, outside our transaction, which would keep returning its first snapshot.
        """
        def waiting() -> bool:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> %s"
                    " AND wait_event_type = 'Lock' AND query LIKE 'UPDATE \"channels_in_inboundevent\"%%'",
                    [self.backend_pid],
                )
                return cursor.fetchone()[0] > 0

        wait_until(waiting, timeout=timeout, what="the task to wait for the inbound event's row lock")

    def release(self) -> None:
        if self.connection.info.transaction_status != TransactionStatus.IDLE:
            self.connection.execute("ROLLBACK")

    def __exit__(self, *exc: object) -> None:
        self.release()
        self.connection.close()


WriteLock = SQLiteWriteLock | PostgresRowLock


@pytest.fixture
def write_lock() -> Callable[[], WriteLock]:
    """Holds the test database still so that a task blocks inside its first write.

    SQLite: the database's write lock. PostgreSQL: the pending inbound events' row locks.
    """
    if connection.vendor == "sqlite":
        return lambda: SQLiteWriteLock(str(connection.settings_dict["NAME"]))
    assert connection.vendor == "postgresql", f"no way to hold {connection.vendor} still"
    return lambda: PostgresRowLock(connection.settings_dict)


def holds_file_open(pid: int, path: str) -> bool:
    """Whether a process has opened the database: a pool child does so at its first query."""
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        return any(os.path.realpath(fd) == os.path.realpath(path) for fd in fd_dir.iterdir())
    except (FileNotFoundError, PermissionError):
        return False
