"""Throwaway servers for the benchmark: Redis, a PostgreSQL cluster, uvicorn and a Celery worker.

Everything listens on 127.0.0.1 on a free port, lives under one temp dir and is stopped by
the process id this module started (its own process group), never by name.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")


class BenchError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, *, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"process exited with {proc.returncode} before listening on {port}{log_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise BenchError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s{log_tail(log)}")


def log_tail(log: Path | None, lines: int = 30) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return f"\n--- last lines of {log} ---\n" + "\n".join(text)


@dataclass
class Service:
    """A subprocess started in its own session, so its children (Celery's pool) stop with it."""

    name: str
    proc: subprocess.Popen
    log: Path
    stop_signal: int = signal.SIGTERM

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, self.stop_signal)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)


def start(name: str, argv: list[str], *, log: Path, env: dict[str, str] | None = None, cwd: Path = REPO,
          stop_signal: int = signal.SIGTERM) -> Service:
    handle = open(log, "ab")  # noqa: SIM115 - owned by the child for its lifetime
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    handle.close()
    return Service(name=name, proc=proc, log=log, stop_signal=stop_signal)


# Redis -----------------------------------------------------------------------------------

def redis_start(workdir: Path) -> tuple[Service, str]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        raise BenchError("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    log = workdir / "redis.log"
    service = start("redis", [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                              "--dir", str(workdir), "--protected-mode", "yes"], log=log)
    wait_for_port(port, timeout=10, proc=service.proc, log=log)
    return service, f"redis://127.0.0.1:{port}/0"


# PostgreSQL ------------------------------------------------------------------------------

@dataclass
class PgCluster:
    bin_dir: Path
    data_dir: Path
    port: int
    log: Path
    version: str = ""
    started: bool = field(default=False)

    def url(self, dbname: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{dbname}"

    def _as_postgres(self, *argv: str, timeout: float = 120) -> str:
        result = subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True, text=True, timeout=timeout,
                                cwd="/")
        if result.returncode != 0:
            raise BenchError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}{log_tail(self.log)}")
        return result.stdout

    def stop(self) -> None:
        if self.started:
            self.started = False
            self._as_postgres(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop", timeout=60)


def pg_available(bin_dir: Path = PG_BIN) -> str | None:
    """None when the cluster can be made here, else why not."""
    missing = [b for b in ("initdb", "pg_ctl", "postgres") if not (bin_dir / b).exists()]
    if missing:
        return f"PostgreSQL binaries {', '.join(missing)} not found in {bin_dir}"
    if shutil.which("runuser") is None:
        return "runuser not found (needed to run initdb as user postgres)"
    try:
        subprocess.run(["id", "postgres"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return "no user 'postgres' to own the cluster"
    return None


def pg_start(workdir: Path, bin_dir: Path = PG_BIN) -> PgCluster:
    """initdb into the temp dir (fsync stays on) and start on 127.0.0.1:<free port>."""
    root = workdir / "pg"
    root.mkdir()
    data = root / "data"
    log = root / "postgres.log"
    shutil.chown(root, "postgres", "postgres")
    os.chmod(workdir, 0o755)  # postgres must traverse the temp dir (mkdtemp makes it 0700)
    cluster = PgCluster(bin_dir=bin_dir, data_dir=data, port=free_port(), log=log)
    cluster._as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                         "--locale=C.UTF-8")
    # Defaults keep fsync=on, synchronous_commit=on, full_page_writes=on: durable commits.
    options = f"-h 127.0.0.1 -p {cluster.port} -k {root} -c max_connections=200 -c shared_buffers=256MB"
    cluster._as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
    cluster.started = True
    cluster.version = subprocess.run([str(bin_dir / "postgres"), "--version"], capture_output=True, text=True).stdout.strip()
    return cluster


# The desk's own processes ------------------------------------------------------------------

def desk_env(*, database_url: str, redis_url: str, media_root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "ANYMAIL_", "CELERY_"))}
    env.update({
        "DJANGO_SETTINGS_MODULE": "helpdesk.settings.base",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "bench-secret-key-not-for-production",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "ANYMAIL_WEBHOOK_SECRET": WEBHOOK_AUTH,
        "MEDIA_ROOT": str(media_root),
        "LOG_LEVEL": "WARNING",
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "PYTHONUNBUFFERED": "1",
        # Loopback only: never route through a proxy from the environment.
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
    })
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env.pop(proxy, None)
    return env


