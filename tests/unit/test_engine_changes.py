"""The model's change log: what a pass takes, and why a pass must be full (engine/changes.py)."""

from __future__ import annotations

from dataclasses import replace

from fleetd.engine.changes import Cause, Change, FullReason
from fleetd.engine.index import Strategy
from fleetd.engine.model import ClusterModel
from fleetd.engine.plan import Action, UnitSpec, plan
from fleetd.engine.scope import Scope, plan_scope
from fleetd.model import Capacity, DesiredState, Machine, MachineFlags, ScheduleEntry
from fleetd.requirements import Requirements

G = 1 << 30


def _spec(name: str, **req: object) -> UnitSpec:
    return UnitSpec(name, "h", DesiredState.LAUNCHED, Requirements(**req))  # type: ignore[arg-type]


def _placed(*units: UnitSpec) -> ClusterModel:
    """Two machines, ``units`` placed by a full pass, the log taken."""
    model = ClusterModel()
    for mid in ("m0", "m1"):
        model.put_machine(Machine(id=mid, capacity=Capacity(1000, 4 * G)))
    for spec in units:
        model.set_unit(spec.name, spec)
    assert model.change() == FullReason(Cause.LOADED, "first pass")
    model.rebuild_ledger()
    snap = model.snapshot(0.0, wall=0.0, grace=0.0, strategy=Strategy.BINPACK, drain_batch=None)
    model.apply_tasks(plan(snap).tasks)
    return model


def _scope(model: ClusterModel) -> Scope | FullReason:
    change = model.change()
    assert isinstance(change, Change), change
    return model.scope(change, 0.0, wall=0.0, grace=0.0, strategy=Strategy.BINPACK)


def test_units_and_machines_that_left_are_what_a_scoped_pass_takes() -> None:
    model = _placed(_spec("a.service"))
    assert model.change() == Change()
    model.set_unit("b.service", _spec("b.service"))
    model.set_unit("a.service", replace(model.units["a.service"], desired=DesiredState.INACTIVE))
    model.drop_machine("m1", 5.0)
    assert model.change() == Change(frozenset({"a.service", "b.service"}), frozenset({"m1"}))
    assert model.change() == Change()  # taken


def test_machines_that_join_or_change_and_units_that_change_where_they_run_are_scoped() -> None:
    model = _placed(_spec("a.service", memory_bytes=G))
    [where] = model.ledger.machines_of["a.service"] if model.ledger else ()
    model.put_machine(Machine(id="m2", capacity=Capacity(1000, 4 * G)))
    model.set_flags("m0", MachineFlags(unschedulable=True))
    assert model.changes.pending is None
    assert model.change() == Change(machines=frozenset({"m0", "m2"}))
    model.put_machine(Machine(id="m2", capacity=Capacity(1000, 4 * G), hostname="new"))
    assert model.change() == Change()  # nothing a pass looks at changed
    model.put_machine(Machine(id="m2", capacity=Capacity(2000, 4 * G)))
    model.set_flags("m0", None)
    model.set_unit("a.service", _spec("a.service", memory_bytes=2 * G))
    assert model.change() == Change(
        frozenset({"a.service"}), machines=frozenset({"m0", "m2", where})
    )


def test_a_drain_is_a_change_of_its_machine() -> None:
    model = _placed(_spec("a.service", memory_bytes=G))
    model.set_flags("m0", MachineFlags(draining=True))
    assert model.changes.pending is None
    assert model.change() == Change(machines=frozenset({"m0"}))
    model.set_flags("m0", None)
    assert model.change() == Change(machines=frozenset({"m0"}))


def test_a_full_pass_is_asked_for_with_the_first_reason() -> None:
    model = _placed(_spec("a.service", memory_bytes=G))
    model.clear_placements()
    model.clear_flags()
    assert model.changes.pending == FullReason(Cause.LOADED, "placement reasons read")
    assert model.change() == FullReason(Cause.LOADED, "placement reasons read")
    assert model.change() == Change()

    for change, reason in (
        (
            lambda: model.foreign_entry(
                "m1", "x.service", ScheduleEntry("m1", "x.service", "h", DesiredState.LAUNCHED)
            ),
            FullReason(Cause.FOREIGN_WRITE, "schedule entry of x.service on m1"),
        ),
        (lambda: model.clear_units(), FullReason(Cause.LOADED, "units read")),
    ):
        change()
        assert model.change() == reason

    # The read dropped the ledger: no scoped pass until a full one rebuilt it.
    assert model.ledger is None
    assert model.change() == FullReason(Cause.LOADED, "the ledger is rebuilt")


