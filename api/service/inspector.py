"""``systemctl status`` and ``journalctl -u`` of a unit on this machine (no SSH needed).

The API of the machine a unit is scheduled to answers ``/units/{name}/status``
and ``/journal`` with this; the API of any other machine forwards there
(``peers.py``).  Commands run with argument lists only, and the unit name has
been validated by the caller; ``--unit=`` / ``--`` keep a name from ever being
read as an option.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

import anyio

from fleetd.errors import Unavailable

from ..wire import JOURNAL_OUTPUTS

STATUS_TIMEOUT = 15.0
MAX_JOURNAL_LINES = 10_000
REAP_TIMEOUT = 5.0


class InspectorError(Unavailable):
    """systemctl or journalctl could not be run (the API answers 503)."""


class UnitInspector(Protocol):
    async def status(self, name: str) -> tuple[int, str]:
        """``(exit code, output)`` of ``systemctl status`` (3 = not active, 4 = no such unit)."""
        ...

    def journal(
        self, name: str, lines: int, follow: bool, output: str = "short"
    ) -> AsyncIterator[bytes]:
        """The last ``lines`` journal lines of the unit, then new ones while ``follow``,
        in journalctl's ``output`` mode (one of ``wire.JOURNAL_OUTPUTS``)."""
        ...


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"SYSTEMD_PAGER": "", "PAGER": "cat", "SYSTEMD_COLORS": "0", "LC_ALL": "C.UTF-8"})
    return env


class SystemdInspector:
    """Runs the real tools; ``systemctl``/``journalctl`` are argv prefixes (overridable)."""

    def __init__(
        self,
        systemctl: Sequence[str] = ("systemctl",),
        journalctl: Sequence[str] = ("journalctl",),
    ) -> None:
        self.systemctl = tuple(systemctl)
        self.journalctl = tuple(journalctl)

    async def status(self, name: str) -> tuple[int, str]:
        argv = [*self.systemctl, "status", "--no-pager", "--full", "--lines=10", "--", name]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=_env(),
            )
        except OSError as exc:
            raise InspectorError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), STATUS_TIMEOUT)
        except TimeoutError as exc:
            raise InspectorError(f"systemctl status {name} did not answer in time") from exc
        finally:
            await _reap(proc)
        return proc.returncode or 0, out.decode("utf-8", "replace")

    async def journal(
        self, name: str, lines: int, follow: bool, output: str = "short"
    ) -> AsyncIterator[bytes]:
        if output not in JOURNAL_OUTPUTS:
            raise InspectorError(f"unknown journal output mode {output!r}")
        lines = max(0, min(lines, MAX_JOURNAL_LINES))
        argv = [*self.journalctl, "--no-pager", f"--output={output}", f"--unit={name}"]
        argv.append(f"--lines={lines}")
        if follow:
            argv.append("--follow")
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=_env(),
            )
        except OSError as exc:
            raise InspectorError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
        assert proc.stdout is not None
        try:
            while True:
                line = await proc.stdout.readline()
                if not line:
                    break
                yield line
            await proc.wait()
        finally:
            await _reap(proc)


async def _reap(proc: asyncio.subprocess.Process) -> None:
    """Kill ``proc`` if it still runs and wait for it, even inside a cancelled scope.

    The response's cancel scope re-cancels every await; the process is reaped
    anyway so that no zombie (or stray Popen) is left behind.
    """
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    with anyio.CancelScope(shield=True), anyio.move_on_after(REAP_TIMEOUT):
        await proc.wait()
