"""The engine's reaction to every kind of change: CPU per change, and whether the pass was scoped.

    .venv/bin/python benchmarks/engine_incremental.py [--small | --tiny] [--strategy spread]

For each size (10,000 units onto 1,000 machines, 100,000 onto 5,000; the
mixed workload of benchmarks/workload.py, 1,000 of its units instances of
one template) it loads the engine's model, places everything with a full
pass, then makes one change at a time through the model's own methods (as
the registry mirrors do) and reacts to it as the engine's reconcile does
(engine/engine.py): the change log says what changed or why the pass must be
full; a scoped pass (engine/scope.py over the kept machine slots) or a full
``plan()`` of a snapshot; the writes applied to the model; after a full
pass the kept slots rebuilt (the engine does that in a worker thread: it is
CPU all the same).  Timed, in CPU milliseconds (this process, every
thread): the change applied to the model plus that pass, median of a few
changes of the kind, the largest in brackets.  No I/O: the etcd writes are
those of ``writes`` (see engine_etcd.py for their cost).

Kinds: a new unit; a running unit stopped; a machine lost (its units move);
a machine joined; a placed unit's constraint changed (pinned elsewhere with
``MachineID=``, so it moves); a new version of the template (all 1,000
instances get a new hash in one change); a Global unit's metadata condition
changed (it leaves one rack's machines, or comes back); a machine cordoned;
the end of the grace period of three AtMostOnce units of a lost machine; a
machine with
20 units drained (every pass until it is empty: the start-first copies, and
once the agents report them up, the old copies' removal); a start-first
rollout's batch of 100 units (their new version started first away from the
old copies, which go once the new ones are reported up); the plain units of
a busy machine asked to move to the machine with the most room (as a
maintenance brings units back: start-first, every pass until they moved); a
new unit with
``Replaces=`` of a placed unit, pinned to its machine (so that unit moves);
a machine's metadata changed (``disk=ssd`` to ``hdd``: its units that need
``ssd`` move).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workload import machines, units

from fleetd.engine.cadence import Cadence
from fleetd.engine.changes import Cause, FullReason
from fleetd.engine.index import Strategy
from fleetd.engine.model import ClusterModel
from fleetd.engine.plan import UnitSpec, plan
from fleetd.engine.scope import Scope, plan_scope
from fleetd.engine.settings import EngineSettings
from fleetd.model import DesiredState, Health, Machine, MachineFlags, UnitState
from fleetd.requirements import Requirements
from fleetd.requirements import parse_metadata_condition as cond

SIZES = {"tiny": (2_000, 100), "small": (10_000, 1_000), "large": (100_000, 5_000)}
TEMPLATE = "web@"
DRAINED = 20  # units on the drained machine
ROLLING = 100  # instances in a rolling update's batch (--max-parallel)
BUDGET_MS = 20_000.0  # CPU per kind, after which no more samples are taken (at least 3)


@dataclass(frozen=True, slots=True)
class Pass:
    """One reaction: what kind of pass ran (``scoped`` or the full pass's reason), its
    writes."""

    kind: str
    writes: int


class Reconciler:
    """A ClusterModel driven as the engine's reconcile loop drives it (engine/engine.py),
    on a clock of its own, without I/O."""

    def __init__(self, model: ClusterModel, strategy: Strategy) -> None:
        self.model = model
        self.settings = EngineSettings(strategy=strategy)
        self.cadence = Cadence(self.settings)
        self.now = 0.0

    def react(self, due: FullReason | None = None) -> Pass:
        """One pass over what changed since the last one (Engine._choose, _plan, _record),
        its writes applied; the new copies of start-first moves are reported up at once
        (as their agents would before the engine looks)."""
        model, s = self.model, self.settings
        self.cadence.changed()
        changes = self.cadence.changes
        change = model.change()
        found: Scope | FullReason
        if isinstance(change, FullReason):
            found = change
        elif due is not None:
            found = due
        else:
            found = model.scope(
                change,
                self.now,
                wall=0.0,
                grace=s.at_most_once_grace,
                strategy=s.strategy,
                drain_batch=self.cadence.drain_batch(self.now),
                states=self.states(),
            )
        if isinstance(found, Scope):
            result, kind = plan_scope(found), "scoped"
        else:
            if model.ledger is None:
                model.rebuild_ledger()
            snap = model.snapshot(
                self.now,
                wall=0.0,
                grace=s.at_most_once_grace,
                strategy=s.strategy,
                drain_batch=self.cadence.drain_batch(self.now),
                states=self.states(),
            )
            result, kind = plan(snap), f"full ({found.cause}: {found.detail})"
        model.apply_tasks(result.tasks)
        if result.tasks:
            self.cadence.changed()
        model.stopping_begins(result.stopping)
        model.grace(found.units if isinstance(found, Scope) else None, result.graced)
        self.cadence.grace_at = model.grace_ends
        model.forget_machines()
        if kind != "scoped":
            model.kept_slots(s.strategy)
        self.cadence.passed(
            self.now,
            result,
            full=kind != "scoped",
            seconds=0.0,
            changes=changes,
            stopping=bool(model.stopping),
            moving=bool(model.marked or model.moves or result.decision.waiting),
        )
        return Pass(kind, len(result.tasks))

    def timer(self) -> Pass | None:
        """The pass a due timer (a drain batch, units moving start-first, a held AtMostOnce
        unit's grace period, the guard's end) runs next, the clock moved to it; None if none
        is set (the safety pass is no timer)."""
        cadence = self.cadence
        timers = (cadence.wake_at, cadence.drain_due, cadence.grace_at, cadence.look_at)
        due = [t for t in timers if t is not None]
        if not due:
            return None
        self.now = max(self.now, min(due))
        self.model.graced_out(self.now)  # as the engine's loop: those units changed
        timer = cadence.due(self.now)
        return self.react(timer if timer is not None and timer.cause is Cause.TIMER else None)

    def states(self) -> dict[tuple[str, str], UnitState]:
        """Every copy a start-first move waits for, reported active and healthy."""
        found = {}
        for machine, unit in self.model.marked:
            entry = self.model.schedule[(machine, unit)]
            found[(unit, machine)] = UnitState(
                machine, unit, entry.hash, "loaded", "active", "running", 0.0, Health.HEALTHY
            )
        return found

    def full_pass(self) -> Pass:
        return self.react(FullReason(Cause.REQUESTED, "benchmark"))


def spec(name: str, req: Requirements, version: str = "h") -> UnitSpec:
    return UnitSpec(name, version, DesiredState.LAUNCHED, req)


def cpu_ms(fn: Callable[[], object]) -> tuple[float, object]:
    started = time.process_time()
    result = fn()
    return (time.process_time() - started) * 1000, result


class Changes:
    """Each kind of change as a function that makes one more of it and reacts (every pass
    until the change is done: one, but for a drain)."""

    def __init__(self, engine: Reconciler, fleet: list[Machine], instances: int) -> None:
        self.engine = engine
        self.instances = instances
        self.model = engine.model
        self.fleet = fleet
        self.counter: Iterator[int] = iter(range(1_000_000))
        self.drained = self.left = 0  # units on the last machine drained, before and after
        self.moved = self.asked_for = 0  # units of the last move request: moved, asked
        self.took = 0.0  # CPU ms of the last change and the passes it took
        ledger = self.model.ledger
        assert ledger is not None
        # Plain running units (no constraint but reservations), in a fixed order.
        self.plain = sorted(
            (n for n in ledger.machines_of if n.startswith("u") and self._plain(n)),
            key=lambda n: int(n[1:].split(".")[0]),
        )

    def _plain(self, name: str) -> bool:
        req = self.model.units[name].requirements
        return not (req.metadata or req.machine_id or req.conflicts or req.machine_of)

    def _where(self, unit: str) -> str:
        assert self.model.ledger is not None
        return min(self.model.ledger.machines_of[unit])

    def _free(self, machine: str) -> tuple[int, int]:
        """CPU and memory not reserved on ``machine``."""
        model = self.model
        assert model.ledger is not None
        capacity = model.machines[machine].capacity
        cpu, mem, _ = model.ledger.load.get(machine) or (0, 0, 0)
        return capacity.cpu_millis - cpu, capacity.memory_bytes - mem

    def _with_room(self, avoid: str) -> str:
        """A live schedulable machine other than ``avoid`` with the most free CPU."""
        live = [m for m in self.model.machines if m != avoid and m not in self.model.flags]
        return max(live, key=lambda m: self._free(m)[0])

    def _timed(
        self, change: Callable[[], object], react: Callable[[], list[Pass]] | None = None
    ) -> list[Pass]:
        """``change`` made and reacted to (one pass, or ``react``), in ``took`` CPU ms: what
        was chosen before is not counted."""
        started = time.process_time()
        change()
        made = react() if react is not None else [self.engine.react()]
        self.took = (time.process_time() - started) * 1000
        return made

    def new_unit(self) -> list[Pass]:
        name = f"new{next(self.counter)}.service"
        new = spec(name, Requirements(cpu_millis=250, memory_bytes=256 << 20))
        return self._timed(lambda: self.model.set_unit(name, new))

    def stop(self) -> list[Pass]:
        name = self.plain.pop()
        stopped = replace(self.model.units[name], desired=DesiredState.INACTIVE)
        return self._timed(lambda: self.model.set_unit(name, stopped))

    def lose(self) -> list[Pass]:
        machine = self._busiest(DRAINED)
        return self._timed(lambda: self.model.drop_machine(machine, self.engine.now))

    def join(self) -> list[Pass]:
        i = next(self.counter)
        like = self.fleet[i % len(self.fleet)]
        new = replace(like, id=f"{i:08x}" + "j" * 24, hostname=f"joined{i}")
        return self._timed(lambda: self.model.put_machine(new))

    def constraint(self) -> list[Pass]:
        name = self.plain.pop()
        old = self.model.units[name]
        target = self._with_room(self._where(name))
        pinned = replace(old, requirements=replace(old.requirements, machine_id=target))
        return self._timed(lambda: self.model.set_unit(name, pinned))

    def new_version(self) -> list[Pass]:
        version = f"v{next(self.counter)}"
        names = [f"{TEMPLATE}{i}.service" for i in range(self.instances)]
        new = [replace(self.model.units[name], hash=version) for name in names]

        def write() -> None:
            for unit in new:
                self.model.set_unit(unit.name, unit)

        return self._timed(write)

    def global_constraint(self) -> list[Pass]:
        """A Global unit leaves the machines of one rack (``rack!=kN``), or comes back."""
        name = "global1.service"
        old = self.model.units[name]
        meta = () if old.requirements.metadata else (cond(f"rack!=k{next(self.counter) % 4}"),)
        new = replace(old, requirements=replace(old.requirements, metadata=meta))
        return self._timed(lambda: self.model.set_unit(name, new))

    def grace(self) -> list[Pass]:
        """Three AtMostOnce units of a machine that is lost are placed once their grace
        period ends (the loss and the pass that holds them are not timed)."""
        model = self.model
        assert model.ledger is not None
        plain = set(self.plain)
        machine = next(
            m for m in model.machines if m not in model.flags and len(self._plain_on(m, plain)) >= 3
        )
        for name in self._plain_on(machine, plain)[:3]:
            old = model.units[name]
            model.set_unit(
                name, replace(old, requirements=replace(old.requirements, at_most_once=True))
            )
            self.plain.remove(name)
        self.engine.react()
        model.drop_machine(machine, self.engine.now)
        self.engine.react()
        return self._timed(lambda: None, lambda: [p for p in [self.engine.timer()] if p])

    def _plain_on(self, machine: str, plain: set[str]) -> list[str]:
        assert self.model.ledger is not None
        return sorted(u for u in self.model.ledger.units_on.get(machine, ()) if u in plain)

    def cordon(self) -> list[Pass]:
        busy = self._busiest(0)
        return self._timed(lambda: self.model.set_flags(busy, MachineFlags(unschedulable=True)))

    def drain(self) -> list[Pass]:
        model = self.model
        assert model.ledger is not None
        machine = self._busiest(DRAINED)
        self.drained = len(model.ledger.units_on.get(machine, ()))
        flags = MachineFlags(unschedulable=True, draining=True)
        passes = self._timed(lambda: model.set_flags(machine, flags), lambda: self._drain(machine))
        self.left = len(model.ledger.units_on.get(machine, ()))
        return passes

    def _drain(self, machine: str) -> list[Pass]:
        """Every pass until ``machine`` is empty (or only pinned units are left)."""
        model = self.model
        assert model.ledger is not None
        passes = [self.engine.react()]
        while model.ledger.units_on.get(machine) or model.marked:
            after = self.engine.timer()
            if after is None:
                break  # what is left cannot leave (pinned there)
            if len(passes) > 4 * DRAINED:
                raise SystemExit(f"the drain of {machine} does not finish")
            passes.append(after)
        return passes

    def rolling(self) -> list[Pass]:
        """A start-first rollout's batch (``--max-parallel 100``): 100 units (instances
        of the template here) get a new version pinned where their old copies run
        (docs/rollouts.md), so each starts first elsewhere and the old copy goes once the
        new one is reported up (every pass until the batch is done)."""
        model = self.model
        assert model.ledger is not None
        version = f"v{next(self.counter)}"
        start = next(self.counter) * ROLLING % self.instances
        names = [f"{TEMPLATE}{(start + i) % self.instances}.service" for i in range(ROLLING)]
        new = []
        for name in names:
            old = model.units[name]
            pins = tuple(sorted((m, old.hash) for m in model.ledger.machines_of[name]))
            new.append(replace(old, hash=version, pinned=pins))

        def write() -> None:
            for unit in new:
                model.set_unit(unit.name, unit)

        def react() -> list[Pass]:
            passes = [self.engine.react()]
            while model.marked:
                after = self.engine.timer()
                if after is None or len(passes) > 20:
                    raise SystemExit("the rolling update's batch does not finish")
                passes.append(after)
            return passes

        made = self._timed(write, react)
        for unit in new:  # the rollout's next step: the batch is done, its pins go
            model.set_unit(unit.name, replace(model.units[unit.name], pinned=()))
        self.engine.react()
        return made

    def asked(self) -> list[Pass]:
        """A maintenance asks the plain units of a busy machine (no constraint) to move to
        the machine with the most room (as when it brings units back): each moves
        start-first, the old copy goes once the new one is reported up (every pass until
        they moved); those that do not fit there stay."""
        model = self.model
        assert model.ledger is not None
        source = self._busiest(DRAINED)
        target = self._with_room(source)
        on = sorted(model.ledger.units_on.get(source, ()))
        moves = {u: target for u in on if self._plain(u) and u not in model.ledger.globals}

        def react() -> list[Pass]:
            passes = [self.engine.react()]
            while model.marked:
                after = self.engine.timer()
                if after is None or len(passes) > 20:
                    raise SystemExit("the moves asked for do not finish")
                passes.append(after)
            return passes

        made = self._timed(lambda: model.request_moves(moves), react)
        self.moved = sum(1 for u in moves if target in model.ledger.machines_of.get(u, ()))
        self.asked_for = len(moves)
        model.request_moves({})  # the maintenance's next step
        self.engine.react()
        return made

    def tidy(self) -> None:
        """After each change, untimed: drained machines are released (as after a
        maintenance), so what follows is not planned beside a drain."""
        drained = [m for m, flags in self.model.flags.items() if flags.draining]
        for machine in drained:
            self.model.set_flags(machine, None)
        if drained:
            self.engine.react()

    def replaces(self) -> list[Pass]:
        cpu, mem = 100, 64 << 20
        # A unit on a machine with room for the new one, which then takes its place.
        victim = next(
            u
            for u in reversed(self.plain)
            if self._where(u) not in self.model.flags
            and all(f >= n for f, n in zip(self._free(self._where(u)), (cpu, mem), strict=True))
        )
        self.plain.remove(victim)
        machine = self._where(victim)
        name = f"rep{next(self.counter)}.service"
        req = Requirements(machine_id=machine, replaces=(victim,), cpu_millis=cpu, memory_bytes=mem)
        new = spec(name, req)
        return self._timed(lambda: self.model.set_unit(name, new))

    def metadata(self) -> list[Pass]:
        machine = self.model.machines[self._busiest(0, "ssd")]
        labels = tuple((k, "hdd" if k == "disk" else v) for k, v in machine.metadata)
        relabelled = replace(machine, metadata=labels)
        return self._timed(lambda: self.model.put_machine(relabelled))

    def _busiest(self, units: int, disk: str = "") -> str:
        """A live, unflagged machine with ``units`` units (the nearest count; 0: the most),
        with ``disk=<disk>`` if given; a different one each time."""
        model = self.model
        assert model.ledger is not None
        on = model.ledger.units_on
        found = [
            m.id
            for m in model.machines.values()
            if m.id not in model.flags and (not disk or ("disk", disk) in m.metadata)
        ]
        found.sort(
            key=lambda m: (abs(len(on.get(m, ())) - units) if units else -len(on.get(m, ())), m)
        )
        return found[next(self.counter) % 3]


def build(
    n_units: int, n_machines: int, instances: int, strategy: Strategy
) -> tuple[Reconciler, list[Machine]]:
    fleet = machines(n_machines)
    model = ClusterModel()
    for machine in fleet:
        model.put_machine(machine)
    for name, req in units(n_units - instances, fleet):
        model.set_unit(name, spec(name, req))
    template = Requirements(cpu_millis=100, memory_bytes=128 << 20)
    for i in range(instances):
        name = f"{TEMPLATE}{i}.service"
        model.set_unit(name, spec(name, template))
    return Reconciler(model, strategy), fleet


def run(n_units: int, n_machines: int, strategy: Strategy, samples: int, only: str) -> None:
    instances = min(1_000, n_units // 10)
    engine, fleet = build(n_units, n_machines, instances, strategy)
    first_ms, _ = cpu_ms(engine.react)
    placed = sum(1 for _ in engine.model.schedule)
    full = sorted(cpu_ms(engine.full_pass)[0] for _ in range(3))
    print(
        f"{n_units:>7} units / {n_machines:>5} machines [{strategy}]: first pass "
        f"{first_ms:,.0f} CPU ms ({placed} entries); a full pass with nothing to do "
        f"{full[1]:,.0f} CPU ms (plan + kept slots rebuilt)"
    )
    changes = Changes(engine, fleet, instances)
    kinds: tuple[tuple[str, Callable[[], list[Pass]], int], ...] = (
        ("new unit", changes.new_unit, samples),
        ("unit stopped", changes.stop, samples),
        ("machine lost", changes.lose, samples),
        ("machine joined", changes.join, samples),
        ("constraint of a placed unit", changes.constraint, samples),
        (f"new version, {instances} instances", changes.new_version, samples),
        ("Global unit's constraint", changes.global_constraint, samples),
        ("cordon", changes.cordon, samples),
        ("AtMostOnce grace ends", changes.grace, samples),
        ("drain of a machine", changes.drain, samples),
        (f"start-first rollout, {ROLLING} units", changes.rolling, samples),
        ("units asked to move", changes.asked, samples),
        ("metadata changed", changes.metadata, samples),
        ("Replaces= a placed unit", changes.replaces, samples),
    )
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    for label, make, times in kinds:
        if wanted and not any(label.startswith(w) for w in wanted):
            continue
        took: list[float] = []
        passes: list[Pass] = []
        while len(took) < times and (len(took) < 3 or sum(took) < BUDGET_MS):
            passes = make()
            took.append(changes.took)
            changes.tidy()
        how = "; ".join(sorted({p.kind for p in passes}))
        count = f"{len(passes)} passes, " if len(passes) > 1 else ""
        if make == changes.drain:
            count += f"{changes.drained} units, {changes.left} pinned there, "
        if make == changes.asked:
            count += f"{changes.moved} of {changes.asked_for} moved, "
        print(
            f"{'':>8}{label:<31} {statistics.median(took):9.2f} CPU ms "
            f"[{max(took):,.1f}] ({count}{sum(p.writes for p in passes)} writes) {how}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", choices=[s.value for s in Strategy], default="binpack")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--small", action="store_true", help="only 10,000 units / 1,000 machines")
    size.add_argument("--tiny", action="store_true", help="only 2,000 units / 100 machines")
    size.add_argument("--large", action="store_true", help="only 100,000 units / 5,000 machines")
    parser.add_argument("--only", default="", help="kinds to time, comma separated (prefixes)")
    parser.add_argument("--samples", type=int, default=10, help="changes of each kind at most")
    args = parser.parse_args()
    chosen = [n for n in SIZES if getattr(args, n)] or ["small", "large"]
    for size_name in chosen:
        run(*SIZES[size_name], Strategy(args.strategy), args.samples, args.only)


if __name__ == "__main__":
    main()
