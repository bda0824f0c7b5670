"""The sandbox's record of everything it created, kept as JSON under /run/fleetd-sandbox/.

Every resource is written here *before* it is created, so that ``down``
can remove all of it even after a crash of ``up`` half-way through.  The
file is replaced atomically (write + rename).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetd.errors import SandboxError

DEFAULT_STATE_DIR = Path("/run/fleetd-sandbox")
PREFIX = "fleetd-"
BRIDGE = f"{PREFIX}br0"
CGROUP_NAME = "fleetd-sandbox"


@dataclass(frozen=True, slots=True)
class MachineState:
    name: str
    ip: str
    machine_id: str
    netns: str
    veth: str
    launcher_pid: int | None = None  # the host-side `unshare` process
    systemd_pid: int | None = None  # the machine's PID 1, as seen from the host
    partitioned: bool = False


@dataclass(frozen=True, slots=True)
class SandboxState:
    subnet: str
    bridge: str
    bridge_ip: str
    etcd_endpoints: tuple[str, ...]
    etcd_members: int
    cgroup: str  # host path of the sandbox's cgroup2 directory
    disks: str  # tmpfs holding the machines' overlay upper layers
    token: str | None
    fleetd: bool
    spec: dict[str, Any] = field(default_factory=dict)  # the up options, for `status`
    etcd_pid: int | None = None  # the host etcd (single-member layout only)
    disks_mounted: bool = False
    complete: bool = False  # `up` finished successfully
    machines: tuple[MachineState, ...] = ()

    def machine(self, name: str) -> MachineState:
        for machine in self.machines:
            if machine.name == name:
                return machine
        known = ", ".join(m.name for m in self.machines) or "none"
        raise SandboxError(f"no sandbox machine {name!r} (machines: {known})")

    def with_machine(self, machine: MachineState) -> SandboxState:
        others = [m for m in self.machines if m.name != machine.name]
        ordered = sorted([*others, machine], key=lambda m: int(m.name[1:]))
        return dataclasses.replace(self, machines=tuple(ordered))


def state_file(state_dir: Path) -> Path:
    return state_dir / "state.json"


def save(state_dir: Path, state: SandboxState) -> None:
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = state_file(state_dir)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dataclasses.asdict(state), indent=2) + "\n")
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def load(state_dir: Path) -> SandboxState | None:
    """The recorded state, or None when there is no sandbox."""
    path = state_file(state_dir)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise SandboxError(f"cannot read sandbox state {path}: {exc}") from exc
    try:
        machines = tuple(MachineState(**m) for m in raw.pop("machines", []))
        raw["etcd_endpoints"] = tuple(raw.get("etcd_endpoints", ()))
        return SandboxState(**raw, machines=machines)
    except TypeError as exc:
        raise SandboxError(f"sandbox state {path} is not from this fleetd version: {exc}") from exc
