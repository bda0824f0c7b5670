"""Helpers for the fleetctl tests that run ``main()`` as the ``fleetctl`` script does
(argument reordering, exit codes, error printing), against ``clikit.ServerThread``.

``inspector(tmp)`` fakes systemctl/journalctl with small scripts: ``systemctl
status`` exits 3 for units named ``down*`` (4 for ``gone*``), 0 otherwise;
``journalctl`` prints its ``--output=`` mode and ``--lines`` lines.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import leakcheck
import pytest
from clikit import ServerThread

from fleetd.api.service.inspector import SystemdInspector
from fleetd.cli.main import main
from fleetd.registry.base import EventType

SERVICE = "[Unit]\nDescription=Web server\n\n[Service]\nExecStart=/bin/sleep 1000\n"
TOKEN = leakcheck.secret("secret-token-0123456789abcdef")


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def inspector(tmp: Path) -> SystemdInspector:
    status = tmp / "systemctl.py"
    status.write_text(
        "import sys\n"
        "name = sys.argv[-1]\n"
        "print('* ' + name + ' - Web server')\n"
        "sys.exit(3 if name.startswith('down') else 4 if name.startswith('gone') else 0)\n"
    )
    journal = tmp / "journalctl.py"
    journal.write_text(
        "import sys\n"
        "args = dict(a[2:].split('=', 1) for a in sys.argv[1:] if '=' in a)\n"
        "for i in range(int(args['lines'])):\n"
        "    print(f\"{args['output']} line {i}\")\n"
    )
    return SystemdInspector((sys.executable, str(status)), (sys.executable, str(journal)))


def fleetctl(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: Sequence[str],
    env: dict[str, str] | None = None,
) -> Result:
    """``fleetctl ARGS`` through ``main()`` with only ``env``'s FLEETCTL_* variables set."""
    for name in list(os.environ):
        if name.startswith("FLEETCTL_"):
            monkeypatch.delenv(name)
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out = capsys.readouterr()
    code = exited.value.code
    # Error messages and help go to the whole run's secret check (tests/leakcheck.py).
    leakcheck.observe("fleetctl's stderr", out.err)
    if "--help" in args or "-h" in args:
        leakcheck.observe("fleetctl --help", out.out)
    assert "Traceback" not in out.err, out.err
    return Result(code if isinstance(code, int) else 1, out.out, out.err)


@contextlib.contextmanager
def serving(
    tmp: Path, *, inspected: bool = True, token: str | None = None, page_size: int = 2
) -> Iterator[ServerThread]:
    """A ``ServerThread`` (with the fake systemctl/journalctl of ``inspector`` unless
    ``inspected`` is False) for the length of the block."""
    thread = ServerThread(
        tmp, inspector=inspector(tmp) if inspected else None, token=token, page_size=page_size
    ).start()
    try:
        yield thread
    finally:
        thread.stop()


def runner(
    server: ServerThread,
    units: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., Result]:
    """``run(*args)``: fleetctl against ``server`` from the directory ``units``."""
    monkeypatch.chdir(units)

    def go(*args: str) -> Result:
        return fleetctl(capsys, monkeypatch, args, {"FLEETCTL_ENDPOINT": server.endpoint})

    return go


def unit_files(tmp: Path) -> Path:
    directory = tmp / "units"
    directory.mkdir(exist_ok=True)
    (directory / "web.service").write_text(SERVICE)
    for name in ("a", "b", "c", "down"):
        (directory / f"{name}.service").write_text(SERVICE)
    (directory / "bad.service").write_text(SERVICE.replace("/bin/sleep 1000", "/bin/false"))
    return directory


async def history(server: ServerThread, since: int) -> list[tuple[str, str, str]]:
    """The registry's unit and state writes after revision ``since``, in order:
    ``("unit", name, desired)`` and ``("state", name, active state)``."""
    store = server.store
    _, now = await store.registry.get_prefix(store.keys.units)
    seen: list[tuple[str, str, str]] = []
    if now <= since:
        return seen
    async for batch in store.registry.watch_prefix(store.keys.prefix, since + 1):
        for event in batch:
            if event.type is EventType.PUT and event.key.startswith(store.keys.units):
                unit = store.unit_from(event.key, event.value)
                seen.append(("unit", unit.name, unit.desired.value))
            elif event.type is EventType.PUT and event.key.startswith(store.keys.states):
                state = store.state_from(event.key, event.value)
                seen.append(("state", state.name, state.active_state))
        if batch and batch[-1].mod_revision >= now:
            return seen
    return seen


async def revision(server: ServerThread) -> int:
    _, now = await server.store.registry.get_prefix(server.store.keys.units)
    return now
