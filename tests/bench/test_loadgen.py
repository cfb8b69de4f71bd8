"""The load generator, run tiny on the real stack, and its loss check against a database it did not write."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bench import loadgen_check
from bench.loadgen_traffic import Send

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.integration  # starts redis-server, two uvicorn processes, two Celery workers and beat
def test_loadgen_runs_tiny_on_the_real_stack(tmp_path: Path) -> None:
    url = os.environ.get("DATABASE_URL", "")
    database = ["--database-url", url] if url.startswith("postgres") else ["--db", "sqlite"]
    proc = subprocess.run(
        [sys.executable, "-m", "bench.loadgen", *database, "--rate", "10", "--duration", "3", "--warmup", "0",
         "--burst", "30", "--burst-seconds", "1", "--drain-seconds", "60", "--results-dir", str(tmp_path)],
        check=False, cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    [report_file] = tmp_path.glob("loadgen-*.json")
    assert str(report_file) in proc.stdout
    report = json.loads(report_file.read_text())
    assert report["database"] == ("postgresql" if url.startswith("postgres") else "sqlite")
    sustained, burst = report["phases"]
    assert (sustained["phase"], sustained["planned"], burst["phase"], burst["planned"]) == ("sustained", 30, "burst", 30)
    assert "chat" not in burst["sends"]  # a burst is webhooks only
    for phase in (sustained, burst):
        outcomes = {channel: sum(counts.values()) for channel, counts in phase["sends"].items()}
        assert sum(outcomes.values()) == phase["planned"] == phase["sent"]
        # Every send answered and found once in the database, and its own frame reached every
        # agent socket (2 agents x 2 processes): nothing lost, nothing doubled.
        assert phase["errors"] == {} and phase["ok"] is True
        loss = phase["loss"]
        assert loss["accepted"] == phase["accepted"] == phase["planned"]
        assert loss["lost"] == loss["still_pending"] == loss["doubled"] == loss["not_on_socket"] == loss["event_failed"] == 0
        assert phase["sockets"] == [{"seen": phase["planned"], "of": phase["planned"]}] * 4
        # One latency per message, per channel as sent; ordered percentiles.
        assert phase["accepted_by_channel"] == outcomes
        for channel, count in outcomes.items():
            latency = phase["latency_ms"][channel]
            assert latency["count"] == count and 0 < latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
        assert phase["latency_ms"]["all"]["count"] == phase["planned"]
        webhooks = outcomes.get("email", 0) + outcomes.get("sms", 0)
        assert phase["split_ms"]["row_to_claim"]["count"] == webhooks
        assert phase["drain"]["drained"] and phase["drain"]["all_in_timeline_after_s"] > 0
        # The backlog was sampled each second while sending: counts only grow, up to the plan.
        sent = [s["sent"] for s in phase["backlog"]]
        assert sent and sent == sorted(sent) and sent[-1] <= phase["planned"]
        assert all(s["accepted"] <= s["sent"] and set(s["queues"]) >= {"inbound", "unacked"} for s in phase["backlog"])
    assert sustained["visitors"]["sessions"] >= 1 and sustained["visitors"]["failed"] == []
    assert "loss check: accepted 30, lost 0, doubled 0, still pending when the drain stopped 0" in proc.stdout


def _desk(path: Path) -> loadgen_check.DeskDb:
    """The two tables the check reads, as the desk names them, without the desk's constraints."""
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE message (id INTEGER PRIMARY KEY, channel TEXT, external_id TEXT, kind TEXT);
        CREATE TABLE inbound_event (id INTEGER PRIMARY KEY, provider TEXT, event_id TEXT, status TEXT,
                                    received_at TEXT, processed_at TEXT, message_id INTEGER);
    """)
    conn.executemany("INSERT INTO message (id, channel, external_id, kind) VALUES (?, ?, ?, 'inbound')", [
        (1, "email", "a@x"),  # delivered
        (2, "sms", "SM-doubled"), (3, "sms", "SM-doubled"),  # stored twice
        (4, "webchat", "chat-unseen"),  # stored, never pushed to an agent
        (5, "email", "not-ours@x"),  # same id under another channel does not count
    ])
    conn.executemany("INSERT INTO inbound_event (provider, event_id, status, received_at, processed_at, message_id) "
                     "VALUES (?, ?, ?, ?, ?, ?)", [
                         ("postmark", "pm-1", "processed", "2026-01-01 00:00:00.100", "2026-01-01 00:00:00.200", 1),
                         ("twilio", "SM-doubled", "processed", "2026-01-01 00:00:00.100", "2026-01-01 00:00:00.200", 2),
                         ("twilio", "SM-lost", "failed", "2026-01-01 00:00:00.100", None, None),
                         ("postmark", "pm-2", "pending", "2026-01-01 00:00:00.100", None, None),
                     ])
    conn.commit()
    conn.close()
    return loadgen_check.DeskDb(f"sqlite:///{path}")


def test_loss_check_reads_what_the_database_holds(tmp_path: Path) -> None:
    def send(channel: str, key: str, event_key: str = "", accepted: bool = True, outcome: str = "200") -> Send:
        return Send(at=0, channel=channel, key=key, event_key=event_key, customer=0, port=1, repeat=False, sent_at=10.0,
                    answered_at=10.01, outcome=outcome, accepted=accepted)

    sends = [
        send("email", "a@x", "pm-1"),
        send("sms", "SM-doubled", "SM-doubled"),
        send("sms", "SM-lost", "SM-lost"),
        send("chat", "chat-unseen", outcome="ack"),
        send("chat", "not-ours@x", outcome="ack"),  # only an email has this id: lost as a chat message
        send("email", "refused@x", "pm-9", accepted=False, outcome="http 500"),
        send("email", "queued@x", "pm-2"),  # stored, its worker not there yet
    ]
    # Socket A saw message 1 at 10.5 s and 2; socket B saw 1 earlier (10.25 s), and 5 (not a chat message).
    frames = [[(10.5, 1), (10.6, 2)], [(10.25, 1), (10.7, 5)]]
    db = _desk(tmp_path / "desk.sqlite3")
    result = loadgen_check.check(sends, frames, db, {"message": "message", "inbound_event": "inbound_event"},
                                 wall_offset=1767225590.0)  # perf 10.0 = 2026-01-01 00:00:00 UTC
    db.close()
    assert result["loss"] == {"accepted": 6, "lost": 2, "still_pending": 1, "doubled": 1, "not_on_socket": 1, "event_missing": 0,
                              "event_failed": 1, "ack_mismatch": 0, "stored_though_refused": 0}
    assert result["errors"] == {"email: http 500": 1}
    # The first frame of each message counts, whichever socket had it.
    assert result["latency_ms"]["email"]["max_ms"] == 250.0
    assert result["latency_ms"]["sms"]["max_ms"] == 600.0
    assert result["latency_ms"]["all"]["count"] == 2
    assert result["sockets"] == [{"seen": 2, "of": 3}, {"seen": 1, "of": 3}]
    # Where the time went: 100 ms to the event row, 100 ms queued, then to the first frame
    # (email 10.25 s, sms 10.6 s after a claim at 10.2 s).
    split = {k: (v["count"], v["p50_ms"], v["max_ms"]) for k, v in result["split_ms"].items()}
    assert split == {"post_to_row": (2, 100.0, 100.0), "row_to_claim": (2, 100.0, 100.0), "claim_to_frame": (2, 50.0, 400.0)}
