"""What happened to each send, read back from the desk's database after the run.

Each send is looked up by the id the desk stores for it: the timeline message by (channel,
external_id) — the email's Message-ID, the SMS's MessageSid, the widget's client_id — and the
stored webhook by (provider, event_id). An agent frame carries only a message id; it counts for
a send only when that id is the send's own message. Nothing here counts frames against sends.
"""
from __future__ import annotations

import sqlite3
import statistics
import threading
from collections import Counter, defaultdict
from datetime import UTC, datetime

from bench.load import _ms, percentile

DESK_CHANNEL = {"email": "email", "sms": "sms", "chat": "webchat"}
PROVIDER = {"email": "postmark", "sms": "twilio"}
QUEUES = ("inbound", "outbound", "sla", "default")


class DeskDb:
    """One connection to the desk's database (read only, autocommit), usable from one thread at a time."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.vendor = "sqlite" if url.startswith("sqlite") else "postgresql"
        self._conn = None
        self._lock = threading.Lock()

    def _connect(self):
        if self.vendor == "sqlite":
            conn = sqlite3.connect(self.url.removeprefix("sqlite:///"), timeout=30, check_same_thread=False,
                                   isolation_level=None)
            conn.execute("PRAGMA query_only = 1")
            return conn
        import psycopg

        return psycopg.connect(self.url, autocommit=True)

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            if self._conn is None:
                self._conn = self._connect()
            if self.vendor == "sqlite":
                return self._conn.execute(sql.replace("%s", "?"), params).fetchall()
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def chunked(self, sql: str, values: list, extra: tuple = ()) -> list[tuple]:
        """`sql` with one `IN ({marks})`, over the values 500 at a time."""
        out: list[tuple] = []
        for start in range(0, len(values), 500):
            chunk = values[start:start + 500]
            out += self.rows(sql.format(marks=", ".join(["%s"] * len(chunk))), (*extra, *chunk))
        return out


def epoch(value: object) -> float | None:
    if value is None:
        return None
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def queue_lengths(redis_client) -> dict[str, int]:
    """Celery's Redis lists per queue (kombu keeps one list per priority step: name, name\\x06\\x163, …)."""
    lengths = {q: 0 for q in QUEUES}
    for key in redis_client.scan_iter(count=1000):
        name = key.decode("latin-1", "replace")
        base = name.split("\x06", 1)[0]
        if base in lengths and redis_client.type(key) == b"list":
            lengths[base] += redis_client.llen(key)
    lengths["unacked"] = redis_client.hlen("unacked")
    return lengths


def backlog_sample(db: DeskDb, tables: dict[str, str], baseline_message_id: int) -> dict:
    """Inbound timeline messages written since the run began, and stored webhooks not yet processed."""
    in_timeline = db.rows(f"SELECT count(*) FROM {tables['message']} WHERE id > %s AND kind = %s",
                          (baseline_message_id, "inbound"))[0][0]
    pending = db.rows(f"SELECT count(*) FROM {tables['inbound_event']} WHERE status = %s", ("pending",))[0][0]
    return {"in_timeline": in_timeline, "events_pending": pending}


def new_message_ids(db: DeskDb, tables: dict[str, str], baseline_message_id: int) -> list[int]:
    return [r[0] for r in db.rows(f"SELECT id FROM {tables['message']} WHERE id > %s", (baseline_message_id,))]


