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
from fleetd.engine.guard import Guard, GuardCause
from fleetd.engine.index import Strategy
from fleetd.engine.model import ClusterModel
from fleetd.engine.plan import Plan, UnitSpec, plan
from fleetd.engine.scope import Scope, plan_scope
from fleetd.model import Capacity, DesiredState, Health, MachineFlags, UnitState
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


def drain(rnd: random.Random, model: ClusterModel, machine: str) -> None:
    model.set_flags(machine, MachineFlags(unschedulable=True, draining=True))


def undrain(rnd: random.Random, model: ClusterModel, machine: str) -> None:
    flags = model.flags.get(machine)
    model.set_flags(machine, MachineFlags(unschedulable=rnd.random() < 0.5) if flags else None)


def ask_to_move(rnd: random.Random, model: ClusterModel, name: str) -> None:
    """A maintenance asks placed units to move to a machine (or drops a request)."""
    moves = dict(model.moves)
    if moves and rnd.random() < 0.3:
        del moves[rnd.choice(sorted(moves))]
    else:
        moves[name] = rnd.choice(sorted(model.machines))
    model.request_moves(moves)


def rolling_update(rnd: random.Random, model: ClusterModel, name: str) -> None:
    """A rollout's batch: the new version starts first away from where the old one runs."""
    assert model.ledger is not None
    spec = model.units[name]
    pins = tuple(sorted((m, spec.hash) for m in model.ledger.machines_of[name]))
    model.set_unit(name, replace(spec, hash=spec.hash + "'", pinned=pins))


MOVE_KINDS: dict[str, OnUnit] = {
    "drain": drain,
    "drain ends": undrain,
    "asked to move": ask_to_move,
    "rolling update": rolling_update,
}


def _up(model: ClusterModel, rnd: random.Random, share: float) -> dict[tuple[str, str], UnitState]:
    """What the machines report: ``share`` of the entries active and healthy, the rest
    starting (the new copies of start-first moves and units with a budget look at it)."""
    found = {}
    for (machine, name), entry in sorted(model.schedule.items()):
        up = rnd.random() < share
        found[(name, machine)] = UnitState(
            machine,
            name,
            entry.hash,
            "loaded",
            "active" if up else "activating",
            "running" if up else "start",
            health=Health.HEALTHY if up else Health.UNKNOWN,
        )
    return found


def _budgeted(rnd: random.Random, model: ClusterModel) -> None:
    """Instances of web@ get a disruption budget (MaxUnavailable=) and some are
    AtMostOnce (they leave a draining machine stop-first, within the budget)."""
    limit = rnd.choice((0, 1, 2))
    for name, spec in sorted(model.units.items()):
        if name.startswith("web@"):
            once = rnd.random() < 0.5
            req = replace(spec.requirements, max_unavailable=limit, at_most_once=once)
            model.set_unit(name, replace(spec, requirements=req))


def _moving_kind(rnd: random.Random, model: ClusterModel, kinds: list[str], serial: int) -> bool:
    """Make one change of a kind drawn from ``kinds`` (MOVE_KINDS, KINDS or "new copies up",
    which changes nothing in the model); False if the model has nothing it applies to."""
    assert model.ledger is not None
    kind = rnd.choice(kinds)
    placed = sorted(n for n in model.ledger.machines_of if n in model.units)
    if kind in MOVE_KINDS and not (model.machines and placed):
        return False
    if kind in ("drain", "drain ends"):
        MOVE_KINDS[kind](rnd, model, rnd.choice(sorted(model.machines)))
    elif kind in MOVE_KINDS:
        MOVE_KINDS[kind](rnd, model, rnd.choice(placed))
    elif kind in KINDS:
        return make(kind, rnd, model, serial)
    return True


