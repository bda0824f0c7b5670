"""One machine as the scheduler sees it, and the metadata shapes it is grouped by (pure).

A leaf module: the metadata groups (engine/groups.py) and the capacity
index (engine/index.py) both work on slots, and neither imports the other's
module for them.
"""

from __future__ import annotations

from fleetd.requirements import MetadataCondition

Conditions = tuple[MetadataCondition, ...]
"""A unit's ``MachineMetadata=`` conditions."""
Signature = tuple[tuple[str, str], ...]
"""A machine's effective metadata, sorted (machines with the same one form a group)."""


class Slot:
    """One machine during a pass: room left, unit count, flags and whether its agent
    reaches systemd (mutable, internal).

    ``number`` is the slot's position in machine-id order when its slots were built
    (engine/slots.py); the capacity index breaks ties by it and finds slots by it.
    """

    __slots__ = (
        "cap_cpu",
        "cap_mem",
        "count",
        "draining",
        "free_cpu",
        "free_mem",
        "id",
        "number",
        "signature",
        "systemd_connected",
        "unschedulable",
    )

    def __init__(
        self,
        machine_id: str,
        signature: Signature,
        cpu: int,
        mem: int,
        unschedulable: bool = False,
        draining: bool = False,
        systemd_connected: bool = True,
    ) -> None:
        self.id = machine_id
        self.number = 0
        self.signature = signature
        self.cap_cpu = self.free_cpu = cpu
        self.cap_mem = self.free_mem = mem
        self.count = 0
        self.unschedulable = unschedulable
        self.draining = draining
        self.systemd_connected = systemd_connected

    @property
    def schedulable(self) -> bool:
        return self.systemd_connected and not (self.unschedulable or self.draining)

    def fits(self, cpu: int, mem: int) -> bool:
        return cpu <= self.free_cpu and mem <= self.free_mem

    def copy(self) -> Slot:
        """A copy a pass may change."""
        new = Slot.__new__(Slot)
        new.id, new.number, new.signature = self.id, self.number, self.signature
        new.cap_cpu, new.cap_mem = self.cap_cpu, self.cap_mem
        new.free_cpu, new.free_mem, new.count = self.free_cpu, self.free_mem, self.count
        new.unschedulable, new.draining = self.unschedulable, self.draining
        new.systemd_connected = self.systemd_connected
        return new