WEBHOOK_AUTH = "bench-hook:bench-secret-pass"


def manage(env: dict[str, str], *args: str, log: Path, timeout: float = 600) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    with open(log, "a") as handle:
        handle.write(f"$ manage.py {' '.join(args)}\n{result.stdout}{result.stderr}\n")
    if result.returncode != 0:
        raise BenchError(f"manage.py {' '.join(args)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return result.stdout


def desk_script(env: dict[str, str], *args: str, log: Path, timeout: float = 900) -> str:
    """Run bench/desk.py (Django set up with this env) and return its stdout."""
    result = subprocess.run([sys.executable, "-m", "bench.desk", *args], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=timeout)
    with open(log, "a") as handle:
        handle.write(f"$ bench.desk {' '.join(args)}\n{result.stdout}{result.stderr}\n")
    if result.returncode != 0:
        raise BenchError(f"bench.desk {' '.join(args)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return result.stdout


def uvicorn_start(env: dict[str, str], workdir: Path) -> tuple[Service, int]:
    port = free_port()
    log = workdir / f"uvicorn-{port}.log"
    service = start("uvicorn", [sys.executable, "-m", "uvicorn", "helpdesk.asgi:application", "--host", "127.0.0.1",
                                "--port", str(port), "--workers", "1", "--no-access-log", "--log-level", "warning"],
                    log=log, env=env)
    wait_for_port(port, timeout=60, proc=service.proc, log=log)
    return service, port


def celery_start(env: dict[str, str], workdir: Path, *, concurrency: int) -> Service:
    log = workdir / f"celery-{time.monotonic_ns()}.log"
    name = f"bench-{os.getpid()}-{time.monotonic_ns() % 100000}@%h"
    # SIGQUIT: a cold shutdown; the benchmark does not need the pool to finish its tasks.
    return start("celery", [sys.executable, "-m", "celery", "-A", "helpdesk", "worker", "-Q", "inbound,outbound,sla,default",
                            "-c", str(concurrency), "-n", name, "--loglevel", "WARNING", "--without-heartbeat",
                            "--without-gossip", "--without-mingle"],
                 log=log, env=env, stop_signal=signal.SIGQUIT)


def engines_run(*, name: str, args, run_on, table, note) -> int:  # noqa: ANN001
    """A standalone bench over each engine of --db in turn, each on a fresh database.

    `run_on(engine, url, workdir=…, redis_url=…, conversations=…, per_conversation=…, runs=…,
    migrate=True)` measures one engine; `table(results)` formats them. Results go to
    <results-dir>/<name>-<time>.json; an engine that fails is reported and the others still run.
    """
    import json
    import tempfile
    from datetime import UTC, datetime

    engines = [d.strip() for d in args.db.split(",") if d.strip()]
    workdir = Path(tempfile.mkdtemp(prefix=f"helpdesk-bench-{name}-", dir=args.tmp_dir))
    note(f"temp dir {workdir}")
    results: list[dict] = []
    # These benches never touch Redis; the settings only need a URL.
    redis_url = "redis://127.0.0.1:6379/0"
    database = f"desk_{name.replace('-', '_')}"
    try:
        for engine in engines:
            cluster = None
            try:
                if engine == "postgres":
                    missing = pg_available(Path(args.pg_bin))
                    if missing:
                        note(f"PostgreSQL skipped: {missing}")
                        continue
                    cluster = pg_start(workdir, Path(args.pg_bin))
                    with __import__("psycopg").connect(cluster.url("postgres"), autocommit=True) as conn:
                        conn.execute(f"CREATE DATABASE {database}")
                    url = cluster.url(database)
                else:
                    url = f"sqlite:///{workdir / f'{name}.sqlite3'}"
                results.append(run_on(engine, url, workdir=workdir, redis_url=redis_url, conversations=args.conversations,
                                      per_conversation=args.messages_per_conversation, runs=args.runs, migrate=True))
                print(table(results[-1:]), flush=True)  # as each engine finishes; all again at the end
            except Exception as err:  # noqa: BLE001 - report, go on with the next engine
                results.append({"db": engine, "conversations": args.conversations, "error": f"{type(err).__name__}: {err}"})
            finally:
                if cluster is not None:
                    cluster.stop()
    finally:
        if not args.keep_tmp:
            shutil.rmtree(workdir, ignore_errors=True)
    out_dir = Path(args.results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{name}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps({"settings": vars(args), "cpus": os.cpu_count(), "results": results}, indent=2, default=str))
    print(table(results))
    print(f"\nJSON: {out}")
    return 1 if any("error" in r for r in results) else 0


def inner_measure(module: str, env: dict[str, str], *, conversations: int, per_conversation: int, runs: int,
                  log: Path, timeout: float) -> dict:
    """Run `python -m <module> inner` (generate, then time) on the database env points at; its JSON result."""
    import json

    argv = [sys.executable, "-m", module, "inner", "--conversations", str(conversations),
            "--messages-per-conversation", str(per_conversation), "--runs", str(runs)]
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    with open(log, "a") as handle:
        handle.write(f"$ {' '.join(argv[1:])}\n{result.stdout}{result.stderr}\n")
    if result.returncode != 0:
        raise BenchError(f"{module} inner failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def engine_measure(module: str, engine: str, database_url: str, *, workdir: Path, redis_url: str, conversations: int,
                   per_conversation: int, runs: int, migrate: bool, timeout: float, note, what: str) -> dict:  # noqa: ANN001
    """One engine of an `engines_run` bench: migrate a fresh database if asked, then
    `python -m <module> inner` (generate, then time) on it; its result with db and size."""
    name = module.rpartition(".")[2].replace("_", "-")
    env = desk_env(database_url=database_url, redis_url=redis_url, media_root=workdir / f"media-{name}")
    log = workdir / f"{name}-{engine}.log"
    if migrate:
        note(f"{engine}: migrating a fresh database")
        manage(env, "migrate", "--noinput", "-v0", log=log)
    note(f"{engine}: generating {conversations:,} conversations (~{conversations * per_conversation:,} messages){what}")
    result = inner_measure(module, env, conversations=conversations, per_conversation=per_conversation, runs=runs, log=log,
                           timeout=timeout)
    return {**result, "db": engine, "conversations": conversations}


def engines_main(argv: list[str], *, prog: str, doc: str | None, name: str, runs: int, runs_help: str, inner, run_on, table,  # noqa: ANN001
                 note) -> int:  # noqa: ANN001
    """The command line of an `engines_run` bench; `inner ARGS` runs the in-process part."""
    import argparse

    if argv[:1] == ["inner"]:
        return inner(argv[1:])
    p = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", default="sqlite,postgres", help="comma-separated: sqlite, postgres (default both)")
    p.add_argument("--conversations", type=int, default=100_000, help="conversations to generate (default 100000)")
    p.add_argument("--messages-per-conversation", type=int, default=10, help="average messages each (default 10)")
    p.add_argument("--runs", type=int, default=runs, help=runs_help)
    p.add_argument("--pg-bin", default=str(PG_BIN))
    p.add_argument("--results-dir", default=str(REPO / "bench" / "results"))
    p.add_argument("--tmp-dir", default=None)
    p.add_argument("--keep-tmp", action="store_true")
    return engines_run(name=name, args=p.parse_args(argv), run_on=run_on, table=table, note=note)


def grid(header: list[str], body: list[list[str]]) -> list[str]:
    """A text table: the header, a rule, the rows, each column as wide as its widest cell."""
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return " | ".join(c.ljust(widths[i]) for i, c in enumerate(cells))

    return [line(header), "-+-".join("-" * w for w in widths), *(line(row) for row in body)]


def inner_setup(argv: list[str], *, prog: str, runs: int):  # noqa: ANN201
    """The arguments `inner_measure` passes to a bench's in-process part, with Django set up."""
    import argparse

    p = argparse.ArgumentParser(prog=prog)
    p.add_argument("--conversations", type=int, required=True)
    p.add_argument("--messages-per-conversation", type=int, default=10)
    p.add_argument("--runs", type=int, default=runs)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings.base")
    import django

    django.setup()
    return args