def test_a_new_unit_that_is_not_placed_yet_changes_requirements_without_a_full_pass() -> None:
    model = _placed()
    model.set_unit("a.service", _spec("a.service", memory_bytes=8 * G))  # fits nowhere
    model.set_unit("a.service", _spec("a.service", memory_bytes=G))
    assert isinstance(_scope(model), Scope)


def test_while_a_machine_drains_every_scoped_pass_plans_its_units() -> None:
    model = _placed(_spec("a.service"), _spec("c.service"))
    assert model.ledger is not None
    [where] = model.ledger.machines_of["a.service"]
    model.flags[where] = MachineFlags(draining=True)  # as a pass left it
    model.set_unit("b.service", _spec("b.service"))
    found = _scope(model)
    assert isinstance(found, Scope)
    assert found.units == {"b.service", *model.ledger.units_on[where]}


def test_a_unit_and_what_it_replaces_are_scoped_together() -> None:
    model = _placed(_spec("a.service"), _spec("n.service", replaces=("a.service",)))
    model.set_unit("a.service", replace(model.units["a.service"], hash="h2"))
    found = _scope(model)
    assert isinstance(found, Scope) and found.units == {"a.service", "n.service"}


def test_an_at_most_once_unit_being_stopped_is_held_by_scoped_passes_until_seen_stopped() -> None:
    model = _placed(_spec("a.service", at_most_once=True))
    assert model.ledger is not None
    [old] = model.ledger.machines_of["a.service"]
    other = "m1" if old == "m0" else "m0"
    model.set_unit("a.service", _spec("a.service", at_most_once=True, machine_id=other))
    found = _scope(model)
    assert isinstance(found, Scope)
    result = plan_scope(found)  # it leaves: stop-first
    assert [(t.action, t.machine) for t in result.tasks if t.entry or t.machine] == [
        (Action.UNSCHEDULE, old)
    ]
    assert result.stopping == (("a.service", old),)
    model.apply_tasks(result.tasks)
    model.stopping_begins(result.stopping)
    model.set_unit("b.service", _spec("b.service"))
    model.changes.unit("a.service")
    found = _scope(model)
    assert isinstance(found, Scope) and "a.service" in found.units
    held = plan_scope(found)
    assert "a.service" in held.held and all(t.unit != "a.service" for t in held.tasks)
    model.apply_tasks(held.tasks)
    model.stopped("a.service")  # seen stopped: placed on the other machine
    found = _scope(model)
    assert isinstance(found, Scope)
    placed = [(t.action, t.machine) for t in plan_scope(found).tasks if t.unit == "a.service"]
    assert placed[0] == (Action.SCHEDULE, other)


def test_the_followers_of_an_at_most_once_unit_being_stopped_are_planned_again() -> None:
    """The pass that moves it places its followers with it; once it is held (until seen
    stopped), a full pass finds them without a peer: the next scoped pass plans them too."""
    model = _placed(
        _spec("a.service", at_most_once=True), _spec("f.service", machine_of=("a.service",))
    )
    assert model.ledger is not None
    [old] = model.ledger.machines_of["a.service"]
    other = "m1" if old == "m0" else "m0"
    model.set_unit("a.service", _spec("a.service", at_most_once=True, machine_id=other))
    found = _scope(model)
    assert isinstance(found, Scope)
    result = plan_scope(found)
    model.apply_tasks(result.tasks)
    model.stopping_begins(result.stopping)
    found = _scope(model)
    assert isinstance(found, Scope) and found.units >= {"f.service"}
    snap = model.snapshot(0.0, wall=0.0, grace=0.0, strategy=Strategy.BINPACK, drain_batch=None)
    assert plan_scope(found).tasks == plan(snap).tasks
