"""``fleetd sandbox status``: what runs, as seen from the host."""

from __future__ import annotations

from dataclasses import dataclass

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
    systemd: str  # is-system-running, or "off"
    fleetd: str  # is-active fleetd.service, or "off"
    registered: bool  # /fleet/machines/<machine-id> exists in etcd
    failed_units: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SandboxStatus:
    machines: tuple[MachineStatus, ...]
    etcd: tuple[tuple[str, bool], ...]  # (endpoint, healthy)
    api_endpoint: str
    auth: bool


def collect(state: SandboxState, api_endpoint: str) -> SandboxStatus:
    try:
        registered = set(etcd.keys(state.etcd_endpoints, Keys().machines, timeout=1.0))
    except SandboxError:
        registered = set()
    machines = []
    for ms in state.machines:
        running = host.alive(ms.systemd_pid, "systemd")
        systemd = fleetd = "off"
        failed: list[str] = []
        if running and ms.systemd_pid is not None:
            systemd = _query(ms.systemd_pid, ["systemctl", "is-system-running"])
            fleetd = _query(ms.systemd_pid, ["systemctl", "is-active", FLEETD_UNIT])
            failed = machine.failed_units(ms.systemd_pid)
        machines.append(
            MachineStatus(
                name=ms.name,
                ip=ms.ip,
                machine_id=ms.machine_id,
                running=running,
                partitioned=ms.partitioned,
                systemd=systemd,
                fleetd=fleetd,
                registered=Keys().machine(ms.machine_id) in registered,
                failed_units=tuple(failed),
            )
        )
    health = tuple((ep, etcd.healthy(ep)) for ep in state.etcd_endpoints)
    return SandboxStatus(tuple(machines), health, api_endpoint, state.token is not None)


def _query(pid: int, cmd: list[str]) -> str:
    try:
        return machine.run_in(pid, cmd, timeout=5).stdout.strip() or "unknown"
    except SandboxError:
        return "unknown"
