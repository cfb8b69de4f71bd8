"""The machine's floor: single-row durable commits per second, one connection, no Django."""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path

# Uncounted first commits: a fresh file or WAL segment costs more than the steady state.
WARMUP = 200


def _result(commits: int, seconds: float) -> dict:
    return {
        "commits": commits,
        "seconds": round(seconds, 3),
        "commits_per_s": round(commits / seconds, 1) if seconds else None,
        "ms_per_commit": round(seconds * 1000 / commits, 3) if commits else None,
    }


def sqlite_commit_rate(path: Path, *, count: int, max_seconds: float) -> dict:
    """WAL + synchronous=FULL (as the desk's settings): every COMMIT fsyncs the WAL."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=20)
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE IF NOT EXISTS bench_commit (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        for i in range(WARMUP):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO bench_commit (v) VALUES (?)", (f"warm {i}",))
            conn.execute("COMMIT")
        done = 0
        started = time.perf_counter()
        deadline = started + max_seconds
        while done < count and time.perf_counter() < deadline:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO bench_commit (v) VALUES (?)", (f"row {done}",))
            conn.execute("COMMIT")
            done += 1
        result = _result(done, time.perf_counter() - started)
        result["settings"] = {"journal_mode": mode, "synchronous": conn.execute("PRAGMA synchronous").fetchone()[0]}
        return result
    finally:
        conn.close()


def postgres_commit_rate(url: str, *, count: int, max_seconds: float) -> dict:
    """A logged table (temp tables skip the WAL flush) and autocommit: one fsync'd commit per insert."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_commit (id bigserial PRIMARY KEY, v text NOT NULL)")
        settings = {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in ("fsync", "synchronous_commit", "wal_sync_method")}
        for i in range(WARMUP):
            conn.execute("INSERT INTO bench_commit (v) VALUES (%s)", (f"warm {i}",))
        done = 0
        started = time.perf_counter()
        deadline = started + max_seconds
        while done < count and time.perf_counter() < deadline:
            conn.execute("INSERT INTO bench_commit (v) VALUES (%s)", (f"row {done}",))
            done += 1
        result = _result(done, time.perf_counter() - started)
        conn.execute("DROP TABLE bench_commit")
    result["settings"] = settings
    return result
