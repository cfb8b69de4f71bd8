"""Where the time goes: one ASGI process and one worker sampled by py-spy, or cProfile without it.

py-spy (`pip install py-spy`, not a dependency of the desk) samples every thread of the process
and its children (Celery's pool) from outside; its raw output (one line per distinct stack, with
a sample count) is summed per function: cumulative = samples with the function anywhere on the
stack, self = samples with it on top. Without py-spy, `python -m bench.loadgen_profile OUT -- ARGS`
runs the command under cProfile with every thread profiled (Django's sync views run in
asgiref's threads), written as pstats at exit.
"""
from __future__ import annotations

import cProfile
import pstats
import re
import runpy
import shutil
import signal
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOP = 30


def py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


@dataclass
class Profiler:
    """py-spy attaches to the running process for the measured phase only (start-up excluded);
    cProfile wraps the whole process life (start-up included)."""

    kind: str  # "py-spy" or "cprofile"
    out: Path
    cpu_only: bool = False  # py-spy --gil: only the thread holding the GIL, so waits do not count
    _spy: subprocess.Popen | None = None
    covered: str = ""

    @classmethod
    def make(cls, base: Path, *, cpu_only: bool = False) -> Profiler:
        if py_spy():
            return cls("py-spy", base.with_suffix(".txt"), cpu_only=cpu_only)
        return cls("cprofile", base.with_suffix(".pstats"))

    def argv(self, python_args: list[str]) -> list[str]:
        """The command running `python <python_args>` (under cProfile when py-spy is missing)."""
        if self.kind == "py-spy":
            return [sys.executable, *python_args]
        self.covered = "the whole process life, start-up included"
        return [sys.executable, "-m", "bench.loadgen_profile", str(self.out), "--", *python_args]

    def attach(self, pid: int, what: str) -> None:
        if self.kind != "py-spy":
            return
        # --nonblocking: the process is never paused, so its timings stay its own;
        # --subprocesses: Celery's pool children too.
        self._spy = subprocess.Popen([py_spy(), "record", "--pid", str(pid), "--format", "raw", "--rate", "100", "--subprocesses",
                                      "--nonblocking", *(["--gil"] if self.cpu_only else []), "-o", str(self.out)],
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(self.out.with_suffix(".log"), "ab"), start_new_session=True)  # noqa: SIM115
        self.covered = what

    def detach(self) -> None:
        if self._spy is None or self._spy.poll() is not None:
            return
        self._spy.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        try:
            self._spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._spy.kill()
            self._spy.wait(timeout=5)

    def top(self) -> dict:
        self.detach()
        if not self.out.exists():
            log = self.out.with_suffix(".log")
            return {"kind": self.kind, "error": f"no profile written ({log.read_text(errors='replace')[-500:] if log.exists() else ''})"}
        result = spy_top(self.out) if self.kind == "py-spy" else pstats_top(self.out)
        return {**result, "covers": self.covered}


_LINE = re.compile(r":\d+\)$")


def _short(frame: str) -> str:
    """'get (django/db/models/query.py)': the function and its file, without the line or the install prefix."""
    frame = _LINE.sub(")", frame)
    frame = frame.replace(str(REPO) + "/", "")
    return re.sub(r"\(.*?(site-packages|lib/python3\.\d+)/", "(", frame)


# Frames on (nearly) every stack say nothing about where the time goes: entry points, event
# loops, thread and pool machinery.
_PLUMBING = re.compile(r"\((<frozen |runpy|click/|celery/bin/|celery/__main__|uvicorn/(main|server|_compat|__main__)|"
                       r"asyncio/(runners|base_events|events)|threading|concurrent/futures/thread|billiard/|"
                       r"celery/(worker|concurrency|apps/worker|bootsteps)|kombu/asynchronous)")


_DESK_PACKAGES = tuple(f"({d.name}/" for d in REPO.iterdir()
                       if (d / "__init__.py").exists() and d.name not in ("tests", "bench"))


def _is_desk(frame: str) -> bool:
    return any(package in frame for package in _DESK_PACKAGES)


def spy_top(path: Path) -> dict:
    cumulative: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = [_short(f) for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        n = int(count)
        total += n
        for frame in set(frames):
            cumulative[frame] += n
        own[frames[-1]] += n

    def rows(counter: Counter[str], keep) -> list[dict]:
        picked = [(f, n) for f, n in counter.most_common() if keep(f)][:TOP]
        return [{"function": f, "samples": n, "percent": round(100 * n / total, 1)} for f, n in picked]

    return {
        "kind": "py-spy", "samples": total,
        "cumulative": rows(cumulative, lambda f: not _PLUMBING.search(f)),
        "desk_cumulative": rows(cumulative, _is_desk),
        "self": rows(own, lambda f: True),
    }


def pstats_top(path: Path) -> dict:
    stats = pstats.Stats(str(path))
    total = stats.total_tt or 1
    rows = [(f"{name} ({_short('(' + file + ')')[1:-1]})", tt, ct) for (file, _line, name), (_cc, _nc, tt, ct, _callers)
            in stats.stats.items()]
    by_cum = sorted(rows, key=lambda r: -r[2])[:TOP]
    by_self = sorted(rows, key=lambda r: -r[1])[:TOP]
    return {
        "kind": "cprofile", "samples": None, "seconds": round(total, 2),
        "cumulative": [{"function": f, "seconds": round(ct, 3), "percent": round(100 * ct / total, 1)} for f, _tt, ct in by_cum],
        "self": [{"function": f, "seconds": round(tt, 3), "percent": round(100 * tt / total, 1)} for f, tt, _ct in by_self],
    }


def _run_profiled(out: str, argv: list[str]) -> None:
    """Run `python argv` (-m module ... or script ...) with every thread under cProfile; pstats at exit."""
    profiles: list[cProfile.Profile] = []

    def start_thread_profile(*_args: object) -> None:
        # The first profile event of a new thread: hand the thread to its own profiler.
        profile = cProfile.Profile()
        profiles.append(profile)
        profile.enable()

    threading.setprofile(start_thread_profile)
    main = cProfile.Profile()
    profiles.append(main)
    if argv[0] == "-m":
        sys.argv = [argv[1], *argv[2:]]
        main.enable()
        try:
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        except SystemExit:
            pass
        finally:
            main.disable()
    else:
        sys.argv = argv
        main.enable()
        try:
            runpy.run_path(argv[0], run_name="__main__")
        except SystemExit:
            pass
        finally:
            main.disable()
    threading.setprofile(None)
    combined = pstats.Stats(main)
    for profile in profiles[1:]:
        try:
            combined.add(pstats.Stats(profile))
        except TypeError:
            pass  # a thread that never ran a profiled call
    combined.dump_stats(out)


if __name__ == "__main__":
    out, separator, *rest = sys.argv[1:]
    if separator != "--" or not rest:
        raise SystemExit("usage: python -m bench.loadgen_profile OUT -- ARGS")
    _run_profiled(out, rest)
