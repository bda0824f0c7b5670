"""The chaos run (``benchmarks/chaos.py``) for 3 minutes with a fixed seed: 3 machines, a
3-member etcd, 300 units, every kind of fault, a client's burst in the middle; it fails
on any broken invariant (its summary and the history file's path in the message).

It boots its own sandbox beside the session's, named after ``$FLEETD_SANDBOX``
(``c`` and three hex digits of a hash of it; ``chs`` beside the default one), and
takes it down at the end.  About 5 minutes in all.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from fleetd.sandbox import teardown
from fleetd.sandbox.state import instance

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.timeout(480)]

ROOT = Path(__file__).resolve().parents[2]
SEED = 17
DURATION = 180


def _name(session: str) -> str:
    return "c" + hashlib.sha256(session.encode()).hexdigest()[:3] if session else "chs"


def test_three_minutes_of_faults_break_no_invariant(session_sandbox: object) -> None:
    name = _name(instance().name)
    history = ROOT / "build" / f"chaos-ci-{SEED}.jsonl"
    argv = [
        sys.executable,
        str(ROOT / "benchmarks" / "chaos.py"),
        *("--seed", str(SEED), "--duration", str(DURATION), "--units", "300"),
        *("--history", str(history), "--sandbox", name),
    ]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=450, check=False)
    finally:
        teardown(name)  # also when the run was interrupted
    print(proc.stdout)
    assert proc.returncode == 0, f"{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    assert "violations (0): none" in proc.stdout
