"""What one inbound email costs, statement by statement, in one process.

    bin/pg-test-cluster .venv/bin/python -m bench.inbound_cost [--events 400]
    DATABASE_URL=... .venv/bin/python -m bench.inbound_cost

Migrates the database in DATABASE_URL (SQLite in a temp dir when unset), makes the bench desk
(one email inbox), accepts --events Postmark webhooks through Django's test client, then runs
the worker's processing of each event in this process with every SQL statement timed. Prints
the time per message (all of it, and in SQL), the statements per message, and the statements
that cost most. Realtime pushes go to an in-memory channel layer and nothing is enqueued:
the figures are the web view and the worker's service, not the broker or Redis.
bin/pg-test-cluster runs PostgreSQL with fsync off. Reports times; never fails on them.
"""
from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import infra


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.inbound_cost", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=400, help="Postmark webhooks to accept and process (default 400)")
    p.add_argument("--top", type=int, default=12, help="statements listed (default 12)")
    p.add_argument("--sla", action="store_true", help="an SLA policy on every conversation (bench.desk.sla_policy_add)")
    args = p.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="helpdesk-inbound-cost-")
    try:
        return _measure(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _measure(args: argparse.Namespace, tmp: str) -> int:
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{tmp}/desk.sqlite3"
    os.environ.update(infra.desk_env(database_url=database_url, redis_url="redis://127.0.0.1:9/0", media_root=Path(tmp) / "media"))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    call_command("migrate", verbosity=0)
    import channels_in.services as inbound
    from bench import load
    from bench.desk import setup, sla_policy_add
    from channels_in.models import InboundEvent

    inbound.inbound_enqueue = lambda *, event_id: None  # processed below, in this process
    setup()
    if args.sla:
        sla_policy_add()
    client = Client(SERVER_NAME="127.0.0.1")
    auth = "Basic " + base64.b64encode(infra.WEBHOOK_AUTH.encode()).decode()
    postings = load.postings(count=args.events, tag=str(time.time()))
    started = time.perf_counter()
    for posting in postings:
        response = client.post(load.WEBHOOK_PATH, posting.body, content_type="application/json", HTTP_AUTHORIZATION=auth)
        assert response.status_code == 200, response.content
    accept_ms = (time.perf_counter() - started) / len(postings) * 1000
    ids = list(InboundEvent.objects.filter(status=InboundEvent.Status.PENDING).order_by("pk").values_list("pk", flat=True))
    spent: defaultdict[str, float] = defaultdict(float)
    count: Counter[str] = Counter()

    def timed(execute, sql, params, many, context):
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            key = re.sub(r"\s+", " ", re.sub(r'"s\d+_x\d+"', '"sN"', sql))[:90]
            spent[key] += time.perf_counter() - t0
            count[key] += 1

    started = time.perf_counter()
    with connection.execute_wrapper(timed):
        for event_id in ids:
            inbound.inbound_event_process(event_id=event_id)
    n = len(ids)
    process_ms = (time.perf_counter() - started) / n * 1000
    print(f"database: {connection.vendor}; {n} new email conversations{', each under an SLA policy' if args.sla else ''}")
    print(f"web view (test client, no ASGI): {accept_ms:.2f} ms per webhook")
    print(f"worker service: {process_ms:.2f} ms per message, of which SQL {sum(spent.values()) / n * 1000:.2f} ms "
          f"in {sum(count.values()) / n:.1f} statements")
    for key, seconds in sorted(spent.items(), key=lambda kv: -kv[1])[:args.top]:
        print(f"  {seconds / n * 1000:6.3f} ms  {count[key] / n:4.2f}x  {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
