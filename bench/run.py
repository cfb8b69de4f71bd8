"""Benchmark of the desk's inbound path on SQLite and PostgreSQL: `make bench`.

For each database, on an empty desk and on one already holding --conversations conversations:
  1. single-row durable commits per second (the machine's floor, no Django),
  2. Postmark inbound webhooks accepted per second by the real ASGI server (uvicorn, 1 process),
  3. how fast one Celery worker (-c 2) turns that backlog into timeline messages,
  4. end-to-end latency from a webhook POST to its message.created frame on an agent's
     WebSocket, at a steady rate below the worker's capacity (p50/p99),
  5. widget round trip: --widget-visitors visitor sockets open at once, visitors send chat
     messages at a steady rate; latency from a visitor's send to the agent socket's frame (p50/p99).
Then, per database, bench/reports.py: each manager report's selector over --reports-conversations
conversations (~10 messages each, with their report facts), p50 of --reports-runs runs; and
bench/sla_sweep.py: the SLA sweep with --sla-open open tickets of which --sla-due are due; and
bench/list_search.py: the agent's conversation list (each view) and full-text search, p50/p95
of --list-runs requests, over --list-conversations conversations with ~10 messages each.
Prints a table and writes bench/results/<timestamp>.json. It reports times; it never fails on
them (the exit status is non-zero only when a step could not run at all).

Everything runs on 127.0.0.1: a throwaway redis-server (broker and channel layer), a
throwaway PostgreSQL cluster (initdb as user postgres into a temp dir, fsync on), SQLite files
in WAL mode with synchronous=FULL (the desk's settings), all under one temp dir removed at the end.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import infra, load
from bench import list_search as list_bench
from bench import reports as reports_bench
from bench import sla_sweep as sla_bench
from bench import widget as widget_bench
from bench.commit_rate import postgres_commit_rate, sqlite_commit_rate


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", default="sqlite,postgres", help="comma-separated: sqlite, postgres (default both)")
    p.add_argument("--conversations", type=int, default=100_000,
                   help="size of the filled desk (1-3 messages each); 0 runs the empty desk only (default 100000)")
    p.add_argument("--only-filled", action="store_true", help="skip the empty desk")
    p.add_argument("--webhooks", type=int, default=1000, help="webhooks posted for the throughput step (default 1000)")
    p.add_argument("--concurrency", type=int, default=4, help="client connections for the throughput step (default 4)")
    p.add_argument("--webhook-seconds", type=float, default=60, help="time cap of the throughput step (default 60)")
    p.add_argument("--drain-seconds", type=float, default=45,
                   help="time the worker gets to process the throughput backlog; the rest is dropped (default 45)")
    p.add_argument("--e2e-count", type=int, default=300, help="webhooks measured end to end (default 300)")
    p.add_argument("--e2e-rate", type=float, default=20, help="steady posting rate for end to end, per second (default 20)")
    p.add_argument("--e2e-connections", type=int, default=4, help="client connections for end to end (default 4)")
    p.add_argument("--e2e-wait", type=float, default=60, help="time to wait for the last frames after sending (default 60)")
    p.add_argument("--widget-visitors", type=int, default=200, help="visitor sockets held open for the widget round trip (default 200)")
    p.add_argument("--widget-messages", type=int, default=2, help="messages per visitor in the widget round trip (default 2)")
    p.add_argument("--widget-rate", type=float, default=20, help="total widget messages per second (default 20)")
    p.add_argument("--commit-count", type=int, default=5000, help="commits for the commit-rate step (default 5000)")
    p.add_argument("--commit-seconds", type=float, default=3, help="time cap of the commit-rate step (default 3)")
    p.add_argument("--celery-concurrency", type=int, default=2, help="worker pool size (default 2)")
    p.add_argument("--worker-conn-max-age", type=int, default=None,
                   help="DB_CONN_MAX_AGE for the Celery worker only (default: the desk's default, 0)")
    p.add_argument("--reports-conversations", type=int, default=None,
                   help="conversations (~10 messages each) for the reports step; 0 skips it (default: --conversations)")
    p.add_argument("--reports-runs", type=int, default=5, help="timed runs per report (default 5)")
    p.add_argument("--sla-open", type=int, default=None,
                   help="open tickets with a running SLA clock for the sweep step; 0 skips it (default: --conversations)")
    p.add_argument("--sla-due", type=int, default=100, help="of which past their deadline (default 100)")
    p.add_argument("--list-conversations", type=int, default=None,
                   help="conversations (~10 messages each) for the list and search step; 0 skips it (default: --conversations)")
    p.add_argument("--list-runs", type=int, default=20, help="timed requests per list view or search (default 20)")
    p.add_argument("--pg-bin", default=str(infra.PG_BIN), help=f"PostgreSQL binaries (default {infra.PG_BIN})")
    p.add_argument("--results-dir", default=str(REPO / "bench" / "results"), help="where the JSON goes")
    p.add_argument("--tmp-dir", default=None, help="parent of the temp dir (default: the system's)")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (logs, databases) for inspection")
    args = p.parse_args(argv)
    args.db = [d.strip() for d in args.db.split(",") if d.strip()]
    if args.reports_conversations is None:
        args.reports_conversations = args.conversations
    if args.sla_open is None:
        args.sla_open = args.conversations
    if args.list_conversations is None:
        args.list_conversations = args.conversations
    unknown = set(args.db) - {"sqlite", "postgres"}
    if unknown:
        p.error(f"unknown --db {', '.join(sorted(unknown))}")
    return args


def note(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", flush=True)


# Reading the desk's tables from the benchmark process (no Django here) -------------------------

class DeskDb:
    def __init__(self, engine: str, target: str) -> None:
        self.engine = engine
        self.target = target  # a file path (sqlite) or a URL (postgres)

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        if self.engine == "sqlite":
            conn = sqlite3.connect(self.target, timeout=20)
            try:
                return conn.execute(sql.replace("%s", "?"), params).fetchall()
            finally:
                conn.close()
        import psycopg

        with psycopg.connect(self.target) as conn:
            return conn.execute(sql, params).fetchall()

    def message_origins(self, tables: dict[str, str], message_ids: list[int]) -> dict[int, tuple[str, float | None, float | None]]:
        """message id -> (rfc_message_id, its inbound event's received_at and processed_at as epoch seconds)."""
        found: dict[int, tuple[str, float | None, float | None]] = {}
        for start in range(0, len(message_ids), 500):
            chunk = message_ids[start:start + 500]
            marks = ", ".join(["%s"] * len(chunk))
            rows = self.rows(
                f"SELECT m.id, m.rfc_message_id, e.received_at, e.processed_at FROM {tables['message']} m "
                f"LEFT JOIN {tables['inbound_event']} e ON e.message_id = m.id WHERE m.id IN ({marks})", tuple(chunk))
            for message_id, rfc, received_at, processed_at in rows:
                found[message_id] = (rfc, _epoch(received_at), _epoch(processed_at))
        return found


def _when(value: object) -> datetime:
    """A datetime column as read: aware from psycopg, naive UTC text from SQLite."""
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _epoch(value: object) -> float | None:
    return None if value is None else _when(value).timestamp()


# The steps of one configuration ----------------------------------------------------------------

def drain(db: DeskDb, table: str, *, max_seconds: float, total: int) -> dict:
    """Wait for the worker to process the webhook backlog; rate from the rows' own claim times."""
    started = time.monotonic()
    pending = total
    while time.monotonic() - started < max_seconds:
        pending = db.rows(f"SELECT count(*) FROM {table} WHERE status = %s", ("pending",))[0][0]
        if pending == 0:
            break
        time.sleep(0.5)
    counts = dict(db.rows(f"SELECT status, count(*) FROM {table} GROUP BY status"))
    first, last = db.rows(f"SELECT min(processed_at), max(processed_at) FROM {table} WHERE status = %s", ("processed",))[0]
    processed = counts.get("processed", 0)
    span = (_when(last) - _when(first)).total_seconds() if processed > 1 else 0.0
    return {
        "queued": total, "processed": processed, "failed": counts.get("failed", 0), "left_pending": counts.get("pending", 0),
        "waited_seconds": round(time.monotonic() - started, 1), "stopped_by_time_cap": counts.get("pending", 0) > 0,
        "messages_per_s": round((processed - 1) / span, 1) if span > 0 else None,
    }


def purge_inbound_queue(redis_url: str) -> int:
    """Drop undelivered inbound tasks (the backlog cut off by the drain cap); rows stay pending."""
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = [k for k in client.scan_iter("inbound*")]
    return client.delete(*keys) if keys else 0


def run_config(*, engine: str, size: int, args: argparse.Namespace, ctx: dict) -> dict:
    workdir: Path = ctx["workdir"]
    label = f"{engine}-{size}"
    result: dict = {"db": engine, "conversations": size}
    # A fresh desk from the migrated template.
    if engine == "sqlite":
        path = workdir / f"desk-{label}.sqlite3"
        shutil.copyfile(ctx["sqlite_template"], path)
        database_url, db = f"sqlite:///{path}", DeskDb("sqlite", str(path))
    else:
        cluster: infra.PgCluster = ctx["pg"]
        name = f"desk_{size}"
        _pg_admin(cluster, f'CREATE DATABASE "{name}" TEMPLATE desk_template')
        database_url = cluster.url(name)
        db = DeskDb("postgres", database_url)
    env = infra.desk_env(database_url=database_url, redis_url=ctx["redis_url"], media_root=workdir / f"media-{label}")
    setup_log = workdir / f"setup-{label}.log"
    if size:
        note(f"{label}: filling {size} conversations")
        result["fill"] = json.loads(infra.desk_script(env, "fill", "--conversations", str(size), log=setup_log).strip().splitlines()[-1])
        note(f"{label}: filled in {result['fill']['seconds']} s: {result['fill']['rows']}")

    note(f"{label}: commit rate")
    if engine == "sqlite":
        result["commit"] = sqlite_commit_rate(workdir / f"commit-{label}.sqlite3", count=args.commit_count, max_seconds=args.commit_seconds)
    else:
        result["commit"] = postgres_commit_rate(ctx["pg"].url("bench_commit"), count=args.commit_count, max_seconds=args.commit_seconds)

    import redis

    redis.Redis.from_url(ctx["redis_url"]).flushall()
    services: list[infra.Service] = []
    try:
        server, port = infra.uvicorn_start(env, workdir)
        services.append(server)
        asyncio.run(load.wait_http(port, timeout=30))

        note(f"{label}: {args.webhooks} webhooks, {args.concurrency} connections")
        items = load.postings(count=args.webhooks, tag=f"tp-{label}")
        result["webhooks"] = asyncio.run(load.webhook_throughput(port, items, auth=infra.WEBHOOK_AUTH, concurrency=args.concurrency,
                                                                 max_seconds=args.webhook_seconds))
        note(f"{label}: {result['webhooks']['accepted_per_s']} webhooks/s, errors {result['webhooks']['errors']}")

        worker_env = dict(env)
        if args.worker_conn_max_age is not None:
            worker_env["DB_CONN_MAX_AGE"] = str(args.worker_conn_max_age)
        worker = infra.celery_start(worker_env, workdir, concurrency=args.celery_concurrency)
        services.append(worker)
        note(f"{label}: worker draining the backlog (cap {args.drain_seconds:.0f} s)")
        result["drain"] = drain(db, ctx["tables"]["inbound_event"], max_seconds=args.drain_seconds, total=result["webhooks"]["ok"])
        if worker.proc.poll() is not None:
            raise infra.BenchError(f"the Celery worker exited{infra.log_tail(worker.log)}")
        if result["drain"]["left_pending"]:
            result["drain"]["purged_queue_keys"] = purge_inbound_queue(ctx["redis_url"])
        note(f"{label}: worker {result['drain']['messages_per_s']} messages/s "
             f"({result['drain']['processed']} processed, {result['drain']['left_pending']} left)")

        rate = args.e2e_rate
        capacity = result["drain"]["messages_per_s"]
        if capacity and rate > 0.7 * capacity:
            # Above ~70% of the worker's capacity the queue, not the path, sets the latency.
            rate = max(1.0, round(0.7 * capacity, 1))
            note(f"{label}: end-to-end rate lowered from {args.e2e_rate}/s to {rate}/s (70% of the worker's measured capacity)")
        note(f"{label}: end to end, {args.e2e_count} webhooks at {rate}/s")
        e2e_items = load.postings(count=args.e2e_count, tag=f"e2e-{label}")
        warmup = load.postings(count=min(10, max(2, args.e2e_count // 10)), tag=f"warm-{label}")
        tables = ctx["tables"]
        result["e2e"] = asyncio.run(load.end_to_end(
            port, ctx["session_key"], e2e_items, warmup, auth=infra.WEBHOOK_AUTH, rate=rate, connections=args.e2e_connections,
            lookup=lambda ids: db.message_origins(tables, ids), max_wait=args.e2e_wait, warmup_wait=90,
        ))
        result["e2e"]["rate_requested_per_s"] = args.e2e_rate
        note(f"{label}: e2e p50 {result['e2e']['p50_ms']} ms, p99 {result['e2e']['p99_ms']} ms, "
             f"received {result['e2e']['received']}/{result['e2e']['sent']}")

        note(f"{label}: widget round trip, {args.widget_visitors} visitor sockets, {args.widget_rate} messages/s")
        public_key = widget_bench.widget_setup(env, log=setup_log)
        result["widget"] = asyncio.run(widget_bench.widget_round_trip(
            port, ctx["session_key"], public_key, visitors=args.widget_visitors, messages_per_visitor=args.widget_messages,
            rate=args.widget_rate, max_wait=args.e2e_wait,
        ))
        note(f"{label}: widget p50 {result['widget']['p50_ms']} ms, p99 {result['widget']['p99_ms']} ms, "
             f"received {result['widget']['received']}/{result['widget']['messages']} "
             f"({result['widget']['sockets_open']} sockets open)")
        for service in services:
            if service.proc.poll() is not None:
                raise infra.BenchError(f"{service.name} exited during the run{infra.log_tail(service.log)}")
    finally:
        for service in reversed(services):
            service.stop()
    result["messages_in_desk"] = db.rows(f"SELECT count(*) FROM {ctx['tables']['message']}")[0][0]
    result["errors"] = (result["webhooks"]["errors"] + result["drain"]["failed"] + result["e2e"]["errors"]
                        + result["widget"]["errors"])
    if engine == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    else:
        _pg_admin(ctx["pg"], f'DROP DATABASE "desk_{size}" WITH (FORCE)')
    return result


@contextlib.contextmanager
def _template_copy(engine: str, ctx: dict, name: str) -> Iterator[str]:
    """A fresh copy of the migrated template database, dropped afterwards; yields its URL."""
    workdir: Path = ctx["workdir"]
    if engine == "sqlite":
        path = workdir / f"{name}.sqlite3"
        shutil.copyfile(ctx["sqlite_template"], path)
        url = f"sqlite:///{path}"
    else:
        _pg_admin(ctx["pg"], f'CREATE DATABASE "{name}" TEMPLATE desk_template')
        url = ctx["pg"].url(name)
    try:
        yield url
    finally:
        if engine == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        else:
            _pg_admin(ctx["pg"], f'DROP DATABASE "{name}" WITH (FORCE)')


def run_reports(*, engine: str, args: argparse.Namespace, ctx: dict) -> dict:
    """bench/reports.py on a fresh copy of the migrated template."""
    with _template_copy(engine, ctx, "desk_reports") as url:
        return reports_bench.run_on(engine, url, workdir=ctx["workdir"], redis_url=ctx["redis_url"],
                                    conversations=args.reports_conversations, per_conversation=10, runs=args.reports_runs,
                                    migrate=False)


def run_sla_sweep(*, engine: str, args: argparse.Namespace, ctx: dict) -> dict:
    """bench/sla_sweep.py on a fresh copy of the migrated template."""
    with _template_copy(engine, ctx, "desk_sla") as url:
        env = infra.desk_env(database_url=url, redis_url=ctx["redis_url"], media_root=ctx["workdir"] / "media-sla")
        return {"db": engine} | sla_bench.sweep_bench(env, open_tickets=args.sla_open, due=min(args.sla_due, args.sla_open),
                                                     log=ctx["workdir"] / "sla-sweep.log")


def run_list_search(*, engine: str, args: argparse.Namespace, ctx: dict) -> dict:
    """bench/list_search.py on a fresh copy of the migrated template."""
    with _template_copy(engine, ctx, "desk_list") as url:
        return list_bench.run_on(engine, url, workdir=ctx["workdir"], redis_url=ctx["redis_url"],
                                 conversations=args.list_conversations, per_conversation=10, runs=args.list_runs, migrate=False)


def _pg_admin(cluster: infra.PgCluster, sql: str) -> None:
    import psycopg

    with psycopg.connect(cluster.url("postgres"), autocommit=True) as conn:
        conn.execute(sql)


def prepare_engine(engine: str, ctx: dict, args: argparse.Namespace) -> None:
    """Migrate once into a template, with the inbox, the channel, the agent and their session."""
    workdir: Path = ctx["workdir"]
    if engine == "sqlite":
        path = workdir / "template.sqlite3"
        url = f"sqlite:///{path}"
        ctx["sqlite_template"] = path
    else:
        ctx["pg"] = infra.pg_start(workdir, Path(args.pg_bin))
        note(f"postgres: {ctx['pg'].version} on 127.0.0.1:{ctx['pg'].port}")
        _pg_admin(ctx["pg"], "CREATE DATABASE desk_template")
        _pg_admin(ctx["pg"], "CREATE DATABASE bench_commit")
        url = ctx["pg"].url("desk_template")
    env = infra.desk_env(database_url=url, redis_url=ctx["redis_url"], media_root=workdir / "media")
    log = workdir / f"template-{engine}.log"
    note(f"{engine}: migrating a fresh database")
    infra.manage(env, "migrate", "--noinput", "-v0", log=log)
    setup = json.loads(infra.desk_script(env, "setup", log=log).strip().splitlines()[-1])
    # The same rows (and so the same session) exist in every copy made from the template.
    ctx["session_key"] = setup["session_key"]
    ctx["tables"] = setup["tables"]


# Output ------------------------------------------------------------------------------------

def _fmt(value: object, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(results: list[dict]) -> str:
    header = ["db", "desk (conv / msgs)", "commits/s (ms)", "webhooks/s", "post p50/p99 ms", "worker msg/s",
              "e2e rate/s", "e2e p50 ms", "e2e p99 ms", "p50 split post/queue/work", "widget p50/p99 ms (sockets)", "errors"]
    rows = []
    for r in results:
        if "error" in r:
            rows.append([r["db"], str(r["conversations"]), "failed: " + r["error"].splitlines()[0][:60], "", "", "", "", "", "", "", "", "-"])
            continue
        c, w, d, e, wg = r["commit"], r["webhooks"], r["drain"], r["e2e"], r["widget"]
        rows.append([
            r["db"], f"{r['conversations']:,} / {r['messages_in_desk']:,}",
            f"{_fmt(c['commits_per_s'], 0)} ({_fmt(c['ms_per_commit'], 3)})",
            _fmt(w["accepted_per_s"]), f"{_fmt(w['post_ms_p50'])} / {_fmt(w['post_ms_p99'])}",
            _fmt(d["messages_per_s"]), _fmt(e["rate_per_s"]), _fmt(e["p50_ms"]) + (" !" if e["backlog"] else ""),
            _fmt(e["p99_ms"]) + (" !" if e["backlog"] else ""),
            " / ".join(_fmt(e["split_p50_ms"][k], 0) for k in ("post_to_row", "row_to_claim", "claim_to_frame")),
            f"{_fmt(wg['p50_ms'])} / {_fmt(wg['p99_ms'])} ({wg['sockets_open']})",
            str(r["errors"]),
        ])
    return "\n".join(infra.grid(header, rows))


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir = Path(tempfile.mkdtemp(prefix="helpdesk-bench-", dir=args.tmp_dir))
    note(f"temp dir {workdir}")
    sizes = ([] if args.only_filled and args.conversations > 0 else [0]) + ([args.conversations] if args.conversations > 0 else [])
    results: list[dict] = []
    report_results: list[dict] = []
    sla_results: list[dict] = []
    list_results: list[dict] = []
    notes: list[str] = []
    ctx: dict = {"workdir": workdir}
    redis_service = None
    started = time.monotonic()
    load_before = os.getloadavg()
    try:
        redis_service, ctx["redis_url"] = infra.redis_start(workdir)
        for engine in args.db:
            if engine == "postgres":
                missing = infra.pg_available(Path(args.pg_bin))
                if missing:
                    message = f"PostgreSQL skipped: {missing}."
                    print(f"\nNOTE: {message}\n", flush=True)
                    notes.append(message)
                    continue
            try:
                prepare_engine(engine, ctx, args)
                for size in sizes:
                    try:
                        results.append(run_config(engine=engine, size=size, args=args, ctx=ctx))
                    except Exception as err:  # noqa: BLE001 - report, go on with the next configuration
                        traceback.print_exc()
                        results.append({"db": engine, "conversations": size, "error": f"{type(err).__name__}: {err}"})
                if args.reports_conversations > 0:
                    try:
                        report_results.append(run_reports(engine=engine, args=args, ctx=ctx))
                    except Exception as err:  # noqa: BLE001 - report, go on
                        traceback.print_exc()
                        report_results.append({"db": engine, "conversations": args.reports_conversations,
                                               "error": f"{type(err).__name__}: {err}"})
                if args.sla_open > 0:
                    try:
                        sla_results.append(run_sla_sweep(engine=engine, args=args, ctx=ctx))
                    except Exception as err:  # noqa: BLE001 - report, go on
                        traceback.print_exc()
                        sla_results.append({"db": engine, "open_tickets": args.sla_open, "error": f"{type(err).__name__}: {err}"})
                if args.list_conversations > 0:
                    try:
                        list_results.append(run_list_search(engine=engine, args=args, ctx=ctx))
                    except Exception as err:  # noqa: BLE001 - report, go on
                        traceback.print_exc()
                        list_results.append({"db": engine, "conversations": args.list_conversations,
                                             "error": f"{type(err).__name__}: {err}"})
            except Exception as err:  # noqa: BLE001
                traceback.print_exc()
                results.append({"db": engine, "conversations": 0, "error": f"{type(err).__name__}: {err}"})
            finally:
                if engine == "postgres" and "pg" in ctx:
                    ctx.pop("pg").stop()
    finally:
        if redis_service is not None:
            redis_service.stop()
        if args.keep_tmp:
            note(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    report = {
        "started_at": stamp,
        "seconds": round(time.monotonic() - started, 1),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "sqlite": sqlite3.sqlite_version,
                    # Other work on the machine skews every figure: compare with the cpu count.
                    "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
        "settings": {k: (v if not isinstance(v, Path) else str(v)) for k, v in vars(args).items()},
        "method": {
            "webhook": "Postmark inbound JSON (text + HTML, new customer each) POSTed to /anymail/postmark/inbound/ "
                       "with basic auth; uvicorn 1 process, helpdesk.settings.base; no worker running during this step",
            "drain": "Celery worker -Q inbound,outbound,sla,default; rate = processed events / span of their processed_at",
            "e2e": "POST time to receipt of the message.created frame on /ws/agent/ (session cookie, Origin header); "
                   "frames mapped back by the message's rfc_message_id",
            "widget": "visitor sessions (POST /widget/api/<key>/session), then that many /ws/widget/ sockets held open at once "
                      "(token subprotocol, allowed Origin); messages sent over them at a steady total rate; latency from the "
                      "send to the message.created frame on /ws/agent/, matched by the message id of the visitor's ack",
        },
        "notes": notes,
        "results": results,
        "reports": report_results,
        "sla_sweep": sla_results,
        "list_search": list_results,
    }
    out_dir = Path(args.results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{stamp}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print()
    print(table(results))
    if any(r.get("e2e", {}).get("backlog") for r in results):
        print("! the worker's queue grew during the end-to-end step: the rate was above what it kept up with, so the "
              "latency includes a backlog (see queue_growth_ms; try a lower --e2e-rate)")
    if report_results:
        print("\nReports (bench/reports.py): p50 / slowest of the runs, in ms, (queries)")
        print(reports_bench.table(report_results))
    if sla_results:
        print("\nSLA sweep (bench/sla_sweep.py): idle = nothing due; due = warn and breach the due clocks")
        sla_bench.print_table([r for r in sla_results if "error" not in r])
    if list_results:
        print("\nConversation list and search (bench/list_search.py): p50 / p95 in ms (SQL queries, rows shown)")
        print(list_bench.table(list_results))
    for message in notes:
        print(f"NOTE: {message}")
    print(f"load average before {report['machine']['loadavg_before']}, after {report['machine']['loadavg_after']} "
          f"on {os.cpu_count()} cpus (other processes on the machine skew the figures)")
    print(f"\nJSON: {out}  ({report['seconds']} s)")
    return 1 if any("error" in r for r in results + report_results + sla_results + list_results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
