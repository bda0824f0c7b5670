"""Every kind of change gets a scoped pass that writes what a full plan writes.

From a steady random cluster (a full pass has nothing left to write), one
change of each kind -- or a chain of several, of any kinds -- is made to the
model; the next pass must be scoped, must write exactly what a full plan of
the same model writes, and must leave a model a full plan finds nothing to
change in (tests/unit/test_engine_scope.py's checks).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace

import pytest

from fleetd.engine.changes import Change
from fleetd.engine.index import Strategy
from fleetd.engine.model import ClusterModel
from fleetd.engine.plan import Plan, UnitSpec, plan
from fleetd.engine.scope import Scope, plan_scope
from fleetd.model import Capacity, DesiredState, MachineFlags
from fleetd.requirements import Requirements
from fleetd.requirements import parse_metadata_condition as cond
from tests.unit.test_engine_scope import _check, _machine, _unit, random_cluster
from tests.unit.test_engine_slots import _apply, _full, _writes

G = 1 << 30

OnUnit = Callable[[random.Random, ClusterModel, str], None]
"""Changes a placed unit (by name) or a machine (by id)."""


def submit(rnd: random.Random, model: ClusterModel, serial: int) -> None:
    spec = _unit(rnd, serial, sorted(model.units), sorted(model.machines))
    model.set_unit(spec.name, spec)


def join(rnd: random.Random, model: ClusterModel, serial: int) -> None:
    model.put_machine(replace(_machine(rnd, serial), id=f"m{rnd.randint(0, 999):03}j{serial}"))


def stop(rnd: random.Random, model: ClusterModel, name: str) -> None:
    model.set_unit(name, replace(model.units[name], desired=DesiredState.INACTIVE))


def destroy(rnd: random.Random, model: ClusterModel, name: str) -> None:
    model.set_unit(name, None)


def new_version(rnd: random.Random, model: ClusterModel, name: str) -> None:
    spec = model.units[name]
    model.set_unit(name, replace(spec, hash=spec.hash + "'", pinned=()))


def reservation(rnd: random.Random, model: ClusterModel, name: str) -> None:
    spec = model.units[name]
    more = replace(
        spec.requirements,
        memory_bytes=rnd.choice((0, 1, 3)) * G,
        cpu_millis=rnd.choice((0, 500, 1500)),
    )
    model.set_unit(name, replace(spec, hash=spec.hash + "'", requirements=more, pinned=()))


def constraint(rnd: random.Random, model: ClusterModel, name: str) -> None:
    """A placed unit's metadata condition, MachineID or Conflicts= change (it may move)."""
    spec = model.units[name]
    req = spec.requirements
    how = rnd.random()
    if how < 0.5:
        meta = (cond(rnd.choice(("rack=a", "rack=b", "cores>=4", "cores<4"))),)
        req = replace(req, metadata=meta)
    elif how < 0.75 and not req.global_:
        req = replace(req, machine_id=rnd.choice(sorted(model.machines)), machine_of=())
    else:
        req = replace(req, conflicts=(rnd.choice(("web@*", "u*", "db1.service")),))
    model.set_unit(name, replace(spec, hash=spec.hash + "'", requirements=req, pinned=()))


def replaces(rnd: random.Random, model: ClusterModel, name: str) -> None:
    """A new unit with ``Replaces=`` of a placed unit (by name or glob), pinned to its
    machine half of the time (so that it evicts it there)."""
    assert model.ledger is not None
    glob = name if rnd.random() < 0.5 else name[:2] + "*"
    pin = min(model.ledger.machines_of[name]) if rnd.random() < 0.5 else None
    res = {"cpu_millis": rnd.choice((0, 250)), "memory_bytes": rnd.choice((0, 1)) * G}
    req = Requirements(replaces=(glob,), machine_id=pin, **res)  # type: ignore[arg-type]
    new = f"x{rnd.randint(0, 9999)}.service"
    model.set_unit(new, UnitSpec(new, "hx", DesiredState.LAUNCHED, req))


