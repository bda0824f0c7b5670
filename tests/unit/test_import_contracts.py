"""The import contracts (pyproject's [tool.importlinter], run in CI by .ci/lint-imports)
hold for the tree, and each one fails when an import breaks it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
ENGINE_AND_AGENT = "engine and agent never import each other"
PURE = "pure modules import no asyncio and no I/O"
NO_FASTAPI = "the API's service layer and fleetctl never import FastAPI"


def staged(tmp_path: Path) -> Path:
    """The installed layout (api/ and cli/ as fleetd.api and fleetd.cli) under tmp_path."""
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "fleetd", tmp_path / "fleetd", ignore=ignore)
    shutil.copytree(ROOT / "api", tmp_path / "fleetd" / "api", ignore=ignore)
    shutil.copytree(ROOT / "cli", tmp_path / "fleetd" / "cli", ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def lint(stage: Path) -> str:
    proc = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=stage,
        env={**os.environ, "PYTHONPATH": str(stage)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.stdout + proc.stderr


def broken(output: str) -> set[str]:
    names = (ENGINE_AND_AGENT, PURE, NO_FASTAPI)
    return {
        n for n in names for line in output.splitlines() if line.startswith(n) and "BROKEN" in line
    }


def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    output = lint(staged(tmp_path))
    assert "3 kept, 0 broken" in output, output


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("engine/plan.py", "import fleetd.agent.units", ENGINE_AND_AGENT),
        ("agent/reconciler.py", "import fleetd.engine.leader", ENGINE_AND_AGENT),
        ("engine/scheduler.py", "import asyncio", PURE),
        ("unitfile.py", "import subprocess", PURE),
        ("agent/plan.py", "import fleetd.registry.etcd", PURE),  # asyncio through etcd
        ("api/service/queries.py", "import fastapi", NO_FASTAPI),
        ("cli/listing.py", "import fleetd.api.errors", NO_FASTAPI),  # FastAPI through it
    ],
)
def test_each_contract_fails_when_an_import_breaks_it(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    stage = staged(tmp_path)
    path = stage / "fleetd" / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    output = lint(stage)
    assert broken(output) == {contract}, output
