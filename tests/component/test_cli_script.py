"""The ``fleetctl`` console script (``fleetd.cli.script:main``): fleetctl's ``main``
imported with the garbage collector off, what the imports built frozen out of it,
the collector on again while the command runs (``fleetd.cli.script``'s docstring)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from fleetd import __version__

REPO = Path(__file__).resolve().parents[2]

# Runs the script's function as the installed wrapper does; at its exit, says how many
# objects were frozen and whether the collector is on (atexit handlers run before the
# interpreter's last collections).
WRAPPER = """
import atexit, gc, sys
atexit.register(
    lambda: print("frozen", gc.get_freeze_count(), "enabled", gc.isenabled(), file=sys.stderr)
)
from fleetd.cli.script import main
sys.argv = ["fleetctl", *sys.argv[1:]]
sys.exit(main())
"""


def run(*args: str, code: str = WRAPPER) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_installed_fleetctl_is_the_script() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["fleetctl"] == "fleetd.cli.script:main"


def test_the_script_imports_nothing_of_fleetctl_before_it_runs() -> None:
    """So that every import of fleetctl's runs in ``main``, with the collector off."""
    code = "import sys, fleetd.cli.script; print(sorted(sys.modules))"
    done = run(code=code)
    assert done.returncode == 0, done.stderr
    loaded = done.stdout
    for heavy in ("fleetd.cli.main", "typer", "pydantic", "httpx", "fleetd.api.wire"):
        assert f"'{heavy}'" not in loaded


def test_the_script_runs_main_with_the_imports_frozen_and_the_collector_on() -> None:
    done = run("version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"fleetctl version {__version__}\n"
    words = done.stderr.split()
    frozen = int(words[words.index("frozen") + 1])
    assert frozen > 10_000  # typer, pydantic, httpx, the wire models: far more than this
    assert words[words.index("enabled") + 1] == "True"


def test_the_script_keeps_mains_exit_status_and_message() -> None:
    done = run("--bogus")
    assert done.returncode == 1
    assert "No such option: --bogus" in done.stderr
