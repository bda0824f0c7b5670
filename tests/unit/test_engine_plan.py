"""Tests of the pure reconcile plan (fleetd.engine.plan)."""

from __future__ import annotations

import dataclasses

import pytest

from fleetd.engine.guard import Guard, GuardCause
from fleetd.engine.index import Strategy
from fleetd.engine.plan import Action, ClusterSnapshot, Task, UnitSpec, plan
from fleetd.model import (
    DesiredState,
    Machine,
    MachineFlags,
    Placement,
    ScheduleEntry,
)
from fleetd.requirements import Requirements, parse_metadata_condition
from tests.unit.plankit import G, actions, apply, machines, snap

LAUNCHED = DesiredState.LAUNCHED
LOADED = DesiredState.LOADED
INACTIVE = DesiredState.INACTIVE


def unit(
    name: str, desired: DesiredState = LAUNCHED, hash: str = "a" * 40, **req: object
) -> UnitSpec:
    return UnitSpec(name, hash, desired, Requirements(**req))  # type: ignore[arg-type]


def entry(machine: str, name: str, desired: DesiredState = LAUNCHED) -> ScheduleEntry:
    return ScheduleEntry(machine, name, "a" * 40, desired)


def converge(s: ClusterSnapshot, passes: int = 10) -> ClusterSnapshot:
    for _ in range(passes):
        p = plan(s)
        if not p.tasks:
            return s
        s = apply(s, p)
    raise AssertionError("plan did not converge")


def test_new_unit_is_scheduled_with_its_hash_and_desired_state() -> None:
    p = plan(snap([unit("u.service", LOADED, hash="b" * 40)], machines("m1")))
    assert actions(p) == [(Action.SCHEDULE, "u.service", "m1")]
    assert p.tasks[0].entry == ScheduleEntry("m1", "u.service", "b" * 40, LOADED)
    assert p.tasks[0].reason == "best fit (binpack)"
    assert p.placed == 1


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        (unit("u.service", LOADED), "desired state launched -> loaded"),
        (unit("u.service", hash="c" * 40), "unit file changed (aaaaaaa -> ccccccc)"),
    ],
)
def test_changed_unit_updates_its_entry_in_place(spec: UnitSpec, reason: str) -> None:
    p = plan(snap([spec], machines("m1", "m2"), entry("m2", "u.service")))
    assert actions(p) == [(Action.UPDATE, "u.service", "m2")]
    assert p.tasks[0].reason == reason


@pytest.mark.parametrize(
    ("units", "reason"),
    [
        ([], "unit destroyed"),
        ([unit("u.service", INACTIVE)], "desired state is inactive"),
    ],
)
def test_unwanted_entries_are_unscheduled(units: list[UnitSpec], reason: str) -> None:
    p = plan(snap(units, machines("m1"), entry("m1", "u.service")))
    assert [(t.action, t.unit, t.machine, t.reason) for t in p.tasks] == [
        (Action.UNSCHEDULE, "u.service", "m1", reason)
    ]


def test_templates_are_never_scheduled() -> None:
    s = snap([unit("web@.service")], machines("m1"), entry("m1", "web@.service"))
    p = plan(s)
    assert actions(p) == [(Action.UNSCHEDULE, "web@.service", "m1")]
    assert p.tasks[0].reason == "a template cannot be scheduled"


def test_lost_machine_units_move_at_once_unschedule_first() -> None:
    s = snap(
        [unit("a.service"), unit("b.service", machine_of=("a.service",))],
        machines("m2"),
        entry("m1", "a.service"),
        entry("m1", "b.service"),
        lost={"m1": 100.0},
        now=100.5,
    )
    p = plan(s)
    assert actions(p) == [
        (Action.UNSCHEDULE, "a.service", "m1"),
        (Action.UNSCHEDULE, "b.service", "m1"),
        (Action.SCHEDULE, "a.service", "m2"),
        (Action.SCHEDULE, "b.service", "m2"),
    ]
    assert p.tasks[0].reason == "machine m1 is gone"
    assert "moved from m1 (machine m1 is gone)" in p.tasks[2].reason


