"""The SLA sweep with many open tickets: what finding and handling due clocks costs.

Fills a desk with --open open tickets, each with a running first-response clock due later,
of which --due are already past their deadline; then times
  1. an idle sweep (nothing due: one indexed query, whatever the number of open tickets),
  2. the sweep that warns and breaches the --due clocks (each in its own short transaction),
  3. an idle sweep again,
with the number of SQL queries of each. Reports times; never fails on them.

Standalone: `python bench/sla_sweep.py [--open 100000] [--due 100] [--db sqlite,postgres]`
(throwaway SQLite file and PostgreSQL cluster in a temp dir). The Django-side step runs as
`python -m bench.sla_sweep measure ...` with the desk's env.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import infra

BATCH = 5000


def measure_step(*, open_tickets: int, due: int) -> dict:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings.base")
    import django

    django.setup()
    from datetime import timedelta

    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from conversations.models import Contact, Conversation, Inbox
    from tickets.models import SlaClock, SlaEvent, SlaPolicy, Ticket
    from tickets.sla import sla_sweep

    now = timezone.now()
    started = time.monotonic()
    inbox = Inbox.objects.create(name="Sweep bench", kind="email")
    policy = SlaPolicy.objects.create(name="Sweep bench")
    contact = Contact.objects.create(name="Bench customer", email="bench@sweep.example.org")
    first_id = (Conversation.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1
    with transaction.atomic():
        for offset in range(0, open_tickets, BATCH):
            ids = range(first_id + offset, first_id + min(offset + BATCH, open_tickets))
            Conversation.objects.bulk_create([Conversation(id=i, inbox=inbox, contact=contact, subject=f"Bench {i}") for i in ids])
            Ticket.objects.bulk_create([Ticket(conversation_id=i, status="open", channel="email") for i in ids])
            clocks = []
            for i in ids:
                n = i - first_id
                late = n < due  # the first --due tickets are past their deadline
                deadline = now - timedelta(minutes=1) if late else now + timedelta(minutes=30 + n % 2880)
                clocks.append(SlaClock(
                    ticket_id=i, metric="first_response", policy=policy, policy_name=policy.name, target_seconds=3600,
                    warn_seconds=2700, business_hours=False, started_at=deadline - timedelta(hours=1), elapsed=timedelta(0),
                    running_since=deadline - timedelta(hours=1), warn_at=deadline - timedelta(minutes=15), deadline=deadline,
                    next_check_at=deadline - timedelta(minutes=15)))
            SlaClock.objects.bulk_create(clocks)
    fill_seconds = time.monotonic() - started

    def timed_sweep() -> tuple[float, int, object]:
        with CaptureQueriesContext(connection) as queries:
            t0 = time.perf_counter()
            result = sla_sweep(now=now - timedelta(minutes=20))  # before any warning: nothing due
            elapsed = time.perf_counter() - t0
        return elapsed, len(queries.captured_queries), result

    idle = [timed_sweep() for _ in range(7)]
    with CaptureQueriesContext(connection) as queries:
        t0 = time.perf_counter()
        result = sla_sweep(now=now)
        busy_seconds = time.perf_counter() - t0
    busy_queries = len(queries.captured_queries)
    after = []
    for _ in range(7):
        with CaptureQueriesContext(connection) as q:
            t0 = time.perf_counter()
            sla_sweep(now=now)
            after.append((time.perf_counter() - t0, len(q.captured_queries)))
    events = SlaEvent.objects.filter(clock__ticket__conversation__inbox=inbox).values_list("kind", flat=True)
    return {
        "open_tickets": open_tickets, "due": due, "fill_seconds": round(fill_seconds, 1),
        "idle_sweep_ms_p50": round(statistics.median(t for t, _, _ in idle) * 1000, 2),
        "idle_sweep_queries": idle[0][1],
        "due_sweep_ms": round(busy_seconds * 1000, 1),
        "due_sweep_queries": busy_queries,
        "due_sweep_ms_per_clock": round(busy_seconds * 1000 / max(due, 1), 2),
        "warned": result.warned, "breached": result.breached,
        "after_sweep_ms_p50": round(statistics.median(t for t, _ in after) * 1000, 2),
        "after_sweep_queries": after[0][1],
        "warn_events": sum(1 for k in events if k == "warn"), "breach_events": sum(1 for k in events if k == "breach"),
    }


def sweep_bench(env: dict[str, str], *, open_tickets: int, due: int, log: Path, timeout: float = 1800) -> dict:
    """Run the Django-side step with the desk's env (a migrated database); returns its figures."""
    result = subprocess.run([sys.executable, "-m", "bench.sla_sweep", "measure", "--open", str(open_tickets), "--due", str(due)],
                            cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=timeout)
    with open(log, "a") as handle:
        handle.write(f"$ bench.sla_sweep measure\n{result.stdout}{result.stderr}\n")
    if result.returncode != 0:
        raise infra.BenchError(f"bench.sla_sweep failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def print_table(rows: list[dict]) -> None:
    print(f"{'db':<9}{'open':>8}{'due':>6}{'idle p50':>11}{'idle q':>8}{'due sweep':>11}{'per clock':>11}{'queries':>9}"
          f"{'warn/breach':>13}")
    for r in rows:
        print(f"{r['db']:<9}{r['open_tickets']:>8}{r['due']:>6}{r['idle_sweep_ms_p50']:>9.2f}ms{r['idle_sweep_queries']:>8}"
              f"{r['due_sweep_ms']:>9.1f}ms{r['due_sweep_ms_per_clock']:>9.2f}ms{r['due_sweep_queries']:>9}"
              f"{r['warn_events']:>6}/{r['breach_events']:<6}")


def main(argv: list[str]) -> int:
    if argv[:1] == ["measure"]:
        p = argparse.ArgumentParser()
        p.add_argument("--open", type=int, required=True)
        p.add_argument("--due", type=int, required=True)
        a = p.parse_args(argv[1:])
        print(json.dumps(measure_step(open_tickets=a.open, due=a.due)))
        return 0
    p = argparse.ArgumentParser(prog="bench/sla_sweep.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--open", type=int, default=100_000, help="open tickets with a running clock (default 100000)")
    p.add_argument("--due", type=int, default=100, help="of which past their deadline (default 100)")
    p.add_argument("--db", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="desk-sla-bench-"))
    log = work / "bench.log"
    rows, cluster = [], None
    try:
        for db in [d.strip() for d in args.db.split(",") if d.strip()]:
            if db == "postgres":
                why = infra.pg_available()
                if why is not None:
                    print(f"postgres skipped: {why}", file=sys.stderr)
                    continue
                cluster = infra.pg_start(work)
                import psycopg

                with psycopg.connect(cluster.url("postgres"), autocommit=True) as conn:
                    conn.execute("CREATE DATABASE sweep")
                url = cluster.url("sweep")
            else:
                url = f"sqlite:///{work / 'sweep.sqlite3'}"
            env = infra.desk_env(database_url=url, redis_url="redis://127.0.0.1:1/0", media_root=work / "media")
            infra.manage(env, "migrate", "-v0", log=log)
            rows.append({"db": db} | sweep_bench(env, open_tickets=args.open, due=args.due, log=log))
        print_table(rows)
        out = REPO / "bench" / "results" / f"sla-sweep-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(rows, indent=2))
        print(f"wrote {out.relative_to(REPO)}")
        return 0
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
