"""Load generator: a realistic mix of email, SMS and chat into the real stack, with agents listening.

  python -m bench.loadgen --rate 100 --duration 60            sustained open-loop load
  python -m bench.loadgen --duration 0 --burst 500            a burst of webhooks only
  python -m bench.loadgen --dataset ...                       the same, against a desk of 100k
                                                              conversations / 1M messages
  python -m bench.loadgen dataset --conversations 100000 --messages 1000000 [--database-url URL]
                                                              fill a desk's database (DATABASE_URL)

The stack, all on 127.0.0.1 and stopped by process id at the end: a throwaway PostgreSQL
cluster (fsync on; or SQLite with --db sqlite, or a fresh database on an existing server with
--database-url), redis-server, --asgi uvicorn processes, --workers Celery workers (-c
--concurrency each) and beat. The desk: an email inbox (Postmark inbound webhooks, built by
tests/providers.py), an SMS inbox on a Twilio number (form posts signed with X-Twilio-Signature
over the URL called), a web chat inbox (visitors are real widget sessions on /ws/widget/), and
agents whose dashboard sockets (/ws/agent/) are open on every ASGI process.

Traffic is open loop at --rate messages/s in the --mix, round-robin over the ASGI processes;
--repeat of the messages come from customers who wrote a little earlier, into their thread.
After a short warm-up, each phase (the sustained load, then the burst) is sent, the backlog
drained, and every send looked up in the database by the id the desk stores for it
(bench/loadgen_check.py). Reported per phase: accepted per second per channel, errors by kind,
latency from the send to the first agent frame of that very message (p50/p90/p99/max, per
channel), the backlog every second (sent, accepted, in the timeline, frames seen, Celery queue
lengths, unprocessed inbound events), and the loss check: every accepted message in the
database exactly once and seen on an agent socket. --profile runs the first ASGI process and
the first worker under py-spy (or cProfile) and adds their top functions.

The desk's processes get this environment (bench/infra.py desk_env), so its settings can be
varied per run: `DB_POOL_MAX_SIZE=32 python -m bench.loadgen ...`.

Prints a table and writes bench/results/loadgen-<time>.json. Bounded: --duration at most
600 s, at most --max-messages messages per phase. The exit status is non-zero only when the
run could not happen, never because of a figure.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import infra, load
from bench import loadgen_check as check
from bench import loadgen_profile as profiling
from bench import loadgen_traffic as traffic

MAX_DURATION = 600.0
MAX_MESSAGES = 100_000


def note(text: str) -> None:
    print(f"[loadgen {time.strftime('%H:%M:%S')}] {text}", flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=float, default=100, help="messages per second, all channels (default 100)")
    p.add_argument("--duration", type=float, default=60, help=f"seconds of sustained load, 0 for none (default 60, at most {MAX_DURATION:.0f})")
    p.add_argument("--mix", default="email=0.5,sms=0.3,chat=0.2", help="channel weights (default email=0.5,sms=0.3,chat=0.2)")
    p.add_argument("--repeat", type=float, default=0.3, help="share of messages from a customer writing again (default 0.3)")
    p.add_argument("--burst", type=float, default=None, help="after the load: a burst of this many webhooks/s (e.g. 500; 0 for none)")
    p.add_argument("--burst-seconds", type=float, default=2, help="length of the burst (default 2)")
    p.add_argument("--asgi", type=int, default=2, help="uvicorn processes (default 2)")
    p.add_argument("--workers", type=int, default=2, help="Celery worker processes (default 2)")
    p.add_argument("--concurrency", type=int, default=1, help="pool size of each worker (-c, default 1)")
    p.add_argument("--agents", type=int, default=2, help="agents with a socket on every ASGI process (default 2)")
    p.add_argument("--db", choices=("postgres", "sqlite"), default="postgres", help="a throwaway cluster, or SQLite (default postgres)")
    p.add_argument("--database-url", default=None,
                   help="a PostgreSQL server to use instead of a throwaway cluster: a fresh database is made on it and dropped")
    p.add_argument("--sla", action="store_true",
                   help="an SLA policy on every conversation (first response 1 h, resolution 1 day), as most teams run")
    p.add_argument("--dataset", action="store_true", help="fill the desk before the load (--dataset-conversations, --dataset-messages)")
    p.add_argument("--dataset-conversations", type=int, default=100_000)
    p.add_argument("--dataset-messages", type=int, default=1_000_000)
    p.add_argument("--warmup", type=float, default=2, help="seconds of warm-up at up to 20 messages/s, not measured (default 2)")
    p.add_argument("--drain-seconds", type=float, default=120, help="longest wait for the backlog after a phase (default 120)")
    p.add_argument("--timeout", type=float, default=30, help="per request / chat ack (default 30)")
    p.add_argument("--connections", type=int, default=256, help="most keep-alive connections per ASGI process (default 256)")
    p.add_argument("--max-messages", type=int, default=MAX_MESSAGES, help=f"cap per phase (default {MAX_MESSAGES})")
    p.add_argument("--profile", action="store_true", help="profile the first ASGI process and worker (py-spy, else cProfile)")
    p.add_argument("--profile-cpu", action="store_true",
                   help="with --profile and py-spy: sample only the thread holding the GIL (CPU, not waits)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--pg-bin", default=str(infra.PG_BIN))
    p.add_argument("--results-dir", default=str(REPO / "bench" / "results"))
    p.add_argument("--tmp-dir", default=None)
    p.add_argument("--keep-tmp", action="store_true")
    args = p.parse_args(argv)
    if args.duration < 0 or args.rate <= 0:
        p.error("--rate must be positive and --duration not negative")
    if args.duration > MAX_DURATION:
        note(f"--duration capped at {MAX_DURATION:.0f} s")
        args.duration = MAX_DURATION
    args.burst_seconds = min(args.burst_seconds, MAX_DURATION)
    args.max_messages = min(args.max_messages, MAX_MESSAGES)
    try:
        args.mix_weights = traffic.parse_mix(args.mix)
    except ValueError as err:
        p.error(str(err))
    if args.burst is not None and args.burst < 0:
        p.error("--burst must not be negative")
    if args.burst == 0:
        args.burst = None
    if args.burst is not None:
        webhooks = {k: v for k, v in args.mix_weights.items() if k != "chat"}
        args.burst_mix = {k: v / sum(webhooks.values()) for k, v in webhooks.items()} if webhooks else {"email": 1.0}
    if args.duration == 0 and args.burst is None:
        p.error("nothing to do: --duration 0 and no --burst")
    if args.asgi < 1 or args.workers < 1 or args.concurrency < 1 or args.agents < 1:
        p.error("--asgi, --workers, --concurrency and --agents are at least 1")
    return args


# The stack -----------------------------------------------------------------------------------

class Stack:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.services: list[infra.Service] = []
        self.cluster: infra.PgCluster | None = None
        self.created_database: tuple[str, str] | None = None  # (admin url, name) to drop
        self.profiles: list[tuple[str, profiling.Profiler, infra.Service]] = []
        self.ports: list[int] = []
        self.log = workdir / "setup.log"

    def start(self) -> dict:
        args, workdir = self.args, self.workdir
        redis_service, self.redis_url = infra.redis_start(workdir)
        self.services.append(redis_service)
        if args.database_url:
            name = f"loadgen_{os.getpid()}_{int(time.time())}"
            _pg_admin(args.database_url, f'CREATE DATABASE "{name}"')
            self.created_database = (args.database_url, name)
            self.database_url = urlsplit(args.database_url)._replace(path=f"/{name}").geturl()
        elif args.db == "postgres":
            missing = infra.pg_available(Path(args.pg_bin))
            if missing:
                raise infra.BenchError(f"PostgreSQL cannot run here: {missing} (use --db sqlite or --database-url)")
            self.cluster = infra.pg_start(workdir, Path(args.pg_bin))
            _pg_admin(self.cluster.url("postgres"), "CREATE DATABASE desk")
            self.database_url = self.cluster.url("desk")
        else:
            self.database_url = f"sqlite:///{workdir / 'desk.sqlite3'}"
        self.env = infra.desk_env(database_url=self.database_url, redis_url=self.redis_url, media_root=workdir / "media")
        note("migrating")
        infra.manage(self.env, "migrate", "--noinput", "-v0", log=self.log)
        desk = json.loads(_django_step(self.env, "setup", "--agents", str(args.agents - 1), *(["--sla"] if args.sla else []),
                                       log=self.log))
        if args.dataset:
            note(f"dataset: {args.dataset_conversations:,} conversations, {args.dataset_messages:,} messages")
            desk["dataset"] = json.loads(_django_step(self.env, "dataset", "--conversations", str(args.dataset_conversations),
                                                      "--messages", str(args.dataset_messages), log=self.log, timeout=1800))
            note(f"dataset written in {desk['dataset']['seconds']} s: {desk['dataset']['rows']}")
        note(f"starting {args.asgi} ASGI, {args.workers} workers (-c {args.concurrency}), beat")
        for n in range(args.asgi):
            self.ports.append(self._uvicorn(profile=args.profile and n == 0))
        for n in range(args.workers):
            self._worker(profile=args.profile and n == 0)
        self.services.append(infra.start("beat", [sys.executable, "-m", "celery", "-A", "helpdesk", "beat", "-s",
                                                  str(workdir / "beat-schedule"), "--loglevel", "WARNING"],
                                         log=workdir / "beat.log", env=self.env))
        for port in self.ports:
            asyncio.run(load.wait_http(port, timeout=60))
        return desk

    def _uvicorn(self, *, profile: bool) -> int:
        port = infra.free_port()
        log = self.workdir / f"uvicorn-{port}.log"
        argv = ["-m", "uvicorn", "helpdesk.asgi:application", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                "--no-access-log", "--log-level", "warning"]
        if profile:
            profiler = profiling.Profiler.make(self.workdir / f"profile-asgi-{port}", cpu_only=self.args.profile_cpu)
            service = infra.start("uvicorn (profiled)", profiler.argv(argv), log=log, env=self.env, stop_signal=signal.SIGINT)
            self.profiles.append((f"asgi :{port}", profiler, service))
        else:
            service = infra.start("uvicorn", [sys.executable, *argv], log=log, env=self.env)
        self.services.append(service)
        infra.wait_for_port(port, timeout=60, proc=service.proc, log=log)
        return port

    def _worker(self, *, profile: bool) -> None:
        n = len([s for s in self.services if s.name.startswith("celery")])
        log = self.workdir / f"celery-{n}.log"
        argv = ["-m", "celery", "-A", "helpdesk", "worker", "-Q", "inbound,outbound,sla,default", "-c", str(self.args.concurrency),
                "-n", f"loadgen-{os.getpid()}-{n}@%h", "--loglevel", "WARNING", "--without-heartbeat", "--without-gossip",
                "--without-mingle"]
        if profile:
            profiler = profiling.Profiler.make(self.workdir / f"profile-worker-{n}", cpu_only=self.args.profile_cpu)
            # cProfile sees only its own process: the task then runs in it (solo pool), not in a pool child.
            argv = argv + (["-P", "solo"] if profiler.kind == "cprofile" else [])
            service = infra.start(f"celery {n} (profiled)", profiler.argv(argv), log=log, env=self.env, stop_signal=signal.SIGINT)
            self.profiles.append((f"worker {n}", profiler, service))
        else:
            # SIGQUIT: a cold shutdown; the load generator does not need the pool to finish.
            service = infra.start(f"celery {n}", [sys.executable, *argv], log=log, env=self.env, stop_signal=signal.SIGQUIT)
        self.services.append(service)

    def dead(self) -> list[str]:
        return [f"{s.name} exited ({s.proc.returncode}){infra.log_tail(s.log, 15)}" for s in self.services if s.proc.poll() is not None]

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time of each service with its children (Celery's pool) so far."""
        return {f"{s.name} [{s.proc.pid}]": round(_tree_cpu(s.proc.pid), 2) for s in self.services}

    def stop(self) -> None:
        for service in reversed(self.services):
            try:
                service.stop(timeout=30)
            except Exception as err:  # noqa: BLE001 - stop the others all the same
                note(f"stopping {service.name}: {err}")
        if self.cluster is not None:
            self.cluster.stop()
        if self.created_database is not None:
            admin, name = self.created_database
            _pg_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _pg_admin(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


def _django_step(env: dict[str, str], *args: str, log: Path, timeout: float = 300) -> str:
    result = subprocess.run([sys.executable, "-m", "bench.loadgen_desk", *args], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=timeout, check=False)
    with open(log, "a") as handle:
        handle.write(f"$ bench.loadgen_desk {' '.join(args)}\n{result.stdout}{result.stderr}\n")
    if result.returncode != 0:
        raise infra.BenchError(f"bench.loadgen_desk {' '.join(args)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return result.stdout.strip().splitlines()[-1]


def _tree_cpu(root: int) -> float:
    """utime + stime of a process and its descendants, from /proc (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rpartition(")")[2].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0.0)
        todo += [p for p, parent in parents.items() if parent == pid]
    return total


# A phase ---------------------------------------------------------------------------------------

class Run:
    """What stays up across phases: connection pools, agent sockets, the database reader, Redis."""

    def __init__(self, args: argparse.Namespace, stack: Stack, desk: dict) -> None:
        import redis

        self.args = args
        self.stack = stack
        self.desk = desk
        self.tables = desk["tables"]
        self.db = check.DeskDb(stack.database_url)
        self.redis = redis.Redis.from_url(stack.redis_url)
        self.offset = 0
        self.profiled_phase = "sustained" if args.duration > 0 else "burst"

    async def phase(self, name: str, *, rate: float, duration: float, mix: dict[str, float], repeat: float) -> dict:
        args = self.args
        count = min(round(rate * duration), args.max_messages)
        duration = count / rate
        plan = traffic.plan_phase(rate=rate, duration=duration, mix=mix, repeat=repeat, ports=self.stack.ports, desk=self.desk,
                                  tag=f"{name}{int(time.time()) % 100000}", seed=args.seed + self.offset,
                                  webhook_auth=infra.WEBHOOK_AUTH, offset=self.offset)
        self.offset += len(plan.sends)
        baseline = (await asyncio.to_thread(self.db.rows, f"SELECT coalesce(max(id), 0) FROM {self.tables['message']}"))[0][0]
        note(f"{name}: {len(plan.sends)} messages at {rate:g}/s over {duration:.1f} s "
             f"({', '.join(f'{c} {sum(1 for s in plan.sends if s.channel == c)}' for c in traffic.CHANNELS)})")
        pools = {port: traffic.Pool(port, limit=args.connections, timeout=args.timeout) for port in self.stack.ports}
        load_before, cpu_before, own_before = os.getloadavg(), self.stack.cpu_seconds(), _own_cpu()
        wall_offset = time.time() - time.perf_counter()
        profiled = name == self.profiled_phase
        if profiled:
            for _, profiler, service in self.stack.profiles:
                profiler.attach(service.proc.pid, f"the {name} phase, from its first send until drained")
        sockets = [traffic.AgentSocket(port, session) for session in self.desk["sessions"] for port in self.stack.ports]
        for sock in sockets:
            await sock.__aenter__()
        samples: list[dict] = []
        try:
            t0 = time.perf_counter()
            sampler = asyncio.create_task(self._sample(plan, sockets, baseline, t0, samples))
            sent = await traffic.send_phase(plan, pools=pools, desk=self.desk, timeout=args.timeout)
            accepted = sum(1 for s in plan.sends if s.accepted)
            note(f"{name}: sent in {sent.finished - sent.started:.1f} s, {accepted}/{len(plan.sends)} accepted; draining")
            drain = await self._drain(accepted, sockets, baseline, sent, t0)
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
            # Closed by the server before the end of the phase (frames after that are missed).
            closed = [{"port": s.port, "after_s": round(s.closed_at - t0, 1), "code": s.close_code} for s in sockets if not s.open]
        finally:
            for sock in sockets:
                await sock.__aexit__(None, None, None)
            for pool in pools.values():
                await pool.close()
        if profiled:
            for _, profiler, _ in self.stack.profiles:
                profiler.detach()
        load_after, cpu_after, own_after = os.getloadavg(), self.stack.cpu_seconds(), _own_cpu()
        frames = [list(sock.created) for sock in sockets]
        result = await asyncio.to_thread(check.check, plan.sends, frames, self.db, self.tables, wall_offset=wall_offset)
        window = plan.duration if plan.duration > 0 else 1
        per_channel = {c: sum(1 for s in plan.sends if s.channel == c and s.accepted) for c in traffic.CHANNELS}
        loss = result["loss"]
        result.update({
            "phase": name, "rate_per_s": rate, "planned": len(plan.sends), "planned_seconds": round(plan.duration, 3),
            "send_seconds": round(sent.finished - sent.started, 3),
            "sent": sum(1 for s in plan.sends if s.sent_at is not None),
            "accepted": sum(per_channel.values()), "accepted_by_channel": {c: v for c, v in per_channel.items() if v},
            "accepted_per_s": {**{c: round(v / window, 1) for c, v in per_channel.items() if v}, "all": round(sum(per_channel.values()) / window, 1)},
            "client_lag_ms": {"p50": load._ms(load.percentile(sent.lag, 50)), "p99": load._ms(load.percentile(sent.lag, 99)),
                              "max": load._ms(max(sent.lag) if sent.lag else None)},
            "connections_busy_max": sent.busy_max,
            "visitors": {"sessions": len(plan.visitors), "failed": sorted({v.error for v in plan.visitors.values() if v.error})[:5]},
            "repeat_messages": sum(1 for s in plan.sends if s.repeat),
            "retried_on_stale_connection": sum(1 for s in plan.sends if s.retried),
            "drain": drain, "agent_sockets_closed_early": closed,
            "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in load_after]},
            "cpu_seconds": {k: round(cpu_after.get(k, 0) - cpu_before.get(k, 0), 2) for k in cpu_after}
            | {"load generator": round(own_after - own_before, 2)},
            "backlog": samples,
            "ok": loss["lost"] == loss["still_pending"] == loss["doubled"] == loss["not_on_socket"] == 0 and not result["errors"]
            and drain["drained"],
        })
        dead = self.stack.dead()
        if dead:
            result["dead_services"] = dead
        return result

    async def _counts(self, baseline: int) -> dict:
        def read() -> dict:
            return check.backlog_sample(self.db, self.tables, baseline) | {"queues": check.queue_lengths(self.redis)}

        return await asyncio.to_thread(read)

    async def _sample(self, plan: traffic.Plan, sockets: list, baseline: int, t0: float, samples: list[dict]) -> None:
        while True:
            await asyncio.sleep(1 - (time.perf_counter() - t0) % 1)
            counts = await self._counts(baseline)
            samples.append({
                "t": round(time.perf_counter() - t0, 1),
                "sent": sum(1 for s in plan.sends if s.sent_at is not None),
                "accepted": sum(1 for s in plan.sends if s.accepted),
                "frames": len({mid for sock in sockets for _, mid in sock.created}),
                **counts,
            })

    async def _drain(self, accepted: int, sockets: list, baseline: int, sent, t0: float) -> dict:
        """Until every accepted message is in the timeline and every new message was on a socket."""
        end_of_sending = sent.finished
        deadline = end_of_sending + self.args.drain_seconds
        in_timeline_at = None
        while True:
            counts = await self._counts(baseline)
            now = time.perf_counter()
            if in_timeline_at is None and counts["in_timeline"] >= accepted:
                in_timeline_at = now
            queued = counts["queues"]["inbound"] + counts["queues"]["unacked"]
            done = in_timeline_at is not None and counts["events_pending"] == 0 and queued == 0
            if done:
                ids = await asyncio.to_thread(check.new_message_ids, self.db, self.tables, baseline)
                done = set(ids) <= {mid for sock in sockets for _, mid in sock.created}
                if not done and not any(sock.open for sock in sockets):
                    break  # every agent socket was closed: no frame can come any more
            if done or now > deadline:
                break
            await asyncio.sleep(0.25)
        await asyncio.sleep(0.3)  # frames already on the wire
        return {
            "drained": done, "cap_seconds": self.args.drain_seconds,
            "seconds_after_sending": round(now - end_of_sending, 2),
            # From the first send until every accepted message was in the timeline.
            "all_in_timeline_after_s": round(in_timeline_at - t0, 2) if in_timeline_at else None,
            "left": counts,
        }


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# The report --------------------------------------------------------------------------------------

def table(report: dict) -> str:
    lines = []
    for r in report["phases"]:
        if "error" in r:
            lines.append(f"\n{r['phase']}: ERROR {r['error']}")
            continue
        lat = r["latency_ms"]
        loss = r["loss"]
        lines.append(f"\n{r['phase']}: {r['planned']} messages at {r['rate_per_s']:g}/s planned over {r['planned_seconds']} s "
                     f"(sent in {r['send_seconds']} s; client lag p99 {r['client_lag_ms']['p99']} ms; "
                     f"load average {r['load_average']['before'][0]} -> {r['load_average']['after'][0]})")
        lines.append(f"  {'channel':8} {'accepted':>9} {'acc/s':>7} {'answer p50':>11} {'answer p99':>11} "
                     f"{'e2e p50':>8} {'p90':>8} {'p99':>8} {'max':>8}  ms")
        for c in [*traffic.CHANNELS, "all"]:
            if c not in lat and c not in r["accepted_per_s"]:
                continue
            l = lat.get(c, {})
            a = r["answer_ms"].get(c, {})
            accepted = r["accepted"] if c == "all" else r["accepted_by_channel"].get(c, 0)
            lines.append(f"  {c:8} {accepted:>9} {r['accepted_per_s'].get(c, 0):>7} {_f(a.get('p50_ms')):>11} {_f(a.get('p99_ms')):>11} "
                         f"{_f(l.get('p50_ms')):>8} {_f(l.get('p90_ms')):>8} {_f(l.get('p99_ms')):>8} {_f(l.get('max_ms')):>8}")
        split = r["split_ms"]
        if split:
            lines.append("  webhooks, p50/p99 ms: POST->row " + "/".join(_f(split['post_to_row'][k]) for k in ('p50_ms', 'p99_ms'))
                         + ", row->worker claim " + "/".join(_f(split['row_to_claim'][k]) for k in ('p50_ms', 'p99_ms'))
                         + ", claim->frame " + "/".join(_f(split['claim_to_frame'][k]) for k in ('p50_ms', 'p99_ms')))
        lines.append(f"  loss check: accepted {loss['accepted']}, lost {loss['lost']}, doubled {loss['doubled']}, "
                     f"still pending when the drain stopped {loss['still_pending']}, "
                     f"not on a socket {loss['not_on_socket']}, failed events {loss['event_failed']}; "
                     f"every socket saw {min((s['seen'] for s in r['sockets']), default=0)}/{r['sockets'][0]['of'] if r['sockets'] else 0}")
        lines.append(f"  errors: {r['errors'] or 'none'}")
        if r.get("agent_sockets_closed_early"):
            lines.append(f"  agent sockets closed by the server during the phase: {r['agent_sockets_closed_early']}")
        d = r["drain"]
        lines.append(f"  drain: {'done' if d['drained'] else 'NOT drained'} {d['seconds_after_sending']} s after the last answer; "
                     f"all accepted in the timeline {d['all_in_timeline_after_s']} s after the first send")
        peak = max(r["backlog"], key=lambda s: s["events_pending"], default=None)
        if peak:
            lines.append(f"  backlog peak: {peak['events_pending']} unprocessed events, inbound queue {peak['queues']['inbound']} "
                         f"at t={peak['t']} s")
        lines.append("  CPU s: " + ", ".join(f"{k.split(' [')[0]} {v}" for k, v in r["cpu_seconds"].items()))
    for name, top in report.get("profiles", {}).items():
        if "error" in top:
            lines.append(f"\nprofile {name}: {top['error']}")
            continue
        lines.append(f"\nprofile {name} ({top.get('kind')}, {top.get('samples') or top.get('seconds')} "
                     f"{'samples' if top.get('samples') else 's'}, {top.get('covers')}): top by cumulative")
        for row in top.get("cumulative", [])[:12]:
            lines.append(f"  {row['percent']:5.1f}%  {row['function']}")
        if top.get("desk_cumulative"):
            lines.append("  the desk's own code, cumulative:")
            for row in top["desk_cumulative"][:8]:
                lines.append(f"  {row['percent']:5.1f}%  {row['function']}")
        lines.append("  top by self:")
        for row in top.get("self", [])[:8]:
            lines.append(f"  {row['percent']:5.1f}%  {row['function']}")
    return "\n".join(lines)


def _f(value: object) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, (int, float)) else str(value)


# Entry points --------------------------------------------------------------------------------

def run(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="helpdesk-loadgen-", dir=args.tmp_dir))
    note(f"temp dir {workdir}")
    stack = Stack(args, workdir)
    report: dict = {
        "settings": {k: v for k, v in vars(args).items() if k not in ("mix_weights",)},
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
        "phases": [],
    }
    code = 0
    try:
        try:
            desk = stack.start()
        except Exception as err:  # noqa: BLE001 - could not run: say why, exit non-zero
            traceback.print_exc()
            note(f"the stack did not start: {err}")
            return 2
        report["database"] = "postgresql" if not stack.database_url.startswith("sqlite") else "sqlite"
        if stack.cluster is not None:
            report["database_version"] = stack.cluster.version
        report["dataset"] = desk.get("dataset")
        the_run = Run(args, stack, desk)
        phases = []
        if args.warmup > 0:
            phases.append(("warmup", min(args.rate, 20.0), args.warmup, args.mix_weights, args.repeat))
        if args.duration > 0:
            phases.append(("sustained", args.rate, args.duration, args.mix_weights, args.repeat))
        if args.burst is not None:
            phases.append(("burst", args.burst, args.burst_seconds, args.burst_mix, 0.0))
        for name, rate, duration, mix, repeat in phases:
            try:
                result = asyncio.run(the_run.phase(name, rate=rate, duration=duration, mix=mix, repeat=repeat))
            except Exception as err:  # noqa: BLE001 - report, and try the next phase
                traceback.print_exc()
                result = {"phase": name, "error": f"{type(err).__name__}: {err}"}
                code = 2
            report["phases"].append(result)
            dead = stack.dead()
            if dead:
                note("a service died: " + "; ".join(dead))
                code = 2
                break
        the_run.db.close()
    finally:
        stack.stop()
        report["profiles"] = {name: profiler.top() for name, profiler, _ in stack.profiles}
        if args.keep_tmp:
            note(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out_dir = Path(args.results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"loadgen-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print(table(report))
    print(f"\nJSON: {out}")
    return code


def dataset_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.loadgen dataset",
                                description="Fill a desk's database (made by the load generator's setup, or any desk with "
                                            "an inbox) with conversations and messages, fast.")
    p.add_argument("--conversations", type=int, default=100_000)
    p.add_argument("--messages", type=int, default=1_000_000)
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL"), help="default: $DATABASE_URL")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    if not args.database_url:
        p.error("no --database-url and no DATABASE_URL")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "helpdesk.settings.base"),
           "DATABASE_URL": args.database_url}
    env.setdefault("SECRET_KEY", "loadgen-dataset")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "bench.loadgen_desk", "dataset", "--conversations", str(args.conversations),
                             "--messages", str(args.messages), "--seed", str(args.seed)], cwd=REPO, env=env, check=False)
    note(f"dataset step exited {result.returncode} after {time.monotonic() - started:.1f} s")
    return result.returncode


def main(argv: list[str]) -> int:
    if argv[:1] == ["dataset"]:
        return dataset_main(argv[1:])
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