def replaces_added(rnd: random.Random, model: ClusterModel, name: str) -> None:
    """A placed unit's ``Replaces=`` changes: it names another placed unit, or none."""
    assert model.ledger is not None
    spec = model.units[name]
    other = rnd.choice(sorted(model.ledger.machines_of))
    globs = () if spec.requirements.replaces and rnd.random() < 0.3 else (other,)
    req = replace(spec.requirements, replaces=globs)
    model.set_unit(name, replace(spec, hash=spec.hash + "'", requirements=req, pinned=()))


def lose(rnd: random.Random, model: ClusterModel, machine: str) -> None:
    model.drop_machine(machine, 0.0)


def relabel(rnd: random.Random, model: ClusterModel, machine: str) -> None:
    """A machine's metadata or capacity changes (its agent registers it again)."""
    old = model.machines[machine]
    new = replace(_machine(rnd, 0), id=machine)
    if rnd.random() < 0.5:
        new = replace(new, metadata=old.metadata)
    else:
        new = replace(new, capacity=Capacity(old.capacity.cpu_millis, old.capacity.memory_bytes))
    model.put_machine(new)


def cordon(rnd: random.Random, model: ClusterModel, machine: str) -> None:
    flags = rnd.choice(
        (
            MachineFlags(unschedulable=True),
            MachineFlags(metadata_overrides=(("rack", "b"),)),
            MachineFlags(metadata_overrides=(("cores", "2"),), unschedulable=True),
            None,
        )
    )
    model.set_flags(machine, flags)


def systemd(rnd: random.Random, model: ClusterModel, machine: str) -> None:
    old = model.machines[machine]
    model.put_machine(replace(old, systemd_connected=not old.systemd_connected))


ON_UNITS: dict[str, OnUnit] = {
    "stop": stop,
    "destroy": destroy,
    "new version": new_version,
    "reservation": reservation,
    "constraint": constraint,
    "replaces": replaces,
    "replaces added": replaces_added,
}
ON_MACHINES: dict[str, OnUnit] = {
    "machine lost": lose,
    "machine changed": relabel,
    "cordon and overrides": cordon,
    "systemd link": systemd,
}
KINDS = sorted(["submit", "machine joined", *ON_UNITS, *ON_MACHINES])


def make(kind: str, rnd: random.Random, model: ClusterModel, serial: int) -> bool:
    """Make one change of ``kind``; False if the model has nothing it applies to."""
    assert model.ledger is not None
    if kind == "submit":
        submit(rnd, model, serial)
    elif kind == "machine joined":
        join(rnd, model, serial)
    elif kind in ON_UNITS:
        placed = sorted(n for n in model.ledger.machines_of if n in model.units)
        if not placed:
            return False
        ON_UNITS[kind](rnd, model, rnd.choice(placed))
    elif not model.machines:
        return False
    else:
        ON_MACHINES[kind](rnd, model, rnd.choice(sorted(model.machines)))
    return True


def _steady(rnd: random.Random, strategy: Strategy) -> ClusterModel | None:
    """A random cluster a full pass has nothing left to write to (None: none found)."""
    model = random_cluster(rnd)
    model.rebuild_ledger()
    for _ in range(4):
        result = _full(model, strategy)
        _apply(model, result)
        if not _writes(result):
            model.change()
            return model
    return None


def _scoped_agrees(model: ClusterModel, strategy: Strategy, made: list[str]) -> Plan:
    """The scoped pass of what changed, checked against the full plan; not applied."""
    change = model.change()
    assert isinstance(change, Change), (made, change)
    found = model.scope(change, 0.0, wall=0.0, grace=0.0, strategy=strategy)
    assert isinstance(found, Scope), (made, found)
    expected = _full(model, strategy)
    result = plan_scope(found)
    assert _writes(result) == _writes(expected), made
    return result


@pytest.mark.parametrize("strategy", list(Strategy))
@pytest.mark.parametrize("kind", [*KINDS, "chain"])
def test_every_kind_of_change_is_scoped_and_writes_what_a_full_plan_writes(
    kind: str, strategy: Strategy
) -> None:
    agreed = 0
    for seed in range(40):
        rnd = random.Random(f"{kind}/{seed}")
        model = _steady(rnd, strategy)
        if model is None:
            continue
        made = []
        for step in range(rnd.randint(2, 5) if kind == "chain" else 1):
            name = rnd.choice(KINDS) if kind == "chain" else kind
            if make(name, rnd, model, 2000 + step):
                made.append(name)
        if not made:
            continue
        _apply(model, _scoped_agrees(model, strategy, made))
        _check(model, strategy)
        agreed += 1
    assert agreed >= 10


