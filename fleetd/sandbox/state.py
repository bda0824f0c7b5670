"""The sandbox's record of everything it created, kept as JSON under /run/fleetd-sandbox/.

Every resource is written here *before* it is created, so that ``down``
can remove all of it even after a crash of ``up`` half-way through.  The
file is replaced atomically (write + rename).

Several sandboxes can live side by side on one host: each ``Instance``
(``--name`` / ``$FLEETD_SANDBOX``, empty for the default one) has its own
state directory, name prefix, bridge and cgroup.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetd.errors import InvalidInput, SandboxError

ENV_NAME = "FLEETD_SANDBOX"
_NAME = re.compile(r"^[a-z0-9]{0,4}$")


@dataclass(frozen=True, slots=True)
class Instance:
    """Where one sandbox keeps its state and how its host objects are named."""

    name: str = ""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise InvalidInput(
                f"sandbox name must be at most 4 lowercase letters or digits, got {self.name!r}"
            )

    @property
    def suffix(self) -> str:
        return f"-{self.name}" if self.name else ""

    @property
    def state_dir(self) -> Path:
        return Path(f"/run/fleetd-sandbox{self.suffix}")

    @property
    def prefix(self) -> str:
        """Prefix of the netns and links (at most 15 characters with ``m100``/``br0``)."""
        return f"fleetd{self.name}-"

    @property
    def bridge(self) -> str:
        return f"{self.prefix}br0"

    @property
    def cgroup_name(self) -> str:
        return f"fleetd-sandbox{self.suffix}"

    @property
    def label(self) -> str:
        return f"sandbox {self.name!r}" if self.name else "sandbox"


def instance(name: str | None = None) -> Instance:
    """The sandbox called ``name``; None means ``$FLEETD_SANDBOX`` or the default one."""
    return Instance(os.environ.get(ENV_NAME, "") if name is None else name)


@dataclass(frozen=True, slots=True)
class MachineState:
    name: str
    ip: str
    machine_id: str
    netns: str
    veth: str
    launcher_pid: int | None = None  # the host-side supervisor (boot.sh outer)
    systemd_pid: int | None = None  # the machine's PID 1 as last seen from the host
    partitioned: bool = False
    cuts: tuple[str, ...] = ()  # cuts.Cut values applied in its netns


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
    # (host directory, path inside) that show fleetd's install (install.Install), for every boot.
    binds: tuple[tuple[str, str], ...] = ()
    etcd_pid: int | None = None  # the host etcd (single-member layout only)
    disks_mounted: bool = False
    complete: bool = False  # `up` finished successfully
    machines: tuple[MachineState, ...] = ()
    secure: bool = False
    # --secure: the API's token per role (read, operate, admin) and the machines' own.
    tokens: dict[str, str] = field(default_factory=dict)

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
    # A temporary file of this writer's own: two writers at once must not share one.
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(dataclasses.asdict(state), indent=2) + "\n")
    os.chmod(tmp, 0o600)
    tmp.replace(path)


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """Hold the state's lock (``flock`` of ``state.lock``) for a read-change-write."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with (state_dir / "state.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


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
        machines = tuple(
            MachineState(**{**m, "cuts": tuple(m.get("cuts", ()))}) for m in raw.pop("machines", [])
        )
        raw["etcd_endpoints"] = tuple(raw.get("etcd_endpoints", ()))
        raw["binds"] = tuple((str(source), str(target)) for source, target in raw.get("binds", ()))
        return SandboxState(**raw, machines=machines)
    except TypeError as exc:
        raise SandboxError(f"sandbox state {path} is not from this fleetd version: {exc}") from exc