def _agrees(
    model: ClusterModel,
    strategy: Strategy,
    made: list[str],
    *,
    batch: int | None = None,
    states: dict[tuple[str, str], UnitState] | None = None,
    guard: Guard | None = None,
) -> tuple[Scope, Plan, Plan]:
    """The scoped pass of what changed, checked against the full plan of the same model
    (states, drain batch, move requests, guard); applied.  (scope, its plan, the full
    plan)."""

    def scoped() -> Scope:
        change = model.change()
        assert isinstance(change, Change), (made, change)
        found = model.scope(
            change,
            0.0,
            wall=0.0,
            grace=0.0,
            strategy=strategy,
            drain_batch=batch,
            states=states,
            guard=guard,
        )
        assert isinstance(found, Scope), (made, change, found)
        return found

    def full() -> Plan:
        return plan(
            model.snapshot(
                0.0,
                wall=0.0,
                grace=0.0,
                strategy=strategy,
                drain_batch=batch,
                states=states,
                guard=guard,
            )
        )

    found = scoped()
    expected = full()
    result = plan_scope(found)
    assert _writes(result) == _writes(expected), made
    refused = expected.decision.refused
    assert result.decision.refused == {u: w for u, w in refused.items() if u in found.units}
    assert result.decision.refused == refused, made  # every unit asked to move is planned
    _apply(model, result)
    # A unit that found room only freed later in the pass is placed by the next pass (a
    # full plan too): the follow-up pass that offers the machines where room was freed
    # (then, as the engine's timers do, passes of the units on the move) is scoped and
    # writes what a full plan writes, until there is nothing left to write.
    for _ in range(8):
        followed = plan_scope(scoped())
        assert _writes(followed) == _writes(full()), made
        if not _writes(followed):
            break
        _apply(model, followed)
    return found, result, expected


@pytest.mark.parametrize("strategy", list(Strategy))
@pytest.mark.parametrize("batch", [None, 0, 1])
def test_drains_moves_and_rolling_updates_are_scoped_and_write_what_a_full_plan_writes(
    strategy: Strategy, batch: int | None
) -> None:
    """Chains of drains (and their end), move requests, rolling updates' start-first
    moves, new copies reported up and changes of every other kind: each pass is scoped
    and writes what a full plan of the same model (same states, drain batch and move
    requests) writes, with moves in flight across the changes."""
    agreed = flights = 0
    for seed in range(30):
        rnd = random.Random(f"moves/{strategy}/{batch}/{seed}")
        model = random_cluster(rnd)
        _budgeted(rnd, model)
        model.rebuild_ledger()
        _apply(model, _full(model, strategy))
        model.change()
        if not model.machines or not model.ledger or not model.ledger.machines_of:
            continue
        made: list[str] = []
        for step in range(8):
            kind = rnd.choice([*MOVE_KINDS, *MOVE_KINDS, "new copies up", *KINDS])
            if not _moving_kind(rnd, model, [kind], 5000 + step):
                continue
            made.append(kind)
            states = _up(model, rnd, 1.0 if kind == "new copies up" else 0.7)
            _agrees(model, strategy, made, batch=batch, states=states)
            flights += bool(model.marked)
            agreed += 1
    assert agreed >= 100 and flights >= 20, (agreed, flights)


@pytest.mark.parametrize("strategy", list(Strategy))
def test_changes_while_the_mass_loss_guard_holds_are_scoped(strategy: Strategy) -> None:
    """While the guard holds (after the full pass that began it), machines lost keep their
    units (and Global copies) where they are; chains of losses, drains, moves and changes
    of every other kind are scoped and write what a full plan with the same guard writes,
    and the units the scoped passes say the guard keeps are those the full plan says."""
    agreed = kept = 0
    guard = Guard(GuardCause.MASS_LOSS, 100.0, "mass-loss guard: 3 of 9 machines vanished")
    for seed in range(40):
        rnd = random.Random(f"guard/{strategy}/{seed}")
        model = _steady(rnd, strategy)
        if model is None or len(model.machines) < 2:
            continue
        made: list[str] = []
        guarded: set[str] = set()
        for step in range(6):
            kind = rnd.choice(["machine lost", "machine lost", *MOVE_KINDS, *KINDS])
            if not _moving_kind(rnd, model, [kind], 6000 + step):
                continue
            made.append(kind)
            found, result, expected = _agrees(model, strategy, made, guard=guard)
            guarded = (guarded - found.units) | set(result.guarded)
            assert guarded == set(expected.guarded), made
            kept += bool(guarded)
            agreed += 1
    assert agreed >= 100 and kept >= 20, (agreed, kept)