@pytest.mark.parametrize("strategy", list(Strategy))
def test_changes_while_at_most_once_units_are_being_stopped_are_scoped(strategy: Strategy) -> None:
    """An AtMostOnce unit that leaves a live machine is held until seen stopped there;
    meanwhile (and then) every change gets a scoped pass that agrees with the full plan."""
    stopped = 0
    for seed in range(60):
        rnd = random.Random(f"stopping/{seed}")
        model = _steady(rnd, strategy)
        if model is None or len(model.machines) < 2:
            continue
        assert model.ledger is not None
        leaving = [
            n
            for n, spec in sorted(model.units.items())
            if spec.requirements.at_most_once and n in model.ledger.machines_of
        ]
        if not leaving:
            continue
        name = rnd.choice(leaving)
        spec = model.units[name]
        [old] = model.ledger.machines_of[name]
        target = rnd.choice([m for m in sorted(model.machines) if m != old])
        req = replace(spec.requirements, machine_id=target, machine_of=())
        model.set_unit(name, replace(spec, requirements=req))
        made = ["constraint"]
        for step in range(4):
            result = _scoped_agrees(model, strategy, made)
            model.apply_tasks(result.tasks)
            model.stopping_begins(result.stopping)
            model.forget_machines()
            if step == 2:
                for unit in list(model.stopping):
                    model.stopped(unit)
                made.append("seen stopped")
            else:
                kind = rnd.choice(KINDS)
                if make(kind, rnd, model, 3000 + step):
                    made.append(kind)
        stopped += 1
    assert stopped >= 10


def _graced_pass(model: ClusterModel, strategy: Strategy, now: float, made: list[str]) -> Plan:
    """A scoped pass at ``now`` with a grace of 10 s, checked against the full plan, applied."""
    change = model.change()
    assert isinstance(change, Change), (made, change)
    found = model.scope(change, now, wall=0.0, grace=10.0, strategy=strategy)
    assert isinstance(found, Scope), (made, found)
    snap = model.snapshot(now, wall=0.0, grace=10.0, strategy=strategy, drain_batch=None)
    expected = plan(snap)
    result = plan_scope(found)
    assert _writes(result) == _writes(expected), made
    assert {u for u, _ in result.graced} <= {u for u, _ in expected.graced}, made
    _apply(model, result)
    model.grace(found.units, result.graced)
    return result


@pytest.mark.parametrize("strategy", list(Strategy))
def test_the_end_of_an_at_most_once_unit_s_grace_period_is_scoped(strategy: Strategy) -> None:
    """AtMostOnce units of a lost machine are held out their grace period; when it ends,
    they are what changed, and a scoped pass places them as a full plan would (other
    changes of any kind may come between)."""
    ended = 0
    for seed in range(60):
        rnd = random.Random(f"grace/{seed}")
        model = _steady(rnd, strategy)
        if model is None or len(model.machines) < 2:
            continue
        assert model.ledger is not None
        units_on = model.ledger.units_on
        with_once = [
            m
            for m in sorted(model.machines)
            if any(model.units[u].requirements.at_most_once for u in units_on.get(m, ()))
        ]
        if not with_once:
            continue
        made = ["machine lost"]
        model.drop_machine(rnd.choice(with_once), 0.0)
        held = _graced_pass(model, strategy, 0.0, made)
        assert held.graced and model.grace_ends == 10.0, made
        kind = rnd.choice(KINDS)
        if make(kind, rnd, model, 4000):
            made.append(kind)
            _graced_pass(model, strategy, 5.0, made)
        assert not model.graced_out(9.0)
        assert model.graced_out(10.0) and not model.graced, made
        made.append("grace ended")
        _graced_pass(model, strategy, 10.0, made)
        _check(model, strategy)
        ended += 1
    assert ended >= 10