def test_at_most_once_waits_for_the_grace_period() -> None:
    s = snap(
        [unit("once.service", at_most_once=True), unit("free.service")],
        machines("m2"),
        entry("m1", "once.service"),
        entry("m1", "free.service"),
        lost={"m1": 100.0},
        now=105.0,
        at_most_once_grace=10.0,
    )
    p = plan(s)
    assert actions(p) == [
        (Action.UNSCHEDULE, "free.service", "m1"),
        (Action.SCHEDULE, "free.service", "m2"),
        (Action.RECORD, "once.service", ""),
    ]
    assert p.held == ("once.service",)
    assert p.wake_at == 110.0
    record = p.tasks[2].placement
    assert record is not None and "AtMostOnce" in record.summary and "m1" in record.summary
    later = plan(dataclasses.replace(apply(s, p), now=110.0))
    assert actions(later) == [
        (Action.UNSCHEDULE, "once.service", "m1"),
        (Action.SCHEDULE, "once.service", "m2"),
        (Action.CLEAR, "once.service", ""),
    ]
    assert later.held == () and later.wake_at is None


def test_a_unit_pinned_to_a_lost_machine_stays_scheduled_there() -> None:
    """Unscheduling it would gain nothing, and would have the machine's agent, back after a
    restart or a blink of etcd, stop it and start it again."""
    s = snap(
        [unit("pinned.service", machine_id="m1"), unit("free.service")],
        machines("m2"),
        entry("m1", "pinned.service"),
        entry("m1", "free.service"),
        lost={"m1": 100.0},
        now=100.0,
    )
    p = plan(s)
    assert actions(p) == [
        (Action.UNSCHEDULE, "free.service", "m1"),
        (Action.SCHEDULE, "free.service", "m2"),
        (Action.RECORD, "pinned.service", ""),
    ]
    record = p.tasks[2].placement
    assert record is not None
    assert record.summary == "pinned to machine m1, which is lost: it stays scheduled there"
    back = dataclasses.replace(apply(s, p), machines=machines("m1", "m2"), lost={})
    assert actions(plan(back)) == [(Action.CLEAR, "pinned.service", "")]


def test_the_mass_loss_guard_keeps_units_on_absent_machines_until_it_ends() -> None:
    why = "mass-loss guard: 2 of 3 machines vanished within 0s; waiting 15s"
    guard = Guard(GuardCause.MASS_LOSS, 115.0, why)
    s = snap(
        [
            unit("web.service"),
            unit("g.service", global_=True),
            unit("once.service", at_most_once=True),
        ],
        machines("m3"),
        entry("m1", "web.service"),
        entry("m1", "g.service"),
        entry("m3", "g.service"),
        entry("m2", "once.service"),
        lost={"m1": 100.0, "m2": 100.0},
        now=101.0,
        guard=guard,
    )
    p = plan(s)
    assert actions(p) == [
        (Action.RECORD, "once.service", ""),
        (Action.RECORD, "web.service", ""),
    ]  # nothing leaves m1 or m2, not even the Global unit's copy
    assert p.guarded == ("g.service", "once.service", "web.service")
    assert p.wake_at == 115.0
    assert all(t.placement is not None and t.placement.summary == why for t in p.tasks)
    later = plan(dataclasses.replace(apply(s, p), now=115.0))
    assert sorted(actions(later)) == sorted(
        [
            (Action.UNSCHEDULE, "g.service", "m1"),
            (Action.UNSCHEDULE, "once.service", "m2"),
            (Action.UNSCHEDULE, "web.service", "m1"),
            (Action.SCHEDULE, "once.service", "m3"),
            (Action.SCHEDULE, "web.service", "m3"),
            (Action.CLEAR, "once.service", ""),
            (Action.CLEAR, "web.service", ""),
        ]
    )
    assert later.guarded == () and later.wake_at is None


def test_at_most_once_on_a_machine_without_loss_time_counts_as_lost_now() -> None:
    s = snap(
        [unit("once.service", at_most_once=True)],
        machines("m2"),
        entry("m1", "once.service"),
        now=50.0,
        at_most_once_grace=5.0,
    )
    p = plan(s)
    assert p.held == ("once.service",) and p.wake_at == 55.0


