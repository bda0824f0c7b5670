"""A small cluster in a memory registry, served with its dashboard on loopback
(``fleetd/testing/uiserver.py``), for the browser tests of tests/component."""

from __future__ import annotations

from pathlib import Path

import leakcheck

from fleetd import model
from fleetd.registry.store import Store
from fleetd.testing.uiserver import SECRETS
from fleetd.unitfile import UnitFile

# The browser tests type these into the sign-in form: none may show in the run's logs.
for _role, _secret in SECRETS.items():
    leakcheck.secret(_secret, f"dashboard {_role} token")

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "screenshots"
MACHINES = {f"m{i}": f"{i:x}" * 32 for i in (1, 2, 3)}
SERVICE = "[Unit]\nDescription=ui {name}\n\n[Service]\nExecStart=/bin/sleep 100000\n"
UNITS = {"web.service": "m1", "api.service": "m2", "db.service": "m3"}
LEASE_TTL = 3600


async def seed(store: Store) -> None:
    """Machines m1..m3, and a unit running on each (as its agent would report it)."""
    for i, (name, machine_id) in enumerate(MACHINES.items()):
        machine = model.Machine(
            id=machine_id,
            hostname=name,
            public_ip=f"10.0.0.{i + 1}",
            metadata=(("role", "web" if i == 0 else "db"),),
            capacity=model.Capacity(2000, 4 << 30),
            version="0.1.0",
        )
        await store.register_machine(machine, await store.registry.grant_lease(LEASE_TTL))
    for name, on in UNITS.items():
        parsed = UnitFile.from_text(SERVICE.format(name=name))
        unit = model.Unit(name, parsed.to_text(), parsed.hash, model.DesiredState.LAUNCHED)
        await store.put_unit(unit)
        machine = MACHINES[on]
        entry = model.ScheduleEntry(machine, name, parsed.hash, model.DesiredState.LAUNCHED)
        await store.registry.batch([store.schedule_op(entry)])
        state = model.UnitState(machine, name, parsed.hash, "loaded", "active", "running")
        await store.put_states(machine, [state], await store.registry.grant_lease(LEASE_TTL))
