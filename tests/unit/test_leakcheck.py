"""The whole run's secret check (tests/leakcheck.py) can fail: pytest run on small tests
that leak a registered secret (a log line, a subprocess's error output, a command's run
by CliRunner, a token fleetd made) exits 1 and names each leak by its label and where,
never by its value; tests that only print a secret on stdout, as ``fleetd token add``
does, pass."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]

LEAKS = """
import logging, subprocess, sys
from leakcheck import secret
from fleetd.tokens import new_secret

def test_a_log_line():
    token = secret("inner-token-0123456789abcdef", "the inner token")
    logging.getLogger("fleetd.inner").debug("using %s", token)

def test_a_subprocess_error_message():
    password = secret("inner-pass-0123456789", "the inner password")
    code = "import sys; sys.stderr.write('denied for ' + sys.argv[1])"
    subprocess.run([sys.executable, "-c", code, password], capture_output=True, check=False)

def test_a_token_fleetd_made():
    logging.getLogger("fleetd.inner").warning("made %s", new_secret())

def test_a_command_error_message():
    import click
    from click.testing import CliRunner
    token = secret("inner-ctl-token-0123456789", "the command's token")

    @click.command("leaky")
    def leaky():
        click.echo("bad token " + token, err=True)

    CliRunner().invoke(leaky, [])
"""

CLEAN = """
import logging, subprocess, sys
from leakcheck import secret

def test_stdout_may_show_a_token():
    token = secret("inner-token-0123456789abcdef", "the inner token")
    print(token)
    subprocess.run([sys.executable, "-c", "print('" + token + "')"], capture_output=True)
    logging.getLogger("fleetd.inner").info("a token was made (not shown)")
"""


def _pytest(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_inner.py").write_text(text)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\nfilterwarnings = error\n"
    )
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "leakcheck", "-p", "no:cacheprovider",
         "test_inner.py"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


def test_a_leak_fails_the_run_and_is_named_without_its_value(tmp_path: Path) -> None:
    run = _pytest(tmp_path, LEAKS)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "4 passed" in run.stdout, run.stdout  # the tests pass: the check fails the run
    report = run.stdout[run.stdout.index("secret leak check") :]
    assert "SECRET LEAKED" in report
    assert "the inner token: in log fleetd.inner" in report
    assert "the inner password: in stderr of python" in report
    assert "a token made by fleetd.tokens:new_secret: in log fleetd.inner" in report
    assert "the command's token: in stderr of leaky (CliRunner)" in report, report
    for value in ("inner-token-0123456789abcdef", "inner-pass-0123456789", "inner-ctl-token"):
        assert value not in run.stdout + run.stderr
    kept = Path(report.split("the log is kept: ")[1].split(";")[0])
    try:
        assert "inner-token-0123456789abcdef" in kept.read_text()
    finally:
        kept.unlink()


def test_a_clean_run_passes_and_leaves_no_log(tmp_path: Path) -> None:
    run = _pytest(tmp_path, CLEAN)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "secret leak check" not in run.stdout


@pytest.mark.parametrize("value", ["", "short"])
def test_a_secret_too_short_to_search_for_is_refused(value: str) -> None:
    import leakcheck

    with pytest.raises(ValueError, match="6\\+ characters"):
        leakcheck.secret(value, "too short")
