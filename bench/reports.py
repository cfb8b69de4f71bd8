"""Benchmark of the manager's reports over a big desk: each report's selector, timed.

  python bench/reports.py --conversations 100000     standalone: a throwaway SQLite file and a
                                                     throwaway PostgreSQL cluster (--db to choose)
  make bench                                         bench/run.py runs it on each engine it sets up

The desk is generated straight into the tables (COPY on PostgreSQL, executemany on SQLite,
through bench.desk's Writer): N conversations with ~--messages-per-conversation messages
each (100k and 1M by default) and the ReportFacts the desk writes as it works (created,
replies, first and next responses, solves, resolutions, reopenings, SLA outcomes, CSAT),
spread over the year before now. Then each selector of tickets.reports runs --runs times over
the last 30 days and over the whole year, unfiltered and filtered by inbox; the table shows
the median (p50) and the slowest run. It reports times; it never fails on them.

The Django half runs in a subprocess (`python -m bench.reports inner ...`) with the desk's
environment, so this driver never sets Django up itself.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import infra

SELECTORS = ("response_times", "sla_attainment", "volume", "heatmap", "backlog", "agent_activity", "csat", "csv_export")


# --- The Django half: generate, then time ---------------------------------------------------


def generate(*, conversations: int, per_conversation: int, seed: int) -> dict:
    """Write the desk and its facts in batches; returns row counts and the time it took."""
    import random
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.db import transaction

    from bench.desk import Writer, _next_id, settle
    from conversations.models import Contact, Conversation, Inbox, Message
    from tickets.models import ReportFact, Team, Ticket

    started = time.monotonic()
    rng = random.Random(seed)
    User = get_user_model()
    inboxes = [Inbox.objects.create(name=f"Reports {kind}", kind=kind) for kind in ("email", "sms", "webchat")]
    teams = [Team.objects.get_or_create(name=f"Reports team {n}")[0] for n in range(3)]
    agents = [User.objects.get_or_create(username=f"report-agent-{n}", defaults={"first_name": f"Agent {n}"})[0] for n in range(10)]
    contact_id, conv_id, message_id, fact_id = (_next_id(m) for m in (Contact, Conversation, Message, ReportFact))
    end = datetime.now(UTC) - timedelta(minutes=5)
    span = 365 * 86400
    writer = Writer()
    F = ReportFact.Kind
    priorities = ["low", "normal", "normal", "normal", "high", "urgent"]
    low, high = max(1, per_conversation // 5), max(1, per_conversation * 2 - per_conversation // 5)

    def add_fact(values: dict, when: datetime) -> None:
        nonlocal fact_id
        writer.add(ReportFact, {"id": fact_id, "at": when, **values}, when)
        fact_id += 1

    with transaction.atomic():
        for n in range(conversations):
            created = end - timedelta(seconds=span * (conversations - n) / max(conversations, 1))
            inbox = inboxes[n % 3]
            channel = inbox.kind
            agent, team, priority = rng.choice(agents), rng.choice(teams), rng.choice(priorities)
            dims = {"ticket_id": conv_id, "inbox_id": inbox.pk, "channel": channel, "priority": priority}
            writer.add(Contact, {"id": contact_id, "name": f"Customer {contact_id}", "email": f"c{contact_id}@reports.example.org",
                                 "created_at": created}, created)
            add_fact({**dims, "kind": F.CREATED}, created)
            count = rng.randint(low, high)
            when = created
            waiting_since = None
            first_done = False
            for k in range(count):
                inbound = k % 2 == 0
                values = {"id": message_id, "conversation_id": conv_id, "kind": "inbound" if inbound else "outbound",
                          "channel": channel, "text": "Where is my order?" if inbound else "It ships today.",
                          "created_at": when}
                values["text_display"] = values["text"]
                if inbound:
                    values["author_contact_id"] = contact_id
                    waiting_since = waiting_since or when
                else:
                    values |= {"author_user_id": agent.pk, "delivery_status": "delivered"}
                    add_fact({**dims, "kind": F.REPLY, "agent_id": agent.pk}, when)
                    seconds = int((when - (waiting_since or created)).total_seconds())
                    kind = F.NEXT_RESPONSE if first_done else F.FIRST_RESPONSE
                    add_fact({**dims, "kind": kind, "agent_id": agent.pk, "calendar_seconds": seconds,
                              "business_seconds": seconds // 3}, when)
                    if not first_done:
                        add_fact({**dims, "kind": F.SLA, "metric": "first_response", "breached": seconds > 4 * 3600}, when)
                    first_done, waiting_since = True, None
                writer.add(Message, values, when)
                message_id += 1
                when += timedelta(minutes=rng.randint(5, 600))
            solved = rng.random() < 0.8
            if solved:
                seconds = int((when - created).total_seconds())
                solved_dims = {**dims, "agent_id": agent.pk, "team_id": team.pk}
                add_fact({**solved_dims, "kind": F.SOLVED}, when)
                add_fact({**solved_dims, "kind": F.RESOLUTION, "calendar_seconds": seconds, "business_seconds": seconds // 3}, when)
                add_fact({**dims, "kind": F.SLA, "metric": "resolution", "breached": seconds > 3 * 86400}, when)
                if rng.random() < 0.3:
                    add_fact({**solved_dims, "kind": F.CSAT, "rating": rng.choices([1, 2, 3, 4, 5], [1, 1, 2, 4, 6])[0]},
                             when + timedelta(hours=1))
                if rng.random() < 0.05:
                    add_fact({**solved_dims, "kind": F.REOPENED}, when + timedelta(hours=2))
            writer.add(Conversation, {"id": conv_id, "inbox_id": inbox.pk, "contact_id": contact_id, "subject": "Order",
                                      "created_at": created, "last_message_at": when, "last_message_channel": channel,
                                      "message_count": count}, created)
            writer.add(Ticket, {"conversation_id": conv_id, "status": "solved" if solved else "open", "priority": priority,
                                "assignee_id": agent.pk, "team_id": team.pk, "created_at": created, "updated_at": when,
                                "solved_at": when if solved else None}, created)
            contact_id += 1
            conv_id += 1
        writer.finish([Contact, Conversation, Ticket, Message, ReportFact], sequences=[Contact, Conversation, Message, ReportFact])
    settle()
    return {"rows": writer.counts, "seconds": round(time.monotonic() - started, 1), "inbox_id": inboxes[0].pk}


def time_selectors(*, runs: int, inbox_id: int) -> list[dict]:
    from datetime import timedelta

    from django.db import connection, reset_queries
    from django.http import HttpResponse
    from django.test.utils import CaptureQueriesContext

    from tickets import reports
    from tickets.report_views import _csv_write
    from tickets.reports import ReportFilter

    today = datetime.now(reports.report_time_zone()).date()
    scenarios = {
        "30 days": ReportFilter.last_days(30, today=today),
        "365 days": ReportFilter(start=today - timedelta(days=364), end=today),
        "365 days, one inbox": ReportFilter(start=today - timedelta(days=364), end=today, inbox_id=inbox_id),
    }
    calls = {name: getattr(reports, name) for name in SELECTORS if name != "csv_export"}
    calls["csv_export"] = lambda f: _csv_write(HttpResponse(), f)  # the whole file, as /reports/export.csv writes it
    results = []
    for scenario, f in scenarios.items():
        for name, call in calls.items():
            times = []
            with CaptureQueriesContext(connection) as queries:
                call(f)  # warm-up; also counts the queries
            query_count = len(queries)
            for _ in range(runs):
                t0 = time.perf_counter()
                call(f)
                times.append((time.perf_counter() - t0) * 1000)
            reset_queries()
            results.append({"scenario": scenario, "report": name, "queries": query_count,
                            "p50_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1), "runs": runs})
    return results


def inner(argv: list[str]) -> int:
    args = infra.inner_setup(argv, prog="bench.reports inner", runs=5)
    from django.db import connection

    filled = generate(conversations=args.conversations, per_conversation=args.messages_per_conversation, seed=args.seed)
    timings = time_selectors(runs=args.runs, inbox_id=filled["inbox_id"])
    print(json.dumps({"db": connection.vendor, "fill": filled, "timings": timings}))
    return 0


# --- The driver ----------------------------------------------------------------------------


def note(text: str) -> None:
    print(f"[bench reports {time.strftime('%H:%M:%S')}] {text}", flush=True)


def run_on(engine: str, database_url: str, **kwargs: object) -> dict:
    result = infra.engine_measure("bench.reports", engine, database_url, timeout=3600, note=note, what=" and their facts",
                                  **kwargs)
    note(f"{engine}: generated in {result['fill']['seconds']} s: {result['fill']['rows']}")
    return result


def table(results: list[dict]) -> str:
    lines = []
    for r in results:
        if "error" in r:
            lines.append(f"{r['db']}: failed: {r['error'].splitlines()[0][:120]}")
            continue
        rows = r["fill"]["rows"]
        lines.append(f"\n{r['db']}: {r['conversations']:,} conversations, {rows.get('conversations_message', 0):,} messages, "
                     f"{rows.get('tickets_reportfact', 0):,} facts (generated in {r['fill']['seconds']} s)")
        scenarios = list(dict.fromkeys(t["scenario"] for t in r["timings"]))
        header = ["report"] + [f"{s} p50/max ms (q)" for s in scenarios]
        body = []
        for name in SELECTORS:
            cells = [name]
            for s in scenarios:
                t = next(t for t in r["timings"] if t["scenario"] == s and t["report"] == name)
                cells.append(f"{t['p50_ms']:.1f} / {t['max_ms']:.1f} ({t['queries']})")
            body.append(cells)
        lines += infra.grid(header, body)
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    return infra.engines_main(argv, prog="bench/reports.py", doc=__doc__, name="reports", runs=5,
                              runs_help="timed runs per report (default 5; the p50 is reported)", inner=inner,
                              run_on=run_on, table=table, note=note)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
