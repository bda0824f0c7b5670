"""Feasibility checks (Nomad style) and bounded summaries of why a unit fits nowhere (pure).

Each check looks at one unit and one machine and returns a Reason when the
machine is rejected, or None.  ``explain`` runs them over every machine and
folds the result into one message that stays short with thousands of
machines: "m1: conflicts with web@1.service; m2: needs 2G memory, 512M free"
or "1000 machines: needs 2G memory (max free 1G)".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fleetd.engine.groups import MetadataGroups
from fleetd.engine.occupancy import Occupancy
from fleetd.engine.slot import Slot
from fleetd.model import NO_MACHINES, UNREGISTERED
from fleetd.requirements import Requirements, format_cpu, format_memory

MAX_LISTED = 8
"""Up to this many machines, every machine's reason is listed."""
MAX_GROUPS = 6
"""Beyond MAX_LISTED machines, at most this many reason groups are shown."""


@dataclass(frozen=True, slots=True)
class Reason:
    """Why one machine was rejected.

    ``group`` is the part every machine rejected the same way shares (the
    summary key); ``free`` is the free amount for capacity reasons.
    """

    text: str
    group: str = ""
    free: int = -1
    memory: bool = False

    @property
    def key(self) -> str:
        return self.group or self.text


class Checker:
    """The checks of one scheduling pass, over its metadata groups and occupancy."""

    def __init__(self, groups: MetadataGroups, occupancy: Occupancy) -> None:
        self.groups = groups
        self.occupancy = occupancy

    def flags(self, name: str, req: Requirements, slot: Slot, cpu: int, mem: int) -> Reason | None:
        if slot.draining:
            return Reason("machine is draining")
        if slot.unschedulable:
            return Reason("machine is unschedulable")
        return None

    def systemd(
        self, name: str, req: Requirements, slot: Slot, cpu: int, mem: int
    ) -> Reason | None:
        if not slot.systemd_connected:
            return Reason("agent cannot reach systemd")
        return None

    def machine_id(
        self, name: str, req: Requirements, slot: Slot, cpu: int, mem: int
    ) -> Reason | None:
        if req.machine_id is None or slot.id.startswith(req.machine_id):
            return None
        return Reason(f"unit is pinned to machine {req.machine_id}")

    def metadata(
        self, name: str, req: Requirements, slot: Slot, cpu: int, mem: int
    ) -> Reason | None:
        text = self.groups.reason(req.metadata, slot)
        if text is None:
            return None
        # "metadata rack=a wanted, rack=b": machines differ only after the comma.
        return Reason(text, group=text.partition(", ")[0])

    def machine_of(
        self, name: str, req: Requirements, slot: Slot, cpu: int, mem: int
    ) -> Reason | None:
        for peer in req.machine_of:
            machines = self.occupancy.machines_of(peer)
            if slot.id not in machines:
                where = ", ".join(sorted(machines)) or "nowhere"
                return Reason(f"must run with {peer} (placed on {where})")
        return None

    def conflicts(
        self, name: str, req: Requirements, slot: Slot, cpu: int, mem: int
    ) -> Reason | None:
        text = self.occupancy.conflict(name, req, slot.id)
        if text is None:
            return None
        return Reason(text, group="conflicts with units there")

    def capacity(
        self, name: str, req: Requirements, slot: Slot, cpu: int, mem: int
    ) -> Reason | None:
        if mem > slot.free_mem:
            need = f"needs {format_memory(mem)} memory"
            free = max(slot.free_mem, 0)
            return Reason(f"{need}, {format_memory(free)} free", need, free, memory=True)
        if cpu > slot.free_cpu:
            need = f"needs {format_cpu(cpu)} CPU"
            free = max(slot.free_cpu, 0)
            return Reason(f"{need}, {format_cpu(free)} free", need, free)
        return None

    def first(
        self, checks: Sequence[Check], name: str, req: Requirements, slot: Slot, cpu: int, mem: int
    ) -> Reason | None:
        for check in checks:
            reason = check(self, name, req, slot, cpu, mem)
            if reason is not None:
                return reason
        return None

    def explain(
        self, name: str, req: Requirements, slots: Sequence[Slot], cpu: int, mem: int
    ) -> Explanation:
        """Why ``name`` fits on none of ``slots``: one bounded message, plus a bounded
        sample of (machine, reason) pairs (every machine when there are few)."""
        if not slots and req.machine_id is None:
            return Explanation(NO_MACHINES)
        prefix = ""
        if req.machine_of:
            # Only the peers' machines are candidates: explain those.
            common: set[str] | None = None
            for peer in req.machine_of:
                machines = self.occupancy.machines_of(peer)
                if not machines:
                    return Explanation(f"must run with {peer}, which is not placed")
                common = set(machines) if common is None else common & machines
            slots = [s for s in slots if s.id in (common or ())]
            if not slots:
                peers = ", ".join(req.machine_of)
                return Explanation(f"must run with {peers}, which are on different machines")
            prefix = f"must run with {', '.join(req.machine_of)}: "
        elif req.machine_id is not None:
            slots = [s for s in slots if s.id.startswith(req.machine_id)]
            if not slots:
                return Explanation(f"pinned to machine {req.machine_id}, which {UNREGISTERED}")
            prefix = f"pinned to machine {req.machine_id}: "
        checks = FOLLOWER_PLACEMENT if req.machine_of else NEW_PLACEMENT
        rejections = []
        for slot in slots:
            reason = self.first(checks, name, req, slot, cpu, mem)
            if reason is None:
                reason = Reason("room was freed during this pass; retried on the next one")
            rejections.append((slot.id, reason))
        return Explanation(prefix + summarise(rejections), sample(rejections))


