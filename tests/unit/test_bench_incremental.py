"""benchmarks/engine_incremental.py runs, small: a row for every kind of change."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "engine_incremental.py"
KINDS = (
    "new unit",
    "unit stopped",
    "machine lost",
    "machine joined",
    "constraint of a placed unit",
    "new version, 200 instances",
    "Global unit's constraint",
    "cordon",
    "AtMostOnce grace ends",
    "drain of a machine",
    "start-first rollout, 100 units",
    "units asked to move",
    "metadata changed",
    "Replaces= a placed unit",
)


def test_every_kind_of_change_gets_a_row() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--samples", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    rows = [line.strip() for line in out.splitlines()[1:]]
    assert [next(k for k in KINDS if row.startswith(k)) for row in rows] == list(KINDS), out
    # Every kind, a drain's and a rolling update's every pass included, is scoped.
    assert all("CPU ms" in row and row.endswith(" scoped") for row in rows), out
