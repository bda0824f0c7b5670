"""Incremental (scoped) reconcile against the full plan, over random event sequences."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from fleetd.engine.changes import Change
from fleetd.engine.index import Strategy
from fleetd.engine.ledger import Ledger
from fleetd.engine.model import ClusterModel
from fleetd.engine.plan import Action, Plan, UnitSpec, plan
from fleetd.engine.scope import Scope, plan_scope
from fleetd.model import Capacity, DesiredState, Machine, MachineFlags, ScheduleEntry
from fleetd.requirements import Requirements, glob_matches, metadata_matches
from fleetd.requirements import parse_metadata_condition as cond
from tests.unit.kept import conflicts as kept_conflicts

G = 1 << 30


def _machine(rnd: random.Random, i: int) -> Machine:
    return Machine(
        id=f"m{i:03}",
        metadata=(("rack", rnd.choice("ab")), ("cores", str(rnd.choice((2, 8))))),
        capacity=Capacity(rnd.choice((1000, 2000, 4000)), rnd.choice((2, 4, 8)) * G),
    )


def _unit(rnd: random.Random, i: int, names: list[str], machines: list[str]) -> UnitSpec:
    res = {"cpu_millis": rnd.choice((0, 250, 500)), "memory_bytes": rnd.choice((0, 1, 2)) * G}
    kind = rnd.random()
    if kind < 0.15:
        name, req = f"web@{i}.service", Requirements(conflicts=("web@*",), **res)
    elif kind < 0.25:
        name = f"db{i}.service"
        req = Requirements(conflicts=(f"db{rnd.randint(0, i)}.service",), **res)
    elif kind < 0.35:
        meta = (cond(rnd.choice(("rack=a", "rack!=a", "cores>=4"))),)
        name, req = f"r{i}.service", Requirements(metadata=meta, **res)
    elif kind < 0.45 and names:
        name, req = f"f{i}.service", Requirements(machine_of=(rnd.choice(names),), **res)
    elif kind < 0.5 and machines:
        name, req = f"p{i}.service", Requirements(machine_id=rnd.choice(machines), **res)
    elif kind < 0.54:
        name, req = f"g{i}.service", Requirements(global_=True, cpu_millis=50)
    elif kind < 0.57:
        name, req = f"n{i}.service", Requirements(replaces=(f"u{rnd.randint(0, i)}.service",))
    elif kind < 0.62:
        name, req = f"a{i}.service", Requirements(at_most_once=True, **res)
    else:
        name, req = f"u{i}.service", Requirements(**res)
    return UnitSpec(name, f"h{i}", DesiredState.LAUNCHED, req)


def random_cluster(rnd: random.Random) -> ClusterModel:
    """Up to 10 machines and 40 units of every kind, nothing placed yet."""
    model = ClusterModel()
    for i in range(rnd.randint(1, 10)):
        model.put_machine(_machine(rnd, i))
    for i in range(rnd.randint(0, 40)):
        spec = _unit(rnd, i, list(model.units), list(model.machines))
        model.set_unit(spec.name, spec)
    return model


def _pass(model: ClusterModel, strategy: Strategy, full: bool) -> tuple[Plan, bool]:
    change = model.change()
    scoped = None
    if isinstance(change, Change) and not full:
        scoped = model.scope(change, 0.0, wall=0.0, grace=0.0, strategy=strategy)
    if not isinstance(scoped, Scope):
        if model.ledger is None:
            model.rebuild_ledger()
        result = plan(model.snapshot(0.0, wall=0.0, grace=0.0, strategy=strategy, drain_batch=None))
    else:
        result = plan_scope(scoped)
    for task in result.tasks:  # no new unit goes where systemd cannot be reached
        assert task.action is not Action.SCHEDULE or model.machines[task.machine].systemd_connected
    model.apply_tasks(result.tasks)
    model.stopping_begins(result.stopping)
    model.forget_machines()
    return result, isinstance(scoped, Scope)


def _check(model: ClusterModel, strategy: Strategy) -> None:
    # The ledger kept up to date event by event equals one built from scratch.
    fresh = Ledger.build(model.units, model.schedule)
    assert model.ledger is not None
    assert fresh.load == model.ledger.load
    assert fresh.machines_of == model.ledger.machines_of
    assert kept_conflicts(fresh, model) == kept_conflicts(model.ledger, model)
    # A full pass agrees: nothing placed moves, nothing is left unrecorded; it may only
    # place units that were waiting for room (as a second full pass may) and refresh
    # the text of their reasons.
    snap = model.snapshot(0.0, wall=0.0, grace=0.0, strategy=strategy, drain_batch=None)
    for task in plan(snap).tasks:
        if task.action in (Action.SCHEDULE, Action.CLEAR, Action.RECORD):
            assert task.unit in model.placements, task
        else:  # or a unit that found no room to leave a draining machine now may
            assert task.action is Action.UNSCHEDULE, task
            assert task.reason.endswith("is draining") and task.unit in model.placements, task
    # Every invariant of a placement holds.
    units, machines = model.units, model.machines
    on: dict[str, list[str]] = {}
    where: dict[str, list[str]] = {}
    for machine, name in model.schedule:
        if machine in machines:
            on.setdefault(machine, []).append(name)
            where.setdefault(name, []).append(machine)
    for name, placed in where.items():
        req = units[name].requirements
        # Two machines only while it moves start-first (the new entry names the old one).
        moving = [m for m in placed if model.marked.get((m, name)) in placed]
        assert len(placed) == 1 or req.global_ or (len(placed) == 2 and moving), (name, placed)
        for mid in placed:
            flags = model.flags.get(mid)
            overrides = flags.metadata_overrides if flags is not None else ()
            effective = {**dict(machines[mid].metadata), **dict(overrides)}
            assert metadata_matches(req.metadata, effective) is None
            assert req.machine_id is None or mid.startswith(req.machine_id)
            for peer in req.machine_of:
                assert mid in where.get(peer, ()), (name, peer)
    leaving = {(old, name) for (_, name), old in model.marked.items()}
    for (mid, name), entry in model.schedule.items():  # pinned machines keep their hash
        # (and the old copy of a start-first move its own, until it stops)
        if mid in machines and name in units and (mid, name) not in leaving:
            assert entry.hash == units[name].hash_on(mid), (mid, name, entry.hash)
    for mid, names in on.items():
        cap = machines[mid].capacity
        # An old copy of a start-first move takes room from new placements, never from
        # those kept (one that grew where it runs stays): it is left out of the sum.
        counted = [n for n in names if (mid, n) not in leaving]
        assert sum(units[n].requirements.cpu_millis for n in counted) <= cap.cpu_millis
        assert sum(units[n].requirements.memory_bytes for n in counted) <= cap.memory_bytes
        for a in names:
            for b in names:
                conflicts = units[a].requirements.conflicts
                assert a == b or not any(glob_matches(g, b) for g in conflicts), (mid, a, b)


@pytest.mark.parametrize("strategy", list(Strategy))
@pytest.mark.parametrize("seed", range(0, 6000, 250))
def test_incremental_passes_agree_with_the_full_plan(strategy: Strategy, seed: int) -> None:
    rnd = random.Random(seed)
    model = random_cluster(rnd)
    _pass(model, strategy, full=True)
    _check(model, strategy)
    scoped = 0
    next_id = 1000
    for _step in range(40):
        names = sorted(model.units)
        event = rnd.random()
        if event < 0.35 or not names:
            spec = _unit(rnd, next_id, names, sorted(model.machines))
            model.set_unit(spec.name, spec)
            next_id += 1
        elif event < 0.5:
            name = rnd.choice(names)
            model.set_unit(name, replace(model.units[name], desired=DesiredState.INACTIVE))
        elif event < 0.6:
            name = rnd.choice(names)
            model.set_unit(name, replace(model.units[name], desired=DesiredState.LAUNCHED))
        elif event < 0.7:
            model.set_unit(rnd.choice(names), None)
        elif event < 0.78:
            name = rnd.choice(names)
            spec = model.units[name]
            more = replace(spec.requirements, memory_bytes=rnd.choice((0, 1, 3)) * G)
            # A new text written outside a rollout drops its pins (fleetd.model.Unit).
            changed = replace(spec, hash=spec.hash + "'", requirements=more, pinned=())
            model.set_unit(name, changed)
        elif event < 0.82 and (
            globals_ := [n for n in names if model.units[n].requirements.global_]
        ):
            # A rolling update moves a Global unit machine by machine (or it ends).
            name = rnd.choice(globals_)
            spec = model.units[name]
            some = [m for m in sorted(model.machines) if rnd.random() < 0.5]
            pins = tuple((m, spec.hash + "-old") for m in some)
            model.set_unit(name, replace(spec, hash=spec.hash + "+", pinned=pins))
        elif event < 0.85 and (movable := _movable(model)):
            # A start-first rollout of a plain unit: its old copy's machine is pinned to
            # the old file while the new version starts elsewhere; then it ends (the pin
            # goes), or is reverted (the old file again).
            name = rnd.choice(movable)
            spec = model.units[name]
            if spec.pinned:
                back = spec.hash if rnd.random() < 0.5 else spec.pinned[0][1]
                model.set_unit(name, replace(spec, hash=back, pinned=()))
            else:
                assert model.ledger is not None
                [where] = model.ledger.machines_of[name]
                pins = ((where, spec.hash),)
                model.set_unit(name, replace(spec, hash=spec.hash + "*", pinned=pins))
        elif event < 0.88 and model.machines:
            model.drop_machine(rnd.choice(sorted(model.machines)), 0.0)
        elif event < 0.94:
            model.put_machine(_machine(rnd, next_id))
            next_id += 1
        elif event < 0.97 and model.machines:
            mid = rnd.choice(sorted(model.machines))
            flags = (MachineFlags(unschedulable=True), MachineFlags(draining=True), MachineFlags())
            model.set_flags(mid, rnd.choice(flags))
        elif model.machines:  # its agent loses systemd, or reaches it again
            machine = model.machines[rnd.choice(sorted(model.machines))]
            model.put_machine(replace(machine, systemd_connected=not machine.systemd_connected))
        for unit in list(model.stopping):
            model.stopped(unit)  # it stopped at once
        _, was_scoped = _pass(model, strategy, full=False)
        scoped += was_scoped
        if model.stopping:
            continue  # placed once seen stopped (next step)
        _check(model, strategy)
    # Drains and start-first moves take full passes; the rest do not.
    assert scoped > 0 or not model.machines or model.flags, "no incremental pass"


def _movable(model: ClusterModel) -> list[str]:
    """Units a start-first rollout may move: placed on one live machine, launched, not
    Global or AtMostOnce, no MachineID/MachineOf (or under such a rollout already)."""
    found = []
    for name, spec in sorted(model.units.items()):
        req = spec.requirements
        machines = model.ledger.machines_of.get(name, ()) if model.ledger else ()
        rolling = bool(spec.pinned) and not req.global_
        movable = (
            len(machines) == 1
            and set(machines) <= model.machines.keys()
            and spec.desired is DesiredState.LAUNCHED
            and not (req.global_ or req.at_most_once or req.machine_id or req.machine_of)
        )
        if rolling or movable:
            found.append(name)
    return found


def _cluster(*units: UnitSpec, machines: int = 2) -> ClusterModel:
    model = ClusterModel()
    for i in range(machines):
        model.put_machine(Machine(id=f"m{i}", capacity=Capacity(1000, 4 * G)))
    for spec in units:
        model.set_unit(spec.name, spec)
    _pass(model, Strategy.BINPACK, full=True)
    return model


def _spec(name: str, **req: object) -> UnitSpec:
    return UnitSpec(name, "h", DesiredState.LAUNCHED, Requirements(**req))  # type: ignore[arg-type]


def test_a_new_unit_is_planned_alone() -> None:
    model = _cluster(*(_spec(f"u{i}.service", memory_bytes=G) for i in range(5)), machines=3)
    model.set_unit("new.service", _spec("new.service", memory_bytes=G))
    change = model.change()
    assert isinstance(change, Change)
    scoped = model.scope(change, 0.0, wall=0.0, grace=0.0, strategy=Strategy.BINPACK)
    assert isinstance(scoped, Scope) and scoped.units == {"new.service"}
    tasks = plan_scope(scoped).tasks
    assert [(t.action, t.unit) for t in tasks] == [(Action.SCHEDULE, "new.service")]
    snap = model.snapshot(0.0, wall=0.0, grace=0.0, strategy=Strategy.BINPACK, drain_batch=None)
    assert plan(snap).tasks == tasks  # the full plan decides the same


def test_room_freed_by_a_stopped_unit_goes_to_a_waiting_one() -> None:
    model = _cluster(
        _spec("big.service", memory_bytes=3 * G),
        _spec("more.service", memory_bytes=3 * G),
        machines=1,
    )
    assert "more.service" in model.placements
    model.set_unit(
        "big.service", replace(model.units["big.service"], desired=DesiredState.INACTIVE)
    )
    result, scoped = _pass(model, Strategy.BINPACK, full=False)
    assert scoped
    assert [(t.action, t.unit) for t in result.tasks] == [
        (Action.UNSCHEDULE, "big.service"),
        (Action.SCHEDULE, "more.service"),
        (Action.CLEAR, "more.service"),
    ]


def test_a_lost_machine_moves_its_units_and_global_units_just_lose_it() -> None:
    model = _cluster(
        _spec("g.service", global_=True),
        _spec("db.service", memory_bytes=G),
        _spec("backup.service", machine_of=("db.service",)),
        _spec("other.service", memory_bytes=2 * G),
    )
    assert model.ledger is not None
    lost = next(iter(model.ledger.machines_of["db.service"]))
    lost_units = model.ledger.units_on[lost] - {"g.service"}
    assert {"db.service", "backup.service"} <= lost_units
    model.drop_machine(lost, 0.0)
    result, scoped = _pass(model, Strategy.BINPACK, full=False)
    assert scoped
    moved = {(t.action, t.unit) for t in result.tasks}
    assert moved == {
        (Action.UNSCHEDULE, "g.service"),
        *((a, u) for a in (Action.UNSCHEDULE, Action.SCHEDULE) for u in lost_units),
    }
    _check(model, Strategy.BINPACK)


def test_a_global_unit_s_pinned_machines_keep_their_hash_in_both_passes() -> None:
    model = _cluster(_spec("g.service", global_=True), machines=3)
    assert {e.hash for e in model.schedule.values()} == {"h"}
    spec = model.units["g.service"]
    model.set_unit("g.service", replace(spec, hash="new", pinned=(("m1", "h"), ("m2", "h"))))
    result, scoped = _pass(model, Strategy.BINPACK, full=False)
    assert scoped
    assert [(t.action, t.machine, t.entry.hash if t.entry else "") for t in result.tasks] == [
        (Action.UPDATE, "m0", "new")
    ]
    assert result.tasks[0].reason == "unit file changed (h -> new)"
    model.set_unit("g.service", replace(model.units["g.service"], pinned=(("m2", "h"),)))
    result, _ = _pass(model, Strategy.BINPACK, full=True)
    assert [(t.action, t.machine) for t in result.tasks] == [(Action.UPDATE, "m1")]
    model.put_machine(Machine(id="m3", capacity=Capacity(1000, 4 * G)))
    result, _ = _pass(model, Strategy.BINPACK, full=False)  # a new machine: the text's hash
    assert [(t.action, t.machine, t.entry.hash) for t in result.tasks if t.entry] == [
        (Action.SCHEDULE, "m3", "new")
    ]
    _check(model, Strategy.BINPACK)


@pytest.mark.parametrize("full", [False, True])
def test_start_first_schedules_the_new_version_elsewhere_and_keeps_the_old(full: bool) -> None:
    model = _cluster(_spec("db.service", memory_bytes=G), machines=3)
    [old] = {m for m, u in model.schedule if u == "db.service"}
    spec = model.units["db.service"]
    model.set_unit("db.service", replace(spec, hash="new", pinned=((old, "h"),)))
    result, scoped = _pass(model, Strategy.BINPACK, full=full)
    assert scoped is not full  # a start-first move is scoped, as a drain's
    [task] = [t for t in result.tasks if t.action is not Action.RECORD]
    assert task.action is Action.SCHEDULE and task.machine != old
    assert task.entry == ScheduleEntry(task.machine, "db.service", "new", spec.desired, old)
    assert model.schedule[(old, "db.service")].hash == "h"  # the old copy runs on
    summary = model.placements["db.service"].summary
    assert summary.startswith(f"moving from {old} to {task.machine}")
    _check(model, Strategy.BINPACK)


def test_a_start_first_version_with_nowhere_to_go_says_why_and_the_old_one_runs_on() -> None:
    model = _cluster(_spec("db.service", memory_bytes=G), machines=1)
    spec = model.units["db.service"]
    model.set_unit("db.service", replace(spec, hash="new", pinned=(("m0", "h"),)))
    _pass(model, Strategy.BINPACK, full=False)
    summary = model.placements["db.service"].summary
    assert summary.startswith("its new version has no machine to start first on"), summary
    assert [e.hash for e in model.schedule.values()] == ["h"]


def test_a_machine_cut_off_from_systemd_gets_nothing_new_in_scoped_passes_either() -> None:
    model = _cluster(*(_spec(f"u{i}.service", memory_bytes=G) for i in range(2)))
    assert model.ledger is not None
    on_m0 = set(model.ledger.units_on["m0"])
    assert on_m0 == {"u0.service", "u1.service"}  # best fit: m0 would take the next one too
    model.put_machine(replace(model.machines["m0"], systemd_connected=False))
    result, scoped = _pass(model, Strategy.BINPACK, full=False)
    assert scoped and result.tasks == ()  # its units stay where they run
    model.set_unit("new.service", _spec("new.service", memory_bytes=G))
    model.set_unit("p.service", _spec("p.service", machine_id="m0"))
    result, scoped = _pass(model, Strategy.BINPACK, full=False)
    assert scoped
    assert [(t.action, t.unit, t.machine) for t in result.tasks] == [
        (Action.SCHEDULE, "new.service", "m1"),
        (Action.RECORD, "p.service", ""),
    ]
    reason = "pinned to machine m0: m0: agent cannot reach systemd"
    assert model.placements["p.service"].summary == reason
    snap = model.snapshot(0.0, wall=0.0, grace=0.0, strategy=Strategy.BINPACK, drain_batch=None)
    assert plan(snap).tasks == ()  # the full plan decides the same
    assert set(model.ledger.units_on["m0"]) == on_m0
    # systemd is back: the machine takes new units again.
    model.put_machine(replace(model.machines["m0"], systemd_connected=True))
    result, _ = _pass(model, Strategy.BINPACK, full=False)
    assert [(t.action, t.unit, t.machine) for t in result.tasks] == [
        (Action.SCHEDULE, "p.service", "m0"),
        (Action.CLEAR, "p.service", ""),
    ]
    _check(model, Strategy.BINPACK)


def test_a_unit_evicted_by_replaces_leaves_room_to_a_waiting_one() -> None:
    model = _cluster(
        _spec("big.service", memory_bytes=3 * G), _spec("fill.service", memory_bytes=3 * G)
    )
    assert model.ledger is not None
    [where] = model.ledger.machines_of["big.service"]
    model.set_unit("wait.service", _spec("wait.service", memory_bytes=2 * G))
    _pass(model, Strategy.BINPACK, full=False)
    assert "wait.service" in model.placements  # 1G free on each machine
    new = _spec("a-new.service", machine_id=where, replaces=("big.service",))
    model.set_unit("a-new.service", new)
    snap = model.snapshot(0.0, wall=0.0, grace=0.0, strategy=Strategy.BINPACK, drain_batch=None)
    expected = plan(snap).tasks
    result, scoped = _pass(model, Strategy.BINPACK, full=False)
    assert scoped and result.tasks == expected
    # big.service leaves its machine to a-new.service; wait.service takes the room.
    assert [(t.action, t.unit, t.machine) for t in result.tasks] == [
        (Action.UNSCHEDULE, "big.service", where),
        (Action.SCHEDULE, "a-new.service", where),
        (Action.SCHEDULE, "wait.service", where),
        (Action.RECORD, "big.service", ""),
        (Action.CLEAR, "wait.service", ""),
    ]
    _check(model, Strategy.BINPACK)
