"""Domain values shared by engine, agent, API and CLI (frozen dataclasses, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class DesiredState(StrEnum):
    """What the user wants for a unit (fleet's target states)."""

    INACTIVE = "inactive"
    LOADED = "loaded"
    LAUNCHED = "launched"


@dataclass(frozen=True, slots=True)
class Capacity:
    """CPU in millicores and memory in bytes."""

    cpu_millis: int = 0
    memory_bytes: int = 0

    def __add__(self, other: Capacity) -> Capacity:
        return Capacity(self.cpu_millis + other.cpu_millis, self.memory_bytes + other.memory_bytes)

    def __sub__(self, other: Capacity) -> Capacity:
        return Capacity(self.cpu_millis - other.cpu_millis, self.memory_bytes - other.memory_bytes)

    def fits(self, need: Capacity) -> bool:
        return need.cpu_millis <= self.cpu_millis and need.memory_bytes <= self.memory_bytes


@dataclass(frozen=True, slots=True)
class Machine:
    """A machine as its agent registered it (``machines/<id>``).

    ``systemd_connected``: whether its agent has a working connection to systemd's
    D-Bus API; a machine without one gets no new units (they could not start there).
    ``boot_id``: the id of the machine's current boot (systemd's), so that a reboot
    is seen as one ("" from a fleetd that does not report it).
    """

    id: str
    hostname: str = ""
    public_ip: str = ""
    metadata: tuple[tuple[str, str], ...] = ()
    capacity: Capacity = field(default_factory=Capacity)
    version: str = ""
    systemd_connected: bool = True
    boot_id: str = ""

    def metadata_dict(self) -> dict[str, str]:
        return dict(self.metadata)


@dataclass(frozen=True, slots=True)
class SystemdLink:
    """The local agent's connection to systemd as it stands now (``/healthz``, ``/metrics``).

    ``reason``: why there is none (the last error); ``since``: wall time of the last change.
    """

    connected: bool
    reason: str = ""
    since: float = 0.0


@dataclass(frozen=True, slots=True)
class Unit:
    """A submitted unit (``units/<name>``): the file text, its hash and the desired state.

    ``pinned``: machines that keep another hash than the text's, ``(machine, hash)``
    pairs (sorted): a Global unit's machines not yet moved by a rolling update
    (docs/rollouts.md).  A new text written outside a rollout drops them."""

    name: str
    text: str
    hash: str
    desired: DesiredState = DesiredState.INACTIVE
    pinned: tuple[tuple[str, str], ...] = ()

    def hash_on(self, machine: str) -> str:
        """The hash ``machine`` is scheduled with."""
        return next((h for m, h in self.pinned if m == machine), self.hash)


@dataclass(frozen=True, slots=True)
class ScheduleEntry:
    """One line of a machine's work list (``schedule/<machine>/<name>``).

    ``moving_from``: a start-first move of the unit to this machine is under way:
    its entry on that machine stays until this copy is active and healthy (see
    fleetd/engine/handover.py); empty otherwise.  Agents ignore it.
    """

    machine: str
    name: str
    hash: str
    desired: DesiredState
    moving_from: str = ""


class Health(StrEnum):
    """A unit's health as the agent of its machine judges it (``fleetd.unithealth``).

    ``healthy``: active, and its health check (if it has one) passed last time;
    ``unhealthy``: active, and its check failed after the grace period;
    ``unknown``: not active, or active and not yet judged (no check result yet,
    or only failures within the grace period), or reported by a fleetd without
    health checks.
    """

    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class UnitHealth:
    """``message``: the last failed check's message while not healthy (else empty);
    ``since``: wall time at which ``health`` took its value (0: never judged)."""

    health: Health = Health.UNKNOWN
    message: str = ""
    since: float = 0.0


@dataclass(frozen=True, slots=True)
class UnitState:
    """What an agent saw systemd report for a unit (``states/<machine>/<name>``), with the
    unit's health (``health``, ``health_message``, ``health_since`` as in UnitHealth)."""

    machine: str
    name: str
    hash: str
    load_state: str
    active_state: str
    sub_state: str
    since: float = 0.0
    health: Health = Health.UNKNOWN
    health_message: str = ""
    health_since: float = 0.0

    @property
    def unit_health(self) -> UnitHealth:
        return UnitHealth(self.health, self.health_message, self.health_since)


@dataclass(frozen=True, slots=True)
class MachineFlags:
    """Operator flags for a machine (``machine-flags/<id>``)."""

    unschedulable: bool = False
    draining: bool = False
    metadata_overrides: tuple[tuple[str, str], ...] = ()


UNREGISTERED = "is not registered"
"""How a placement reason says a machine it needs is not registered (``pinned to machine
X, which is not registered``, ``machine X is not registered``)."""
NO_MACHINES = "no machines registered"


def awaits_machines(reason: str) -> bool:
    """True for a placement reason that may go away by itself as machines (re-)register:
    a machine the unit needs is not registered, or none is.  A machine re-registers after
    a restart of its fleetd or a blink of its etcd connection, so such a reason is not an
    answer to wait for (fleetctl's blocking commands keep waiting)."""
    return UNREGISTERED in reason or NO_MACHINES in reason


@dataclass(frozen=True, slots=True)
class Placement:
    """Why the engine could not place a unit (``placement/<name>``).

    ``summary`` is one line for listings; ``rejections`` pairs each machine id
    with the reason it was rejected (e.g. ``("m2", "needs 2G memory, 512M free")``).
    """

    name: str
    summary: str
    rejections: tuple[tuple[str, str], ...] = ()
    since: float = 0.0


@dataclass(frozen=True, slots=True)
class GuardRecord:
    """``engine/guard``: the engine leader's mass-loss guard holds (fleetd/engine/guard.py):
    the units of the ``absent`` machines (``units`` of them, as of its last full pass) stay
    where they are until ``until``; ``since`` is when it started (wall-clock seconds).
    ``cause`` is ``mass loss`` or ``new leader``."""

    cause: str
    reason: str
    since: float
    until: float
    absent: tuple[str, ...] = ()
    units: int = 0
