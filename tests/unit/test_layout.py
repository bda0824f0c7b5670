"""The repository layout rules that tooling relies on."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_test_module_basenames_are_unique() -> None:
    # pytest's default import mode puts each test directory on sys.path, so two
    # test modules with one basename cannot both be collected.
    names = Counter(p.name for p in (ROOT / "tests").rglob("*.py") if p.name != "conftest.py")
    assert [n for n, c in names.items() if c > 1] == []


def test_top_level_layout() -> None:
    for part in (
        "pyproject.toml",
        "fleetd",
        "api",
        "cli",
        "examples/units",
        "tests",
        "vagrant",
        "benchmarks",
        "README.md",
        ".ci/run",
    ):
        assert (ROOT / part).exists(), part
