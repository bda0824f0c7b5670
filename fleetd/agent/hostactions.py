"""What a maintenance does to a machine, on the machine: reboot it, or run a command.

``HostActions`` is the contract; ``SystemdActions`` implements it with systemd's own
tools (argument lists, no shell):

- ``reboot``: ``systemctl reboot``;
- ``start``: the command as a transient service (``systemd-run --unit NAME``,
  ``RemainAfterExit=yes``): its output goes to the journal under that unit's name,
  it survives a restart of fleetd (an OS update may restart it), and its result
  stays with the unit until ``clean``;
- ``result``: None while it runs, else its exit status and the last lines of its
  output (``systemctl show``, ``journalctl``); NotFound if systemd does not know the
  unit (it was cleaned, or the machine rebooted).

The in-process cluster (fleetd/testing/) has a fake of it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from fleetd.errors import NotFound, SystemdError

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TIMEOUT = 30.0
"""Seconds one call of systemctl, systemd-run or journalctl may take."""


@dataclass(frozen=True, slots=True)
class CommandResult:
    exit_status: int
    output: str = ""  # its last lines


class HostActions(Protocol):
    async def reboot(self) -> None:
        """Ask systemd to reboot the machine (returns; the machine then goes down)."""

    async def start(self, unit: str, argv: Sequence[str]) -> None:
        """Start ``argv`` as the transient service ``unit`` (SystemdError if it cannot)."""

    async def result(self, unit: str) -> CommandResult | None:
        """The command's result, None while it runs; NotFound if ``unit`` is unknown."""

    async def clean(self, unit: str) -> None:
        """Forget the finished command's unit."""


def unit_for(action_id: str) -> str:
    """The transient unit of an action: a name systemd takes whatever the id."""
    return f"fleetd-maintenance-{hashlib.sha256(action_id.encode()).hexdigest()[:12]}.service"


async def _run(*argv: str) -> tuple[int, str]:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={"PATH": PATH, "LANG": "C.UTF-8"},
        )
    except OSError as exc:
        raise SystemdError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
    try:
        async with asyncio.timeout(TIMEOUT):
            out, _ = await proc.communicate()
    except TimeoutError as exc:
        proc.kill()
        await proc.wait()
        raise SystemdError(f"{argv[0]} did not answer within {TIMEOUT:.0f}s") from exc
    return proc.returncode or 0, out.decode(errors="replace").strip()


class SystemdActions:
    async def reboot(self) -> None:
        code, out = await _run("systemctl", "reboot")
        if code != 0:
            raise SystemdError(f"systemctl reboot failed (status {code}): {out}")

    async def start(self, unit: str, argv: Sequence[str]) -> None:
        code, out = await _run(
            "systemd-run",
            f"--unit={unit}",
            "--description=fleetd maintenance command",
            "--service-type=exec",
            "--property=RemainAfterExit=yes",
            "--quiet",
            "--",
            *argv,
        )
        if code != 0:
            raise SystemdError(out.splitlines()[-1] if out else f"systemd-run: status {code}")

    async def result(self, unit: str) -> CommandResult | None:
        props = "LoadState,ActiveState,SubState,ExecMainStatus,ExecMainCode"
        code, out = await _run("systemctl", "show", unit, f"--property={props}")
        if code != 0:
            raise SystemdError(f"systemctl show {unit}: {out}")
        values = dict(line.partition("=")[::2] for line in out.splitlines())
        if values.get("LoadState") == "not-found":
            raise NotFound(f"systemd does not know {unit}")
        state, sub = values.get("ActiveState", ""), values.get("SubState", "")
        if state == "active" and sub == "exited":
            status = 0
        elif state == "failed":
            status = int(values.get("ExecMainStatus") or 1) or 1
        else:
            return None
        _, output = await _run("journalctl", "--no-pager", "-o", "cat", "-n", "3", "-u", unit)
        return CommandResult(status, output)

    async def clean(self, unit: str) -> None:
        await _run("systemctl", "stop", unit)
        await _run("systemctl", "reset-failed", unit)
