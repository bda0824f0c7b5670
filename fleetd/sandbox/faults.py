"""Faults of the processes inside a sandbox's machines, and undoing every fault at once.

``Sandbox`` cuts machines off (``partition``, ``cut``), powers them off and kills
fleetd; these add what the fault tests and the chaos run also need: any signal to
fleetd's main process (SIGSTOP/SIGCONT pause and resume it), its PID, the etcd
member of a machine (``--etcd-members 3``) killed, stopped or started, and
``restore``, which brings a sandbox back whole whatever was done to it.
"""

from __future__ import annotations

import time
from typing import Literal

from fleetd.errors import SandboxError
from fleetd.sandbox import etcd
from fleetd.sandbox.cluster import Sandbox
from fleetd.sandbox.seed import FLEETD_UNIT


def fleetd_pid(sb: Sandbox, name: str) -> int:
    """fleetd's main PID inside ``name`` (its own PID namespace); 0 when it is not running."""
    proc = sb.exec(name, "systemctl", "show", "-p", "MainPID", "--value", FLEETD_UNIT)
    return int(proc.stdout.strip() or 0)


def signal_fleetd(sb: Sandbox, name: str, signal: str) -> None:
    """Send ``signal`` (``STOP``, ``CONT``, ``KILL``...) to fleetd's main process in ``name``."""
    proc = sb.exec(name, "systemctl", "kill", f"--signal={signal}", "--kill-whom=main", FLEETD_UNIT)
    if proc.returncode != 0:
        raise SandboxError(f"cannot send SIG{signal} to fleetd on {name}: {proc.stderr.strip()}")


def etcd_member(sb: Sandbox, name: str, action: Literal["kill", "stop", "start"]) -> None:
    """SIGKILL the etcd member in ``name`` (systemd restarts it after a second), stop it
    (it stays down) or start it."""
    extra = ["--signal=KILL"] if action == "kill" else []
    proc = sb.exec(name, "systemctl", action, *extra, etcd.MEMBER_UNIT)
    if proc.returncode != 0:
        raise SandboxError(f"cannot {action} the etcd member on {name}: {proc.stderr.strip()}")


def restore(sb: Sandbox, timeout: float = 90.0, registered: bool = True) -> None:
    """Undo every fault: machines healed and running, fleetd resumed, etcd members up and
    healthy, and (``registered``) every fleetd registered; SandboxError after ``timeout``."""
    deadline = time.monotonic() + timeout
    for m in sb.machines:
        if m.partitioned or m.cuts:
            sb.heal(m.name)
        if not sb.running(m.name):
            sb.boot(m.name, timeout=max(1.0, deadline - time.monotonic()))
    for m in sb.machines:
        sb.exec(m.name, "systemctl", "kill", "--signal=CONT", "--kill-whom=main", FLEETD_UNIT)
        if sb.hosts_member(m.name):
            etcd_member(sb, m.name, "start")
    etcd.wait_healthy(sb.etcd_endpoints, max(1.0, deadline - time.monotonic()), sb.etcd_access)
    if registered:
        sb.wait_registered([m.name for m in sb.machines], max(1.0, deadline - time.monotonic()))