def test_machine_coming_back_within_the_grace_keeps_the_unit() -> None:
    s = snap(
        [unit("once.service", at_most_once=True)],
        machines("m1", "m2"),
        entry("m1", "once.service"),
        lost={"m1": 100.0},
        now=101.0,
        at_most_once_grace=10.0,
    )
    assert plan(s).tasks == ()


def test_unplaceable_reasons_are_recorded_once_and_cleared_when_placed() -> None:
    s = snap([unit("big.service", memory_bytes=16 * G)], machines("m1"), now=3.0, wall=7.0)
    p = plan(s)
    assert actions(p) == [(Action.RECORD, "big.service", "")]
    record = p.tasks[0].placement
    pairs = (("m1", "needs 16G memory, 8G free"),)
    assert record == Placement("big.service", "m1: needs 16G memory, 8G free", pairs, 7.0)
    assert p.unplaceable == 1
    s = apply(s, p)
    assert plan(dataclasses.replace(s, now=9.0, wall=9.0)).tasks == ()  # same reason: no rewrite
    bigger = dataclasses.replace(s, machines={**s.machines, **machines("m2", mem=32 * G)})
    p = plan(bigger)
    assert actions(p) == [
        (Action.SCHEDULE, "big.service", "m2"),
        (Action.CLEAR, "big.service", ""),
    ]
    assert p.tasks[1].reason == "placed on m2"


def test_reasons_of_a_destroyed_unit_are_cleared() -> None:
    s = snap([], machines("m1"), placements={"gone.service": Placement("gone.service", "x")})
    p = plan(s)
    assert [(t.action, t.unit, t.reason) for t in p.tasks] == [
        (Action.CLEAR, "gone.service", "unit destroyed")
    ]


def test_drain_moves_one_batch_of_stop_first_units_per_pass() -> None:
    names = [f"u{i}.service" for i in range(5)]
    s = snap(
        [unit(n, at_most_once=True) for n in names],
        machines("m1", "m2", "m3"),
        *(entry("m1", n) for n in names),
        flags={"m1": MachineFlags(draining=True)},
        drain_batch=2,
    )
    moved = []
    for _ in range(3):
        p = plan(s)
        batch = [t for t in p.tasks if t.action is Action.UNSCHEDULE]
        assert len(batch) <= 2
        assert all(t.reason == "machine m1 is draining" for t in batch)
        moved.append(len(batch))
        s = apply(s, p)
    assert moved == [2, 2, 1]
    s = converge(s)  # seen stopped (nothing is stopping in these snapshots): placed
    assert sorted(e.name for e in s.schedule) == names
    assert all(e.machine != "m1" for e in s.schedule)


def test_constraint_change_moves_the_unit() -> None:
    ms = {
        "m1": Machine("m1", metadata=(("disk", "hdd"),)),
        "m2": Machine("m2", metadata=(("disk", "ssd"),)),
    }
    s = converge(snap([unit("db.service")], ms))
    assert [e.machine for e in s.schedule] == ["m1"]
    wants_ssd = UnitSpec(
        "db.service",
        "a" * 40,
        LAUNCHED,
        Requirements(metadata=(parse_metadata_condition("disk=ssd"),)),
    )
    p = plan(dataclasses.replace(s, units={"db.service": wants_ssd}))
    assert actions(p) == [
        (Action.UNSCHEDULE, "db.service", "m1"),
        (Action.SCHEDULE, "db.service", "m2"),
    ]
    assert "metadata disk=ssd wanted, disk=hdd" in p.tasks[0].reason


def test_replaces_evicts_through_plan() -> None:
    ms = {"m1": Machine("m1", metadata=(("ssd", "1"),)), "m2": Machine("m2")}
    ssd = (parse_metadata_condition("ssd=1"),)
    s = snap(
        [unit("old.service"), unit("new.service", metadata=ssd, replaces=("old.service",))],
        ms,
        entry("m1", "old.service"),
    )
    p = plan(s)
    assert actions(p) == [
        (Action.UNSCHEDULE, "old.service", "m1"),
        (Action.SCHEDULE, "new.service", "m1"),
        (Action.SCHEDULE, "old.service", "m2"),
    ]
    assert p.tasks[0].reason == "replaced by new.service"
    assert plan(apply(s, p)).tasks == ()