@dataclass(frozen=True, slots=True)
class Explanation:
    text: str
    rejections: tuple[tuple[str, str], ...] = ()


Check = Callable[[Checker, str, Requirements, Slot, int, int], "Reason | None"]

NEW_PLACEMENT: tuple[Check, ...] = (
    Checker.flags,
    Checker.systemd,
    Checker.machine_id,
    Checker.metadata,
    Checker.machine_of,
    Checker.conflicts,
    Checker.capacity,
)
"""Checks for a new placement, in the order their reasons are reported."""

FOLLOWER_PLACEMENT: tuple[Check, ...] = NEW_PLACEMENT[1:]
"""A MachineOf follower goes where its peer is, even on a cordoned or draining machine
(not where systemd cannot be reached: it would not start there)."""

KEEP_PLACEMENT: tuple[Check, ...] = (
    Checker.machine_id,
    Checker.metadata,
    Checker.machine_of,
    Checker.conflicts,
    Checker.capacity,
)
"""Checks that decide whether a unit stays where it is (cordoning does not move units, nor
does an agent that lost systemd: they keep running without it)."""


def sample(rejections: Sequence[tuple[str, Reason]]) -> tuple[tuple[str, str], ...]:
    """Every (machine, reason) up to MAX_LISTED machines, else the first of each of the
    MAX_GROUPS largest groups."""
    if len(rejections) <= MAX_LISTED:
        return tuple((machine, reason.text) for machine, reason in rejections)
    first: dict[str, tuple[str, str]] = {}
    sizes: dict[str, int] = {}
    for machine, reason in rejections:
        first.setdefault(reason.key, (machine, reason.text))
        sizes[reason.key] = sizes.get(reason.key, 0) + 1
    largest = sorted(sizes, key=lambda key: -sizes[key])[:MAX_GROUPS]
    return tuple(first[key] for key in largest)


def summarise(rejections: Sequence[tuple[str, Reason]]) -> str:
    """Per-machine reasons, grouped by kind when there are more than MAX_LISTED machines."""
    if len(rejections) <= MAX_LISTED:
        return "; ".join(f"{machine}: {reason.text}" for machine, reason in rejections)
    groups: dict[str, list[tuple[str, Reason]]] = {}
    for machine, reason in rejections:
        groups.setdefault(reason.key, []).append((machine, reason))
    ordered = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    parts: list[str] = []
    for key, members in ordered[:MAX_GROUPS]:
        if len(members) == 1:
            machine, reason = members[0]
            parts.append(f"{machine}: {reason.text}")
            continue
        text = f"{len(members)} machines: {key}"
        sample = members[0][1]
        if sample.free >= 0:
            most = max(r.free for _, r in members)
            text += f" (max free {format_memory(most) if sample.memory else format_cpu(most)})"
        parts.append(text)
    rest = sum(len(members) for _, members in ordered[MAX_GROUPS:])
    if rest:
        parts.append(f"{rest} more machines: other reasons")
    return "; ".join(parts)
