"""Reaction to one change: full plan (before) against the incremental, scoped pass (after).

    .venv/bin/python benchmarks/engine_incremental.py [--small] [--strategy spread]

For each size (10,000 units onto 1,000 machines, 100,000 onto 5,000; the
mixed workload of benchmarks/workload.py) it loads the engine's model,
places everything with a full pass, then times, in CPU milliseconds, how
long the engine takes to decide what to write after

- one new unit is submitted (median of 20),
- one running unit is stopped (median of 20; the room it frees is offered to
  units waiting for room),
- one machine is lost (median of 5; its units move elsewhere),

once with a full ``plan()`` of a fresh snapshot (what every event cost
before) and once with the scoped pass (engine/scope.py, over the machine
slots the model keeps, engine/slots.py).  No I/O: the etcd writes are the
same either way (see engine_etcd.py).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workload import machines, units

from fleetd.engine.changes import Change
from fleetd.engine.index import Strategy
from fleetd.engine.model import ClusterModel
from fleetd.engine.plan import Plan, UnitSpec, plan
from fleetd.engine.scope import Scope, plan_scope
from fleetd.model import DesiredState
from fleetd.requirements import Requirements

SIZES = ((10_000, 1_000), (100_000, 5_000))


def _full(model: ClusterModel, strategy: Strategy) -> Plan:
    snap = model.snapshot(0.0, wall=0.0, grace=0.0, strategy=strategy, drain_batch=None)
    return plan(snap)


def _scoped(model: ClusterModel, strategy: Strategy) -> Plan:
    change = model.change()
    assert isinstance(change, Change), change
    found = model.scope(change, 0.0, wall=0.0, grace=0.0, strategy=strategy)
    assert isinstance(found, Scope), found
    return plan_scope(found)


def _time(fn: Callable[[], Plan]) -> tuple[float, Plan]:
    started = time.process_time()
    result = fn()
    return (time.process_time() - started) * 1000, result


def run(n_units: int, n_machines: int, strategy: Strategy) -> None:
    fleet = machines(n_machines)
    model = ClusterModel()
    for machine in fleet:
        model.put_machine(machine)
    for name, req in units(n_units, fleet):
        model.set_unit(name, UnitSpec(name, "h", DesiredState.LAUNCHED, req))
    started = time.process_time()
    model.rebuild_ledger()
    index_ms = (time.process_time() - started) * 1000
    first = _full(model, strategy)
    model.apply_tasks(first.tasks)
    model.change()  # every pass takes what changed from the model's change log
    started = time.process_time()
    model.kept_slots(strategy)  # as the engine does after a full pass (in a thread)
    fleet_ms = (time.process_time() - started) * 1000
    print(
        f"{n_units:>7} units / {n_machines:>5} machines [{strategy}]: "
        f"{first.placed} placed, {first.unplaceable} unplaceable; "
        f"ledger built in {index_ms:.0f} CPU ms, kept machine slots in {fleet_ms:.0f} CPU ms"
    )
    counter = iter(range(1_000_000))
    assert model.ledger is not None
    running = sorted(n for n in model.ledger.machines_of if n.startswith("u"))

    def submit() -> None:
        name = f"new{next(counter)}.service"
        req = Requirements(cpu_millis=250, memory_bytes=256 << 20)
        model.set_unit(name, UnitSpec(name, "h", DesiredState.LAUNCHED, req))

    def stop() -> None:
        name = running.pop()
        model.set_unit(name, replace(model.units[name], desired=DesiredState.INACTIVE))

    def lose() -> None:
        model.drop_machine(sorted(model.machines)[next(counter) % len(model.machines)], 0.0)

    for label, event, times in (
        ("one new unit", submit, 20),
        ("one unit stopped", stop, 20),
        ("one machine lost", lose, 5),
    ):
        samples: dict[str, list[float]] = {"full": [], "scoped": []}
        tasks = 0
        for i in range(times):
            # Both react to the same event on the same state; the scoped writes are applied.
            event()
            ms, _ = _time(lambda: _full(model, strategy))
            samples["full"].append(ms)
            ms, result = _time(lambda: _scoped(model, strategy))
            samples["scoped"].append(ms)
            model.apply_tasks(result.tasks)
            model.forget_machines()
            tasks = len(result.tasks) if i == 0 else tasks
        full, scoped = statistics.median(samples["full"]), statistics.median(samples["scoped"])
        print(
            f"{'':>8}{label:<17} full plan {full:8.1f} CPU ms, scoped {scoped:6.2f} CPU ms "
            f"(max {max(samples['scoped']):.1f}; {full / scoped:,.0f}x; {tasks} writes)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", choices=[s.value for s in Strategy], default="binpack")
    parser.add_argument("--small", action="store_true", help="only 10,000 units / 1,000 machines")
    args = parser.parse_args()
    for n_units, n_machines in SIZES[:1] if args.small else SIZES:
        run(n_units, n_machines, Strategy(args.strategy))


if __name__ == "__main__":
    main()