def test_spread_strategy_is_used() -> None:
    s = snap(
        [unit(f"u{i}.service", memory_bytes=G) for i in range(4)],
        machines("m1", "m2"),
        strategy=Strategy.SPREAD,
    )
    placed = [t.machine for t in plan(s).tasks]
    assert placed == ["m1", "m2", "m1", "m2"]


def test_a_converged_cluster_plans_nothing() -> None:
    units = [unit(f"u{i}.service", memory_bytes=G // 2) for i in range(40)]
    units.append(unit("g.service", global_=True))
    s = converge(snap(units, machines("m1", "m2", "m3")))
    assert len(s.schedule) == 43
    assert plan(s).tasks == ()


def test_tasks_carry_reasons() -> None:
    s = snap([unit("u.service"), unit("x.service", machine_id="deadbeef")], machines("m1"))
    tasks: tuple[Task, ...] = plan(s).tasks
    assert tasks and all(t.reason for t in tasks)


def test_a_unit_whose_file_cannot_be_parsed_stays_put_with_its_error() -> None:
    broken = UnitSpec("b.service", "a" * 40, LAUNCHED, error="MachineOf=: bad")
    s = snap([broken], machines("m1", "m2"), entry("m1", "b.service"))
    p = plan(s)
    assert actions(p) == [(Action.RECORD, "b.service", "")]
    assert p.tasks[0].placement is not None
    assert p.tasks[0].placement.summary == "invalid unit file: MachineOf=: bad"


def test_at_most_once_moves_off_a_live_machine_only_after_it_stopped() -> None:
    s = snap(
        [unit("once.service", at_most_once=True), unit("free.service")],
        machines("m1", "m2"),
        entry("m1", "once.service"),
        entry("m1", "free.service"),
        flags={"m1": MachineFlags(draining=True)},
    )
    p = plan(s)
    assert actions(p) == [
        (Action.UNSCHEDULE, "once.service", "m1"),
        (Action.SCHEDULE, "free.service", "m2"),  # start-first: m1's copy stays for now
        (Action.RECORD, "free.service", ""),
        (Action.RECORD, "once.service", ""),
    ]
    assert p.stopping == (("once.service", "m1"),)
    assert p.tasks[3].placement is not None
    assert p.tasks[3].placement.summary == "AtMostOnce: waiting for it to stop on m1"
    # Still running on m1 as far as the engine knows: held, nothing to write.
    s = apply(s, p)
    s = dataclasses.replace(  # free.service's move is another test's
        s,
        units={"once.service": s.units["once.service"]},
        schedule=[e for e in s.schedule if e.name != "free.service"],
        placements={"once.service": s.placements["once.service"]},
    )
    assert plan(dataclasses.replace(s, stopping={"once.service": "m1"})).tasks == ()
    # Seen stopped: placed, and its reason cleared.
    later = plan(s)
    assert actions(later) == [
        (Action.SCHEDULE, "once.service", "m2"),
        (Action.CLEAR, "once.service", ""),
    ]


def test_a_machine_cut_off_from_systemd_keeps_its_units_and_takes_new_ones_once_back() -> None:
    ms = machines("m1", "m2")
    cut = {**ms, "m1": dataclasses.replace(ms["m1"], systemd_connected=False)}
    pinned = unit("p.service", machine_id="m1")
    s = snap([unit("run.service"), pinned], cut, entry("m1", "run.service"), wall=5.0)
    p = plan(s)
    # run.service stays where it runs; p.service waits, saying why.
    assert actions(p) == [(Action.RECORD, "p.service", "")]
    record = p.tasks[0].placement
    assert record == Placement(
        "p.service",
        "pinned to machine m1: m1: agent cannot reach systemd",
        (("m1", "agent cannot reach systemd"),),
        5.0,
    )
    s = apply(s, p)
    assert plan(s).tasks == ()
    # The agent reaches systemd again: the machine takes new units, nothing else changes.
    p = plan(dataclasses.replace(s, machines=ms))
    assert actions(p) == [(Action.SCHEDULE, "p.service", "m1"), (Action.CLEAR, "p.service", "")]