def check(sends: list, frames: list[list[tuple[float, int]]], db: DeskDb, tables: dict[str, str], *, wall_offset: float) -> dict:
    """Per send: its message rows, its stored event, its first frame; then the phase's figures.

    `frames` holds each agent socket's (perf_counter, message id) list; `wall_offset` turns
    perf_counter into epoch seconds (for the stored event's own times).
    """
    by_channel: dict[str, list] = defaultdict(list)
    for s in sends:
        by_channel[s.channel].append(s)
    messages: dict[tuple[str, str], list[int]] = defaultdict(list)
    events: dict[tuple[str, str], tuple[str, float | None, float | None, int | None]] = {}
    for channel, items in by_channel.items():
        desk_channel = DESK_CHANNEL[channel]
        for message_id, external_id in db.chunked(
                f"SELECT id, external_id FROM {tables['message']} WHERE channel = %s AND external_id IN ({{marks}})",
                [s.key for s in items], (desk_channel,)):
            messages[(channel, external_id)].append(message_id)
        if channel in PROVIDER:
            for event_id, status, received_at, processed_at, message_id in db.chunked(
                    f"SELECT event_id, status, received_at, processed_at, message_id FROM {tables['inbound_event']} "
                    f"WHERE provider = %s AND event_id IN ({{marks}})", [s.event_key for s in items], (PROVIDER[channel],)):
                events[(channel, event_id)] = (status, epoch(received_at), epoch(processed_at), message_id)
    first_frame: dict[int, float] = {}
    per_socket: list[set[int]] = []
    for sock_frames in frames:
        seen = set()
        for at, message_id in sock_frames:
            seen.add(message_id)
            if message_id not in first_frame or at < first_frame[message_id]:
                first_frame[message_id] = at
        per_socket.append(seen)

    latency: dict[str, list[float]] = defaultdict(list)
    answer: dict[str, list[float]] = defaultdict(list)
    split: dict[str, list[float]] = defaultdict(list)
    errors: Counter[str] = Counter()
    loss = Counter()
    outcome_by_channel: dict[str, Counter[str]] = defaultdict(Counter)
    expected_ids: set[int] = set()
    for s in sends:
        outcome_by_channel[s.channel][s.outcome or "not sent"] += 1
        rows = messages.get((s.channel, s.key), [])
        event = events.get((s.channel, s.event_key)) if s.channel in PROVIDER else None
        if not s.accepted:
            errors[f"{s.channel}: {s.outcome or 'not sent'}"] += 1
            if rows:
                loss["stored_though_refused"] += 1  # a timeout whose request still landed: not an error of the desk
            continue
        loss["accepted"] += 1
        if s.answered_at is not None and s.sent_at is not None:
            answer[s.channel].append(s.answered_at - s.sent_at)
        if event is not None and event[0] == "failed":
            loss["event_failed"] += 1
        if s.channel in PROVIDER and event is None:
            loss["event_missing"] += 1
        if not rows:
            # Stored but not yet processed (the drain was cut off) is late, not lost.
            loss["still_pending" if event is not None and event[0] == "pending" else "lost"] += 1
            continue
        if len(rows) > 1:
            loss["doubled"] += 1
        message_id = min(rows)
        if s.channel == "chat" and s.ack_message_id is not None and s.ack_message_id != message_id:
            loss["ack_mismatch"] += 1
        expected_ids.add(message_id)
        if message_id not in first_frame:
            loss["not_on_socket"] += 1
            continue
        value = first_frame[message_id] - s.sent_at
        latency[s.channel].append(value)
        latency["all"].append(value)
        if event is not None and event[1] is not None and event[2] is not None:
            # Where the time goes: the POST until the event row, the queue, the worker and the push.
            split["post_to_row"].append(event[1] - (s.sent_at + wall_offset))
            split["row_to_claim"].append(event[2] - event[1])
            split["claim_to_frame"].append(first_frame[message_id] + wall_offset - event[2])

    def dist(values: list[float]) -> dict:
        return {"count": len(values), "p50_ms": _ms(percentile(values, 50)), "p90_ms": _ms(percentile(values, 90)),
                "p99_ms": _ms(percentile(values, 99)), "max_ms": _ms(max(values) if values else None),
                "mean_ms": _ms(statistics.fmean(values) if values else None)}

    sockets = [{"seen": len(seen & expected_ids), "of": len(expected_ids)} for seen in per_socket]
    return {
        "sends": {c: dict(v) for c, v in outcome_by_channel.items()},
        "errors": dict(errors),
        "loss": {k: loss.get(k, 0) for k in ("accepted", "lost", "still_pending", "doubled", "not_on_socket", "event_missing", "event_failed",
                                             "ack_mismatch", "stored_though_refused")},
        "latency_ms": {c: dist(v) for c, v in sorted(latency.items())},
        "answer_ms": {c: dist(v) for c, v in sorted(answer.items())},
        "split_ms": {k: dist(v) for k, v in split.items()},
        "sockets": sockets,
    }
