"""Tests of the pure preview of proposed units (fleetd.engine.preview): the engine's own
plan, run to its end, diffed against today's schedule and what the engine does anyway."""

from __future__ import annotations

import dataclasses

from fleetd.engine.plan import Action, ClusterSnapshot, UnitSpec, plan
from fleetd.engine.preview import effect, preview
from fleetd.model import Capacity, DesiredState, Machine, MachineFlags, ScheduleEntry
from fleetd.requirements import Requirements

G = 1 << 30
LAUNCHED, LOADED = DesiredState.LAUNCHED, DesiredState.LOADED
A, B = "a" * 40, "b" * 40


def machines(*ids: str, mem: int = 8 * G) -> dict[str, Machine]:
    return {i: Machine(id=i, hostname=f"host-{i}", capacity=Capacity(4000, mem)) for i in ids}


def unit(name: str, desired: DesiredState = LAUNCHED, hash: str = A, **req: object) -> UnitSpec:
    return UnitSpec(name, hash, desired, Requirements(**req))  # type: ignore[arg-type]


def entry(
    machine: str, name: str, hash: str = A, desired: DesiredState = LAUNCHED
) -> ScheduleEntry:
    return ScheduleEntry(machine, name, hash, desired)


def snap(
    units: list[UnitSpec], ms: dict[str, Machine], *entries: ScheduleEntry, **kw: object
) -> ClusterSnapshot:
    base = ClusterSnapshot(units={u.name: u for u in units}, machines=ms, schedule=list(entries))
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def diff(found: object) -> list[tuple[str, str, str]]:
    return [(c.action.value, c.unit, c.machine) for c in found.changes]  # type: ignore[attr-defined]


def test_a_new_unit_is_placed_and_nothing_else_changes() -> None:
    s = snap([unit("old.service")], machines("m1", "m2"), entry("m1", "old.service"))
    found = preview(s, {"new.service": unit("new.service", machine_id="m2")})
    assert diff(found) == [("schedule", "new.service", "m2")]
    [change] = found.changes
    assert change.reason == "pinned by MachineID"
    assert change.effect == "load and start"
    assert change.previous is None and change.entry == entry("m2", "new.service")
    assert found.machines == {"new.service": ("m2",)}
    assert found.unplaceable == () and found.pending == 0


def test_replaces_pushes_the_running_unit_to_another_machine() -> None:
    s = snap([unit("cache.service")], machines("m1", "m2"), entry("m1", "cache.service"))
    new = unit("new.service", machine_id="m1", replaces=("cache.service",))
    found = preview(s, {"new.service": new})
    assert diff(found) == [
        ("unschedule", "cache.service", "m1"),
        ("schedule", "cache.service", "m2"),
        ("schedule", "new.service", "m1"),
    ]
    out, back = found.changes[0], found.changes[1]
    assert out.reason == "replaced by new.service" and out.effect == "stop and unload"
    assert "moved from m1 (replaced by new.service)" in back.reason


def test_a_replaced_unit_with_nowhere_to_go_is_unplaceable() -> None:
    s = snap([unit("cache.service")], machines("m1"), entry("m1", "cache.service"))
    found = preview(s, {"new.service": unit("new.service", replaces=("cache.service",))})
    assert diff(found) == [
        ("unschedule", "cache.service", "m1"),
        ("schedule", "new.service", "m1"),
    ]
    [unplaced] = found.unplaceable
    assert unplaced.unit == "cache.service"
    assert "would be replaced by new.service" in unplaced.reason
    assert unplaced.rejections == (("m1", "would be replaced by new.service"),)


def test_conflicts_do_not_evict_a_running_unit() -> None:
    s = snap([unit("web@1.service")], machines("m1"), entry("m1", "web@1.service"))
    found = preview(s, {"web@2.service": unit("web@2.service", conflicts=("web@*",))})
    assert found.changes == ()
    [unplaced] = found.unplaceable
    assert unplaced.unit == "web@2.service"
    assert unplaced.reason == "m1: conflicts with web@1.service"


def test_a_changed_file_of_a_launched_unit_restarts_it_in_place() -> None:
    s = snap([unit("api.service")], machines("m1", "m2"), entry("m1", "api.service"))
    found = preview(s, {"api.service": unit("api.service", hash=B)})
    assert diff(found) == [("update", "api.service", "m1")]
    [change] = found.changes
    assert change.reason == f"unit file changed ({A[:7]} -> {B[:7]})"
    assert change.effect == "restart with the new file"
    assert change.previous == entry("m1", "api.service") and change.entry == entry(
        "m1", "api.service", B
    )


def test_an_unchanged_unit_changes_nothing() -> None:
    s = snap([unit("api.service")], machines("m1"), entry("m1", "api.service"))
    found = preview(s, {"api.service": unit("api.service")})
    assert found.changes == () and found.unplaceable == () and found.pending == 0
    assert found.machines == {"api.service": ("m1",)}


def test_what_the_engine_does_anyway_is_pending_not_a_change() -> None:
    # m1 is draining: its unit moves whatever is proposed.
    s = snap(
        [unit("old.service")],
        machines("m1", "m2"),
        entry("m1", "old.service"),
        flags={"m1": MachineFlags(unschedulable=True, draining=True)},
    )
    found = preview(s, {"new.service": unit("new.service")})
    assert diff(found) == [("schedule", "new.service", "m2")]
    assert found.pending == 2  # old.service off m1, onto m2
    # It moves start-first: onto m2 first, off m1 once it is up there (the second pass).
    assert found.passes == 2


def test_an_at_most_once_unit_pushed_out_is_placed_after_it_stopped() -> None:
    s = snap(
        [unit("once.service", at_most_once=True)], machines("m1", "m2"), entry("m1", "once.service")
    )
    new = unit("new.service", machine_id="m1", replaces=("once.service",))
    assert plan(dataclasses.replace(s, units={**s.units, "new.service": new})).stopping
    found = preview(s, {"new.service": new})
    assert diff(found) == [
        ("unschedule", "once.service", "m1"),
        ("schedule", "new.service", "m1"),
        ("schedule", "once.service", "m2"),
    ]
    assert found.passes == 2 and found.waiting == {}


def test_unplaceable_units_already_waiting_are_left_out_unless_proposed() -> None:
    big = unit("big.service", memory_bytes=64 * G)
    s = snap([big], machines("m1"))
    found = preview(s, {"new.service": unit("new.service")})
    assert [u.unit for u in found.unplaceable] == []
    found = preview(s, {"big.service": big})
    assert [u.unit for u in found.unplaceable] == ["big.service"]
    assert "needs 64G memory" in found.unplaceable[0].reason


def test_effects() -> None:
    assert effect(None, entry("m1", "u", desired=LOADED)) == "load"
    assert effect(entry("m1", "u", desired=LOADED), None) == "unload"
    assert effect(entry("m1", "u", desired=LOADED), entry("m1", "u")) == "start"
    assert effect(entry("m1", "u"), entry("m1", "u", desired=LOADED)) == "stop"
    assert effect(entry("m1", "u"), entry("m1", "u", B, LOADED)) == "stop, load the new file"
    assert effect(entry("m1", "u", desired=LOADED), entry("m1", "u", B)) == (
        "load the new file and start"
    )
    assert Action.UPDATE.value == "update"
