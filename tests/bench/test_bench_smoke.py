"""`make bench` at tiny sizes: every step runs for real and the report adds up."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.infra import pg_available

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration  # starts redis-server, uvicorn and a Celery worker


def test_bench_runs_end_to_end_at_tiny_sizes(tmp_path: Path) -> None:
    # The bench makes its own databases; each suite runs it on its own engine (`make test` on
    # SQLite, `make test-postgres` on PostgreSQL) rather than both suites on both.
    engines = ["postgres"] if os.environ.get("DATABASE_URL", "").startswith("postgres") else ["sqlite"]
    if engines == ["postgres"]:
        assert pg_available() is None, pg_available()
    proc = subprocess.run(
        [sys.executable, "bench/run.py", "--db", ",".join(engines), "--conversations", "30", "--webhooks", "20",
         "--concurrency", "2", "--e2e-count", "10", "--e2e-rate", "10", "--drain-seconds", "60", "--e2e-wait", "60",
         "--commit-count", "50", "--widget-visitors", "10", "--list-runs", "2", "--results-dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    [report_file] = tmp_path.glob("*.json")
    report = json.loads(report_file.read_text())
    assert str(report_file) in proc.stdout
    assert [(r["db"], r["conversations"]) for r in report["results"]] == [(e, n) for e in engines for n in (0, 30)]
    for r in report["results"]:
        assert r["commit"]["commits"] == 50 and r["commit"]["commits_per_s"] > 0
        assert r["webhooks"]["statuses"] == {"200": 20}
        assert r["drain"]["processed"] == 20 and r["drain"]["left_pending"] == 0 and r["drain"]["failed"] == 0
        e2e = r["e2e"]
        assert e2e["post_statuses"] == {"200": 10} and e2e["received"] == 10 and e2e["lost_or_late"] == 0
        assert 0 < e2e["p50_ms"] <= e2e["p99_ms"]
        assert all(v is not None and v >= 0 for v in e2e["split_p50_ms"].values())
        assert r["errors"] == 0
        # Every accepted webhook became exactly one timeline message, next to the filled ones.
        filled = r.get("fill", {}).get("rows", {}).get("conversations_message", 0)
        assert r["widget"]["received"] == r["widget"]["messages"] == 20 and r["widget"]["errors"] == 0
        assert r["messages_in_desk"] == filled + 20 + e2e["warmup"]["count"] + 10 + r["widget"]["messages"]
        assert (r["conversations"] == 0) == ("fill" not in r)
    assert [r["db"] for r in report["reports"]] == engines
    assert all("error" not in r and len(r["timings"]) == 24 for r in report["reports"])
    # The SLA sweep at 30 open tickets, 30 of them due: each warned and breached once.
    assert [r["db"] for r in report["sla_sweep"]] == engines
    assert all(r["idle_sweep_queries"] == 1 and r["warn_events"] == r["breach_events"] == 30 for r in report["sla_sweep"])
    # The list and search at 30 conversations (~300 messages): every view and search answered,
    # as the manager and as an agent of two of the four inboxes, with a fixed query count.
    assert [r["db"] for r in report["list_search"]] == engines
    for r in report["list_search"]:
        assert "error" not in r and r["fill"]["rows"]["conversations_conversation"] == 30
        timings = {(t["user"], t["kind"], t["scenario"]): t for t in r["timings"]}
        assert len(timings) == 2 * (11 + 12) and all(0 < t["p50_ms"] <= t["p95_ms"] for t in timings.values())
        manager = {t["scenario"]: t for t in r["timings"] if t["user"] == "manager (all)"}
        agent = {t["scenario"]: t for t in r["timings"] if t["user"] != "manager (all)"}
        # The sample conversation lies in an inbox the agent does not work.
        assert manager["order number"]["rows"] == manager["contact email"]["rows"] == 1
        assert agent["order number"]["rows"] == agent["contact email"]["rows"] == 0
        assert manager["no hit"]["rows"] == manager["odd syntax"]["rows"] == 0 and manager["open"]["rows"] > 0
        # Session, user, (group check, tabs), counts, page, (tags): never one query per row.
        assert all(t["queries"] <= 7 for t in r["timings"] if t["kind"] == "list" and not t["scenario"].startswith("API"))
        assert all(t["queries"] <= 8 for t in r["timings"] if t["kind"] == "search")
    assert "Conversation list and search" in proc.stdout
    table_line = next(line for line in proc.stdout.splitlines() if line.startswith("db "))
    assert "webhooks/s" in table_line and "e2e p99 ms" in table_line
