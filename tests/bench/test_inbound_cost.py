"""`python -m bench.inbound_cost` at a tiny size: it processes every event and its figures add up."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_inbound_cost_processes_every_event_and_reports_its_statements() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL"))}  # its own SQLite file

    proc = subprocess.run([sys.executable, "-m", "bench.inbound_cost", "--events", "5", "--top", "3"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)

    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "database: sqlite; 5 new email conversations" in out
    total, sql, statements = map(float, re.search(r"worker service: ([\d.]+) ms per message, of which SQL ([\d.]+) ms in ([\d.]+) statements", out).groups())
    assert 0 < sql < total
    assert statements >= 10  # claim, contact, conversation, ticket, message, event, SLA, ...
    listed = re.findall(r"^\s+([\d.]+) ms\s+([\d.]+)x\s+(\S.*)$", out, flags=re.M)
    assert len(listed) == 3 and all(float(ms) > 0 for ms, _, _ in listed)
