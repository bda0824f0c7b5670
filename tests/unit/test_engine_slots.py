"""The machine slots the engine keeps across scoped passes (engine/slots.py, overlay.py).

Random event sequences check, after every event and every pass, that the
kept slots equal slots built from scratch, that a scoped pass leaves them as
they were, and that from a steady state a scoped pass writes what a full plan
writes.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from fleetd.engine.baseline import Baseline
from fleetd.engine.changes import Change
from fleetd.engine.decision import Job
from fleetd.engine.globs import GlobRelation
from fleetd.engine.index import Strategy
from fleetd.engine.ledger import Ledger
from fleetd.engine.model import ClusterModel
from fleetd.engine.occupancy import Occupancy
from fleetd.engine.plan import Action, Plan, UnitSpec, plan
from fleetd.engine.scheduler import schedule
from fleetd.engine.scope import Scope, plan_scope
from fleetd.engine.slots import Slots
from fleetd.model import Capacity, DesiredState, Machine, MachineFlags
from fleetd.requirements import Requirements
from fleetd.requirements import parse_metadata_condition as cond
from tests.unit.kept import conflicts, describe

G = 1 << 30
WRITES = (Action.SCHEDULE, Action.UNSCHEDULE, Action.UPDATE)


def fresh(model: ClusterModel, kept: Slots) -> Slots:
    """Slots built from scratch with the same capacity classes as ``kept``."""
    assert model.ledger is not None
    built = Slots(
        model.machines.values(), model.flags, model.ledger.load, kept.strategy, kept.index.floor
    )
    assert kept.index.floor == (model.ledger.floor if kept.strategy is Strategy.SPREAD else (0, 0))
    for conditions in kept.index.classes:
        built.index.prepare(conditions)
    return built


def _machine(rnd: random.Random, mid: str) -> Machine:
    return Machine(
        id=mid,
        metadata=(("rack", rnd.choice("ab")), ("cores", str(rnd.choice((2, 8))))),
        capacity=Capacity(rnd.choice((1000, 2000, 4000)), rnd.choice((2, 4, 8)) * G),
    )


def _unit(rnd: random.Random, i: int, names: list[str], machines: list[str]) -> UnitSpec:
    res = {"cpu_millis": rnd.choice((0, 250, 500)), "memory_bytes": rnd.choice((0, 1, 2)) * G}
    kind = rnd.random()
    if kind < 0.15:
        name, req = f"web@{i}.service", Requirements(conflicts=("web@*",), **res)
    elif kind < 0.3:
        meta = (cond(rnd.choice(("rack=a", "rack!=a", "cores>=4", "disk=ssd"))),)
        name, req = f"r{i}.service", Requirements(metadata=meta, **res)
    elif kind < 0.4 and names:
        name, req = f"f{i}.service", Requirements(machine_of=(rnd.choice(names),), **res)
    elif kind < 0.45 and machines:
        name, req = f"p{i}.service", Requirements(machine_id=rnd.choice(machines), **res)
    elif kind < 0.5:
        name, req = f"g{i}.service", Requirements(global_=True, cpu_millis=50)
    else:
        name, req = f"u{i}.service", Requirements(**res)
    return UnitSpec(name, f"h{i}", DesiredState.LAUNCHED, req)


def _event(rnd: random.Random, model: ClusterModel, serial: int) -> str:
    """Apply one random change to ``model``; returns what it was."""
    names, machines = sorted(model.units), sorted(model.machines)
    event = rnd.random()
    if event < 0.3 or not names:
        spec = _unit(rnd, serial, names, machines)
        model.set_unit(spec.name, spec)
        return "submit"
    if event < 0.42:
        name = rnd.choice(names)
        model.set_unit(name, replace(model.units[name], desired=DesiredState.INACTIVE))
        return "stop"
    if event < 0.5:
        name = rnd.choice(names)
        model.set_unit(name, replace(model.units[name], desired=DesiredState.LAUNCHED))
        return "start"
    if event < 0.58:
        model.set_unit(rnd.choice(names), None)
        return "destroy"
    if event < 0.64:
        name = rnd.choice(names)
        spec = model.units[name]
        more = replace(spec.requirements, memory_bytes=rnd.choice((0, 1, 3)) * G)
        model.set_unit(name, replace(spec, hash=spec.hash + "'", requirements=more))
        return "reservation"
    if event < 0.74 and machines:
        model.drop_machine(rnd.choice(machines), 0.0)
        return "leave"
    if event < 0.8:
        model.put_machine(_machine(rnd, f"m{serial:04}"))
        return "join"
    if event < 0.88 and machines:
        old = model.machines[rnd.choice(machines)]
        new = _machine(rnd, old.id)  # other metadata and capacity
        if rnd.random() < 0.5:
            new = replace(new, metadata=old.metadata)
        model.put_machine(new)
        return "machine changed"
    if machines:
        flags = rnd.choice(
            (
                MachineFlags(unschedulable=True),
                MachineFlags(draining=True),
                MachineFlags(metadata_overrides=(("disk", "ssd"),)),
                MachineFlags(metadata_overrides=(("rack", "b"),)),
                None,
            )
        )
        model.set_flags(rnd.choice(machines), flags)
        return "flags"
    return "nothing"


def _full(model: ClusterModel, strategy: Strategy) -> Plan:
    if model.ledger is None:
        model.rebuild_ledger()
    return plan(model.snapshot(0.0, wall=0.0, grace=0.0, strategy=strategy, drain_batch=None))


def _apply(model: ClusterModel, result: Plan) -> None:
    model.apply_tasks(result.tasks)
    model.stopping_begins(result.stopping)
    model.room_freed(result.freed)
    model.forget_machines()
    for unit in list(model.stopping):
        model.stopped(unit)  # it stopped at once


def _writes(result: Plan) -> set[tuple[Action, str, str]]:
    return {(t.action, t.unit, t.machine) for t in result.tasks if t.action in WRITES}


@pytest.mark.parametrize("strategy", list(Strategy))
@pytest.mark.parametrize("seed", range(40))
def test_the_kept_slots_stay_equal_to_fresh_ones(strategy: Strategy, seed: int) -> None:
    rnd = random.Random(seed)
    model = ClusterModel()
    for i in range(rnd.randint(1, 12)):
        model.put_machine(_machine(rnd, f"m{i:04}"))
    for i in range(rnd.randint(0, 40)):
        spec = _unit(rnd, i, sorted(model.units), sorted(model.machines))
        model.set_unit(spec.name, spec)
    _apply(model, _full(model, strategy))
    model.change()
    scoped = agreed = 0
    for step in range(60):
        for mid, flags in list(model.flags.items()):
            if flags.draining:  # drained: scoped passes wait for no drain to be over
                model.set_flags(mid, None)
        # Steady first (a full pass has nothing to write), so that the scoped pass after
        # the event must write exactly what a full plan writes.
        for _ in range(3):
            again = _full(model, strategy)
            _apply(model, again)
            if not _writes(again):
                break
        steady = not _writes(again)
        model.change()
        what = _event(rnd, model, 100 + step)
        kept = model.kept_slots(strategy)
        assert describe(kept) == describe(fresh(model, kept)), what
        change = model.change()
        found = None
        if isinstance(change, Change):
            found = model.scope(change, 0.0, wall=0.0, grace=0.0, strategy=strategy)
        if not isinstance(found, Scope):
            _apply(model, _full(model, strategy))
            continue
        before = describe(found.baseline.slots)
        expected = _full(model, strategy) if steady else None
        result = plan_scope(found)
        assert describe(found.baseline.slots) == before, "a scoped pass changed them"
        if expected is not None:
            assert _writes(result) == _writes(expected), what
            agreed += 1
        scoped += 1
        _apply(model, result)
        kept = model.kept_slots(strategy)
        assert describe(kept) == describe(fresh(model, kept)), what
        rebuilt = Ledger.build(model.units, model.schedule)
        assert model.ledger is not None
        assert conflicts(rebuilt, model) == conflicts(model.ledger, model), what
    assert scoped > 0 and agreed > 0


def test_machines_join_and_leave_the_kept_slots_in_place() -> None:
    model = ClusterModel()
    for i in range(3):
        model.put_machine(Machine(id=f"m{i}", capacity=Capacity(1000, 4 * G)))
    model.rebuild_ledger()
    kept = model.kept_slots(Strategy.BINPACK)
    model.drop_machine("m1", 0.0)
    assert model.kept_slots(Strategy.BINPACK) is kept
    assert sorted(kept.by_id) == ["m0", "m2"]
    model.put_machine(Machine(id="m3", capacity=Capacity(1000, 4 * G)))
    model.put_machine(Machine(id="m1", capacity=Capacity(1000, 4 * G)))  # back again
    joined = model.kept_slots(Strategy.BINPACK)
    assert joined is kept and sorted(joined.by_id) == ["m0", "m1", "m2", "m3"]
    assert describe(joined) == describe(fresh(model, joined))
    assert model.kept_slots(Strategy.SPREAD) is not joined  # another strategy: built anew


def test_machines_that_join_between_two_neighbours_renumber_only_when_no_number_is_left() -> None:
    model = ClusterModel()
    for mid in ("a", "b"):
        model.put_machine(Machine(id=mid, capacity=Capacity(1000, 4 * G)))
    model.rebuild_ledger()
    kept = model.kept_slots(Strategy.SPREAD)
    joins = 0
    while model.kept_slots(Strategy.SPREAD) is kept:
        model.put_machine(Machine(id="a" + "0" * (joins + 1), capacity=Capacity(1000, 4 * G)))
        joins += 1
    assert joins > 8  # the gap between two numbers halves at each join between them
    rebuilt = model.kept_slots(Strategy.SPREAD)
    assert describe(rebuilt) == describe(fresh(model, rebuilt))


def test_units_of_the_pass_are_left_out_of_the_kept_conflicts() -> None:
    kept = GlobRelation(())
    kept.add_glob("web@*", [])
    kept.add("web@1.service", ("web@*",), "m1")
    web = Requirements(conflicts=("web@*",))
    alone = Occupancy([web], kept, skip={"web@1.service"})  # web@1 is placed by the pass
    assert alone.conflict("web@2.service", web, "m1") is None
    assert alone.forbidden("web@2.service", web) == set()
    seen = Occupancy([web], kept)
    assert seen.conflict("web@2.service", web, "m1") == "conflicts with web@1.service"
    assert seen.forbidden("web@2.service", web) == {"m1"}


@pytest.mark.parametrize("strategy", list(Strategy))
def test_a_pass_over_kept_slots_decides_as_over_fresh_ones(strategy: Strategy) -> None:
    rnd = random.Random(7)
    machines = [_machine(rnd, f"m{i:04}") for i in range(8)]
    jobs = [
        Job(spec.name, spec.requirements)
        for spec in (_unit(rnd, i, [], [m.id for m in machines]) for i in range(30))
    ]
    kept = Slots(machines, {}, {}, strategy)  # no capacity class prepared: built per pass
    before = describe(kept)
    baseline = Baseline(kept, give_back={}, peers={}, conflicts=GlobRelation(()))
    on_kept = schedule(machines, jobs, strategy=strategy, baseline=baseline)
    assert on_kept == schedule(machines, jobs, strategy=strategy)
    assert describe(kept) == before


@pytest.mark.parametrize(
    ("glob", "name"),
    [
        ("srv-www\\\\x2d*", "srv-www\\x2dassets.mount"),  # an escaped backslash
        ("db\\-*", "db-1.service"),  # an escaped '-'
        ("apache", "apache"),  # no suffix: the name as written, as in fleet
    ],
)
def test_glob_relation_finds_escaped_patterns(glob: str, name: str) -> None:
    """The literal-prefix buckets stop at an escape, which spells its character differently."""
    relation = GlobRelation((glob,))
    assert relation.globs_matching(name) == (glob,)
    relation.add(name, (), "m1")
    assert relation.forward((glob,), "m1", "other.service") == [name]
