"""The whole test run's secret check: no token or password in any log line, error
message or ``--help`` output (issue 16: "grep the logs of the whole test run for the
tokens used").

Loaded for every run by ``tests/conftest.py`` (``pytest_plugins``).  Secrets are
registered as they are made:

- ``secret(value, label)`` for a token or password a test writes down (module
  constants, etcd passwords) or reads from what a subprocess made (provision.sh's
  token); it returns the value;
- every ``secrets.token_urlsafe()`` of the test process, which is how fleetd makes
  every token (``fleetd.tokens.new_secret``: tokens files, ``fleetd token add``,
  the sandbox's ``--secure`` tokens and its machine token).

What the run logs or prints as an error is appended to one file, the run's log:
every log record of the pytest process (a handler on the root logger, at DEBUG,
installed at session start and put back before each test if something removed
it); the stderr of every ``subprocess.run``/``check_output`` whose output a test
captures and of every command run through click's ``CliRunner`` (fleetctl,
fleetd), and their stdout too when the command asked for ``--help``; each test
report's captured stderr; and what helpers hand to ``observe()`` (fleetctl's
output in ``tests/component/clirun.py``).  (stdout is not checked otherwise:
``fleetd token add`` and ``fleetd sandbox env`` print a token there on purpose.)  At the
end of the session the file is searched for every registered secret: a hit makes
the run fail (exit status 1) with a report naming the secret's label and where it
was seen, never its value, and the file is kept for a look; a clean run deletes it.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

MIN_LENGTH = 6  # shorter strings would be found by chance
MAX_HITS = 20  # shown in the report (all are counted)

_secrets: dict[str, str] = {}  # value -> label


def secret(value: str, label: str = "") -> str:
    """Register ``value`` as a secret of this run (``label`` names it in a report,
    default: the caller's module) and return it."""
    if len(value) < MIN_LENGTH:
        raise ValueError(f"a registered secret needs {MIN_LENGTH}+ characters: {label!r}")
    if value not in _secrets:
        _secrets[value] = label or _caller()
    return value


def observe(where: str, text: str | bytes | None) -> None:
    """Add ``text`` (output or an error message seen at ``where``) to the run's log."""
    if _log is not None and text:
        _log.write(where, text)


def registered() -> dict[str, str]:
    """The registered secrets (value -> label), for tests of this module."""
    return dict(_secrets)


def _caller(depth: int = 2) -> str:
    frame = sys._getframe(depth)
    return f"{frame.f_globals.get('__name__', '?')}:{frame.f_code.co_name}"


@dataclass(frozen=True)
class Hit:
    label: str
    where: str
    line: int


class RunLog:
    """The run's log: one line per line seen, as ``where<TAB>text``."""

    def __init__(self) -> None:
        fd, name = tempfile.mkstemp(prefix="fleetd-test-run-", suffix=".log")
        self.path = Path(name)
        self._file = os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace")

    def write(self, where: str, text: str | bytes) -> None:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        where = where.replace("\t", " ").replace("\n", " ")
        for line in text.splitlines():
            self._file.write(f"{where}\t{line}\n")

    def hits(self, values: dict[str, str]) -> Iterator[Hit]:
        """Where each of ``values`` (value -> label) occurs in the log."""
        self._file.flush()
        if not values:
            return
        pattern = re.compile("|".join(re.escape(v) for v in sorted(values, key=len, reverse=True)))
        with self.path.open(encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, 1):
                where, _, text = line.partition("\t")
                for match in pattern.finditer(text):
                    yield Hit(values[match.group()], where, number)

    def close(self, keep: bool) -> None:
        self._file.close()
        if not keep:
            self.path.unlink(missing_ok=True)


class _Handler(logging.Handler):
    """Every record of the process, as its handlers would show it (with tracebacks)."""

    def __init__(self, log: RunLog) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self._log = log

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._log.write(f"log {record.name}", self.format(record))
        except Exception:  # a log handler must not raise
            self.handleError(record)


_log: RunLog | None = None
_handler: _Handler | None = None
_restore: list[Callable[[], None]] = []


def _helps(args: Any) -> bool:
    words = args if isinstance(args, (list, tuple)) else [args]
    return any(str(w) in ("--help", "-h") for w in words)


def _watch_subprocess() -> None:
    """stderr (and a --help's stdout) of every subprocess run whose output is captured."""
    run, check_output = subprocess.run, subprocess.check_output

    def watched_run(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        result = run(*args, **kwargs)
        command = result.args if isinstance(result.args, (list, tuple)) else [result.args]
        where = f"stderr of {os.path.basename(str(command[0]))}" if command else "stderr"
        observe(where, result.stderr)
        if _helps(result.args):
            observe(where.replace("stderr", "help of"), result.stdout)
        return result

    def watched_check_output(*args: Any, **kwargs: Any) -> Any:
        out = check_output(*args, **kwargs)
        if _helps(args[0] if args else kwargs.get("args")):
            observe("help", out)
        return out

    subprocess.run, subprocess.check_output = watched_run, watched_check_output  # type: ignore[assignment]
    _restore.append(lambda: setattr(subprocess, "run", run))
    _restore.append(lambda: setattr(subprocess, "check_output", check_output))


def _watch_cli_runner() -> None:
    """stderr (and help) of every command a test runs with click's CliRunner (typer's too)."""
    from click.testing import CliRunner, Result

    invoke = CliRunner.invoke

    def watched(self: CliRunner, cli: Any, args: Any = None, *rest: Any, **kw: Any) -> Result:
        result = invoke(self, cli, args, *rest, **kw)
        name = getattr(cli, "name", None) or "a command"
        observe(f"stderr of {name} (CliRunner)", result.stderr)
        if args is not None and _helps(args):
            observe(f"help of {name} (CliRunner)", result.stdout)
        return result

    CliRunner.invoke = watched  # type: ignore[method-assign]
    _restore.append(lambda: setattr(CliRunner, "invoke", invoke))


def _watch_token_making() -> None:
    """Every token the process makes (fleetd.tokens.new_secret calls token_urlsafe)."""
    make = secrets.token_urlsafe

    def registering(nbytes: int | None = None) -> str:
        value = make(nbytes)
        if len(value) >= MIN_LENGTH:
            _secrets.setdefault(value, f"a token made by {_caller()}")
        return value

    secrets.token_urlsafe = registering
    _restore.append(lambda: setattr(secrets, "token_urlsafe", make))


def _install_handler() -> None:
    root = logging.getLogger()
    if _handler is not None and _handler not in root.handlers:
        root.addHandler(_handler)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    global _log, _handler
    _log = RunLog()
    _handler = _Handler(_log)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    _restore.append(lambda: root.setLevel(level))
    _restore.append(lambda: root.removeHandler(_handler) if _handler else None)
    _install_handler()
    _watch_subprocess()
    _watch_cli_runner()
    _watch_token_making()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _install_handler()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for title, content in report.sections:
        if "stderr" in title:
            observe(f"{report.nodeid} {title}", content)


_report: list[str] = []


@pytest.hookimpl(trylast=True)  # after the runner's teardown of the session's fixtures
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _log
    if _log is None:
        return
    log, _log = _log, None
    while _restore:
        _restore.pop()()
    hits = list(log.hits(_secrets))
    log.close(keep=bool(hits))
    if not hits:
        return
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    _report.append(
        f"SECRET LEAKED: {len(hits)} time(s) a registered secret was in the run's log, an "
        f"error message or a --help output (the log is kept: {log.path}; each line there is "
        "WHERE<TAB>TEXT):"
    )
    _report.extend(f"  {h.label}: in {h.where} (line {h.line})" for h in hits[:MAX_HITS])
    if len(hits) > MAX_HITS:
        _report.append(f"  ... and {len(hits) - MAX_HITS} more")
    if session.config.pluginmanager.get_plugin("terminalreporter") is None:
        print("\n".join(_report), file=sys.stderr)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _report:
        terminalreporter.section("secret leak check", sep="=", red=True, bold=True)
        for line in _report:
            terminalreporter.write_line(line, red=True)
