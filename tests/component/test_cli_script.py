"""The ``fleetctl`` console script (``fleetd.cli.main:script``): ``main`` with the
imports' heap frozen out of the garbage collector, so that the interpreter's exit
does not walk it again (``script``'s docstring)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from fleetd import __version__

REPO = Path(__file__).resolve().parents[2]

# Runs the script's function as the installed wrapper does; at its exit, says how many
# objects were frozen (atexit handlers run before the interpreter's last collections).
WRAPPER = """
import atexit, gc, sys
atexit.register(lambda: print("frozen", gc.get_freeze_count(), file=sys.stderr))
from fleetd.cli.main import script
sys.argv = ["fleetctl", *sys.argv[1:]]
sys.exit(script())
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WRAPPER, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_installed_fleetctl_is_the_script() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["fleetctl"] == "fleetd.cli.main:script"


def test_script_runs_main_with_the_imports_frozen() -> None:
    done = run("version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"fleetctl version {__version__}\n"
    frozen = int(done.stderr.split("frozen ")[1])
    assert frozen > 10_000  # typer, pydantic, httpx, the wire models: far more than this


def test_script_keeps_mains_exit_status_and_message() -> None:
    done = run("--bogus")
    assert done.returncode == 1
    assert "No such option: --bogus" in done.stderr
