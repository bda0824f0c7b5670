"""``fleetd sandbox status``: what runs, as seen from the host."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fleetd.errors import SandboxError
from fleetd.registry.keys import Keys
from fleetd.sandbox import etcd, host, machine
from fleetd.sandbox.seed import FLEETD_UNIT
from fleetd.sandbox.state import SandboxState


@dataclass(frozen=True, slots=True)
class MachineStatus:
    name: str
    ip: str
    machine_id: str
    running: bool
    partitioned: bool
    cuts: tuple[str, ...]  # cuts.Cut values (etcd-clients, etcd-peers)
    systemd: str  # is-system-running, or "off"
    fleetd: str  # is-active fleetd.service, or "off"
    registered: bool  # /fleet/machines/<machine-id> exists in etcd
    failed_units: tuple[str, ...] = ()
    boots: int = 0  # times it was booted: by up and boot, and every reboot inside
    rebooting: bool = False  # its launcher is booting it again


@dataclass(frozen=True, slots=True)
class SandboxStatus:
    machines: tuple[MachineStatus, ...]
    etcd: tuple[tuple[str, bool], ...]  # (endpoint, healthy)
    api_endpoint: str
    auth: bool


def collect(
    state: SandboxState,
    api_endpoint: str,
    machines_dir: Path,
    access: etcd.Access | None = None,
) -> SandboxStatus:
    """``machines_dir``: where each machine's directory (its boot count) is; ``access``:
    how to reach a ``--secure`` etcd."""
    try:
        registered = set(
            etcd.keys(state.etcd_endpoints, Keys().machines, timeout=1.0, access=access)
        )
    except SandboxError:
        registered = set()
    machines = []
    for ms in state.machines:
        pid = machine.current_systemd(ms.launcher_pid)
        running = pid is not None
        systemd = fleetd = "off"
        failed: list[str] = []
        if pid is not None:
            systemd = _query(pid, ["systemctl", "is-system-running"])
            fleetd = _query(pid, ["systemctl", "is-active", FLEETD_UNIT])
            failed = machine.failed_units(pid)
        machines.append(
            MachineStatus(
                name=ms.name,
                ip=ms.ip,
                machine_id=ms.machine_id,
                running=running,
                partitioned=ms.partitioned,
                cuts=ms.cuts,
                systemd=systemd,
                fleetd=fleetd,
                registered=Keys().machine(ms.machine_id) in registered,
                failed_units=tuple(failed),
                boots=machine.boots(machines_dir / ms.name),
                rebooting=not running and host.alive(ms.launcher_pid, machine.LAUNCHER),
            )
        )
    health = tuple((ep, etcd.healthy(ep, access=access)) for ep in state.etcd_endpoints)
    return SandboxStatus(tuple(machines), health, api_endpoint, state.token is not None)


def _query(pid: int, cmd: list[str]) -> str:
    try:
        return machine.run_in(pid, cmd, timeout=5).stdout.strip() or "unknown"
    except SandboxError:
        return "unknown"
