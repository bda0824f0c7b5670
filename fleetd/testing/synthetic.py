"""A synthetic cluster written straight into a registry: machines, units, their schedule,
the states agents would publish and the reasons of units that cannot be placed.

For measuring what reads the whole cluster (the dashboard: ``benchmarks/ui_render.py``)
at sizes an in-process cluster takes long to reach; nothing runs the units.  Every
``failed_every``-th unit is reported failed, every ``unplaceable_every``-th is not
placed (with a reason per machine), the rest run on machine ``i % machines``.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetd import model
from fleetd.registry.base import Op
from fleetd.registry.store import Store
from fleetd.unitfile import UnitFile

LEASE_TTL = 24 * 3600
SERVICE = (
    "[Unit]\nDescription=synthetic {name}\n\n[Service]\nExecStart=/bin/sleep 100000\n\n"
    "[X-Fleet]\nCPUReservation={cpu}m\nMemoryReservation={memory}M\n"
)


@dataclass(frozen=True, slots=True)
class Shape:
    machines: int = 100
    units: int = 10_000
    failed_every: int = 97
    unplaceable_every: int = 89


def machine_id(i: int) -> str:
    return f"{i:04x}" + "0" * 28


def unit_name(i: int) -> str:
    return f"svc-{i:05d}.service"


async def seed(store: Store, shape: Shape = Shape()) -> dict[str, int]:
    """Write the cluster; answers each machine's lease (its states live under it)."""
    leases: dict[str, int] = {}
    for i in range(shape.machines):
        machine = model.Machine(
            id=machine_id(i),
            hostname=f"node{i + 1:03d}",
            public_ip=f"10.{i // 250}.{i % 250}.{(i % 200) + 10}",
            metadata=(("rack", f"r{i % 8}"), ("disk", "ssd" if i % 3 else "hdd")),
            capacity=model.Capacity(64_000, 256 << 30),
            version="0.1.0",
        )
        lease = await store.registry.grant_lease(LEASE_TTL)
        await store.register_machine(machine, lease)
        leases[machine.id] = lease
    ops: list[Op] = []
    states: dict[str, list[model.UnitState]] = {m: [] for m in leases}
    ids = list(leases)
    for i in range(shape.units):
        name = unit_name(i)
        parsed = UnitFile.from_text(SERVICE.format(name=name, cpu=100 + i % 5 * 50, memory=64))
        unit = model.Unit(name, parsed.to_text(), parsed.hash, model.DesiredState.LAUNCHED)
        await store.put_unit(unit)
        if shape.unplaceable_every and i % shape.unplaceable_every == 1:
            reasons = tuple((m, "needs 64 GiB of memory, 2 GiB free") for m in ids)
            placement = model.Placement(name, "no machine has enough memory", reasons)
            ops.append(store.placement_op(placement))
            continue
        on = ids[i % len(ids)]
        ops.append(store.schedule_op(model.ScheduleEntry(on, name, unit.hash, unit.desired)))
        failed = bool(shape.failed_every) and i % shape.failed_every == 2
        active, sub = ("failed", "failed") if failed else ("active", "running")
        states[on].append(model.UnitState(on, name, unit.hash, "loaded", active, sub))
    await store.registry.batch(ops)
    for on, found in states.items():
        await store.put_states(on, found, leases[on])
    return leases
