"""Start-first moves, move requests and disruption budgets in the pure plan
(fleetd/engine/handover.py, fleetd/engine/budget.py, fleetd/engine/plan.py)."""

from __future__ import annotations

import dataclasses

from fleetd.engine.budget import Member, budget, group_of
from fleetd.engine.handover import MOVING
from fleetd.engine.plan import Action, UnitSpec, plan
from fleetd.model import (
    Capacity,
    DesiredState,
    Health,
    Machine,
    MachineFlags,
    ScheduleEntry,
    UnitState,
)
from fleetd.requirements import Requirements
from tests.unit.plankit import G, actions, apply, machines, snap

H = "a" * 40
LAUNCHED = DesiredState.LAUNCHED
DRAINING = MachineFlags(unschedulable=True, draining=True)


def unit(name: str, desired: DesiredState = LAUNCHED, **req: object) -> UnitSpec:
    return UnitSpec(name, H, desired, Requirements(**req))  # type: ignore[arg-type]


def entry(machine: str, name: str, moving_from: str = "") -> ScheduleEntry:
    return ScheduleEntry(machine, name, H, LAUNCHED, moving_from)


def up(name: str, machine: str, health: Health = Health.HEALTHY) -> UnitState:
    return UnitState(machine, name, H, "loaded", "active", "running", health=health)


def test_a_drain_starts_the_new_copy_first_and_stops_the_old_once_it_is_up() -> None:
    s = snap(
        [unit("web.service")],
        machines("m1", "m2"),
        entry("m1", "web.service"),
        flags={"m1": DRAINING},
    )
    p = plan(s)
    assert actions(p) == [
        (Action.SCHEDULE, "web.service", "m2"),
        (Action.RECORD, "web.service", ""),
    ]
    assert p.tasks[0].entry == entry("m2", "web.service", moving_from="m1")
    assert "moving start-first from m1" in p.tasks[0].reason
    assert p.tasks[1].placement is not None
    assert p.tasks[1].placement.summary.startswith(f"{MOVING}m1 to m2")
    assert p.moving == ("web.service",)
    s = apply(s, p)

    # Not up on m2 yet (no state, starting, active but not healthy): both copies stay.
    for state in (None, dataclasses.replace(up("web.service", "m2"), active_state="activating")):
        states = {} if state is None else {("web.service", "m2"): state}
        waiting = plan(dataclasses.replace(s, states=states))
        assert waiting.tasks == () and waiting.moving == ("web.service",)
    sick = up("web.service", "m2", Health.UNHEALTHY)
    sick = dataclasses.replace(sick, health_message="HTTP 500")
    told = plan(dataclasses.replace(s, states={("web.service", "m2"): sick}))
    assert actions(told) == [(Action.RECORD, "web.service", "")]
    assert told.tasks[0].placement is not None
    assert "health check there: HTTP 500" in told.tasks[0].placement.summary

    # Up on m2: the old entry goes, the new one loses its mark, the reason is cleared.
    done = plan(dataclasses.replace(s, states={("web.service", "m2"): up("web.service", "m2")}))
    assert actions(done) == [
        (Action.UNSCHEDULE, "web.service", "m1"),
        (Action.UPDATE, "web.service", "m2"),
        (Action.CLEAR, "web.service", ""),
    ]
    assert "active and healthy" in done.tasks[0].reason
    assert done.tasks[1].entry == entry("m2", "web.service")
    assert done.moving == ()
    s = apply(s, done)
    assert plan(s).tasks == ()


def test_a_move_past_its_deadline_says_so_and_goes_on() -> None:
    s = snap(
        [unit("web.service")],
        machines("m1", "m2"),
        entry("m1", "web.service"),
        flags={"m1": DRAINING},
        wall=100.0,
        move_timeout=30.0,
    )
    s = apply(s, plan(s))
    assert s.placements["web.service"].since == 100.0  # the move's start: its deadline
    assert plan(dataclasses.replace(s, wall=129.0)).tasks == ()
    overdue = plan(dataclasses.replace(s, wall=130.0))
    assert actions(overdue) == [(Action.RECORD, "web.service", "")]  # the old copy stays
    placement = overdue.tasks[0].placement
    assert placement is not None and placement.since == 100.0
    assert placement.summary.endswith(
        "; not up there within 30s (start_first_timeout): a maintenance draining m1 stops"
    )
    assert overdue.moving == ("web.service",)
    # The same reason, or another of the same move, keeps its since; another move's not.
    s = apply(dataclasses.replace(s, wall=130.0), overdue)
    assert plan(dataclasses.replace(s, wall=200.0)).tasks == ()
    other = dataclasses.replace(
        s.placements["web.service"], summary=f"{MOVING}m3 to m2: it runs on m3 until ..."
    )
    again = plan(dataclasses.replace(s, placements={"web.service": other}, wall=200.0))
    [record] = [t.placement for t in again.tasks if t.placement is not None]
    assert record.since == 200.0 and "within" not in record.summary


def test_a_moving_unit_with_an_old_file_on_its_new_machine_is_not_up() -> None:
    s = snap(
        [unit("web.service")],
        machines("m1", "m2"),
        entry("m1", "web.service"),
        entry("m2", "web.service", moving_from="m1"),
        flags={"m1": DRAINING},
        states={("web.service", "m2"): dataclasses.replace(up("web.service", "m2"), hash="b" * 40)},
    )
    assert [t.action for t in plan(s).tasks] == [Action.RECORD]


def test_at_most_once_units_stop_first_and_the_others_move_unbatched() -> None:
    names = [f"u{i}.service" for i in range(4)]
    s = snap(
        [*(unit(n) for n in names), unit("once.service", at_most_once=True)],
        machines("m1", "m2"),
        *(entry("m1", n) for n in [*names, "once.service"]),
        flags={"m1": DRAINING},
        drain_batch=1,
    )
    p = plan(s)
    scheduled = sorted(t.unit for t in p.tasks if t.action is Action.SCHEDULE)
    assert scheduled == names  # all at once, start-first: the drain batch is for stop-first
    assert [(t.unit, t.machine) for t in p.tasks if t.action is Action.UNSCHEDULE] == [
        ("once.service", "m1")
    ]
    assert p.stopping == (("once.service", "m1"),)


def test_a_new_machine_lost_mid_move_hands_the_move_to_the_next_one() -> None:
    s = snap(
        [unit("web.service")],
        machines("m1", "m3"),  # m2 is gone
        entry("m1", "web.service"),
        entry("m2", "web.service", moving_from="m1"),
        flags={"m1": DRAINING},
    )
    p = plan(s)
    assert (Action.UNSCHEDULE, "web.service", "m2") in actions(p)
    [new] = [t for t in p.tasks if t.action is Action.SCHEDULE]
    assert new.entry == entry("m3", "web.service", moving_from="m1")
    assert (Action.UNSCHEDULE, "web.service", "m1") not in actions(p)


def test_a_move_with_nowhere_left_to_go_stays_on_its_old_machine() -> None:
    s = snap(
        [unit("web.service", memory_bytes=4 * G)],
        {"m1": Machine("m1", capacity=Capacity(4000, 8 * G))},  # its new machine m2 left
        entry("m1", "web.service"),
        entry("m2", "web.service", moving_from="m1"),
        flags={"m1": DRAINING},
    )
    p = plan(s)
    assert (Action.UNSCHEDULE, "web.service", "m2") in actions(p)
    assert (Action.UNSCHEDULE, "web.service", "m1") not in actions(p)
    assert p.decision.assignments["web.service"] == ("m1",)
    assert "cannot leave draining machine m1" in p.decision.unplaceable["web.service"]


def test_a_mark_whose_old_entry_is_gone_is_cleared() -> None:
    s = snap([unit("web.service")], machines("m2"), entry("m2", "web.service", moving_from="m1"))
    p = plan(s)
    assert actions(p) == [(Action.UPDATE, "web.service", "m2")]
    assert p.tasks[0].entry == entry("m2", "web.service")


def test_the_old_copy_keeps_its_room_and_conflicts_while_it_runs() -> None:
    ms = {
        "m1": Machine("m1", capacity=Capacity(4000, 4 * G)),
        "m2": Machine("m2", capacity=Capacity(4000, 4 * G)),
    }
    s = snap(
        [
            unit("big.service", memory_bytes=3 * G),
            unit("other.service", memory_bytes=2 * G),
            unit("web@1.service", conflicts=("web@*",)),
            unit("web@2.service", conflicts=("web@*",)),
        ],
        ms,
        entry("m1", "big.service"),
        entry("m2", "big.service", moving_from="m1"),
        entry("m1", "web@1.service"),
        entry("m2", "web@1.service", moving_from="m1"),
    )
    p = plan(s)
    placed = {t.unit: t.machine for t in p.tasks if t.action is Action.SCHEDULE}
    # m1 still carries big (3G of 4G) and web@1 (which web@2 conflicts with); m2 has
    # 1G left: other.service fits nowhere, web@2 neither.
    assert placed == {}
    assert "m1: needs 2G memory, 1G free" in p.decision.unplaceable["other.service"]
    assert "m1: conflicts with web@1.service" in p.decision.unplaceable["web@2.service"]


def test_a_unit_only_loaded_moves_without_waiting() -> None:
    s = snap(
        [unit("web.service", DesiredState.LOADED)],
        machines("m1", "m2"),
        dataclasses.replace(entry("m1", "web.service"), desired=DesiredState.LOADED),
        dataclasses.replace(entry("m2", "web.service", "m1"), desired=DesiredState.LOADED),
        flags={"m1": DRAINING},
    )
    assert (Action.UNSCHEDULE, "web.service", "m1") in actions(plan(s))


def test_a_unit_asked_to_move_goes_there_start_first_or_stays() -> None:
    s = snap(
        [unit("web.service"), unit("db.service", memory_bytes=6 * G)],
        machines("m1", "m2", mem=8 * G),
        entry("m2", "web.service"),
        entry("m2", "db.service"),
        moves={"web.service": "m1", "db.service": "m3"},
    )
    p = plan(s)
    [new] = [t for t in p.tasks if t.action is Action.SCHEDULE]
    assert new.entry == entry("m1", "web.service", moving_from="m2")
    assert "moved to m1 as asked" in new.reason
    assert p.decision.refused == {"db.service": "machine m3 is not registered"}
    assert not [t for t in p.tasks if t.action is Action.UNSCHEDULE]
    # A move to a machine where it may not run is refused; the unit stays.
    cordoned = dataclasses.replace(
        s, moves={"web.service": "m1"}, flags={"m1": MachineFlags(unschedulable=True)}
    )
    p = plan(cordoned)
    assert p.decision.refused == {"web.service": "m1: machine is unschedulable"}
    assert p.tasks == ()


def test_an_at_most_once_unit_asked_to_move_stops_first_and_starts_there() -> None:
    s = snap(
        [unit("once.service", at_most_once=True), unit("x.service")],
        machines("m1", "m2", "m3"),
        entry("m2", "once.service"),
        moves={"once.service": "m3"},
    )
    p = plan(s)
    assert (Action.UNSCHEDULE, "once.service", "m2") in actions(p)
    assert p.stopping == (("once.service", "m2"),)
    s = apply(s, p)
    later = plan(s)  # seen stopped: placed where it was asked to go
    assert (Action.SCHEDULE, "once.service", "m3") in actions(later)


def test_group_of_an_instance_is_its_template() -> None:
    assert group_of("web@1.service") == "web@.service"
    assert group_of("web.service") == "web.service"
    assert group_of("not a unit") == "not a unit"


def test_a_budget_counts_the_units_down_and_what_was_taken() -> None:
    req = Requirements(max_unavailable=1)
    members = [Member(f"web@{i}.service", H, LAUNCHED, req, (f"m{i}",)) for i in range(1, 4)]
    states = {(f"web@{i}.service", f"m{i}"): up(f"web@{i}.service", f"m{i}") for i in (1, 2, 3)}
    b = budget(members, states)
    assert b.left("web@1.service") == 1 and b.left("other.service") is None
    assert b.take("web@1.service") and not b.take("web@2.service")
    assert "web@.service allows 1 unit(s) down (MaxUnavailable=1) and 1 are: web@1" in b.why(
        "web@2.service"
    )
    b.give_back("web@1.service")
    assert b.take("web@2.service")
    # One unhealthy, one missing its state, one stopping to move: all down.
    del states[("web@3.service", "m3")]
    states[("web@2.service", "m2")] = up("web@2.service", "m2", Health.UNHEALTHY)
    b = budget(members, states, stopping=["web@1.service"])
    assert b.down == {"web@.service": ["web@1.service", "web@2.service", "web@3.service"]}
    assert b.left("web@1.service") == 0
    # Units not meant to run do not count; templates are no members.
    loaded = [dataclasses.replace(m, desired=DesiredState.LOADED) for m in members]
    assert budget(loaded, {}).limit == {}


def test_stop_first_moves_wait_for_their_group_s_budget() -> None:
    names = [f"db@{i}.service" for i in range(1, 4)]
    units = [unit(n, at_most_once=True, max_unavailable=1) for n in names]
    states = {(n, "m1"): up(n, "m1") for n in names}
    s = snap(units, machines("m1", "m2"), *(entry("m1", n) for n in names), flags={"m1": DRAINING})
    p = plan(dataclasses.replace(s, states=states))
    gone = [t.unit for t in p.tasks if t.action is Action.UNSCHEDULE]
    assert gone == ["db@1.service"]  # one at a time
    assert set(p.decision.waiting) == {"db@2.service", "db@3.service"}
    record = next(t for t in p.tasks if t.action is Action.RECORD and t.unit == "db@2.service")
    assert record.placement is not None
    assert "waits to leave m1: db@.service allows 1 unit(s) down" in record.placement.summary
    # While one is down (stopping, or not up again yet), the others still wait.
    s = apply(s, p)
    waiting = plan(dataclasses.replace(s, states=states, stopping={"db@1.service": "m1"}))
    assert not [t for t in waiting.tasks if t.action is Action.UNSCHEDULE]
    # Up on m2: the next one goes.
    s = dataclasses.replace(s, schedule=[*s.schedule, entry("m2", "db@1.service")])
    states[("db@1.service", "m2")] = up("db@1.service", "m2")
    nxt = plan(dataclasses.replace(s, states=states))
    assert [t.unit for t in nxt.tasks if t.action is Action.UNSCHEDULE] == ["db@2.service"]


def test_start_first_moves_take_nothing_from_a_budget() -> None:
    names = [f"web@{i}.service" for i in range(1, 4)]
    units = [unit(n, max_unavailable=0) for n in names]
    s = snap(units, machines("m1", "m2"), *(entry("m1", n) for n in names), flags={"m1": DRAINING})
    p = plan(s)
    assert sorted(t.unit for t in p.tasks if t.action is Action.SCHEDULE) == names
    assert not p.decision.waiting


def test_machine_of_followers_move_start_first_with_their_peer() -> None:
    s = snap(
        [
            unit("db.service"),
            unit("log.service", machine_of=("db.service",)),
            unit("once.service", machine_of=("db.service",), at_most_once=True),
        ],
        machines("m1", "m2"),
        *(entry("m1", n) for n in ("db.service", "log.service", "once.service")),
        flags={"m1": DRAINING},
    )
    p = plan(s)
    new = {t.unit: t.entry for t in p.tasks if t.action is Action.SCHEDULE}
    assert new["db.service"] == entry("m2", "db.service", moving_from="m1")
    assert new["log.service"] == entry("m2", "log.service", moving_from="m1")
    # The AtMostOnce follower stops on m1 first and is placed once seen stopped.
    assert "once.service" not in new
    assert [(t.unit, t.machine) for t in p.tasks if t.action is Action.UNSCHEDULE] == [
        ("once.service", "m1")
    ]
    assert sorted(p.moving) == ["db.service", "log.service"]
    s = apply(s, p)

    # The follower's old copy stays until its own new copy is up, like its peer's.
    done = plan(
        dataclasses.replace(
            s,
            states={
                ("db.service", "m2"): up("db.service", "m2"),
                ("log.service", "m2"): up("log.service", "m2"),
            },
        )
    )
    gone = sorted((t.unit, t.machine) for t in done.tasks if t.action is Action.UNSCHEDULE)
    assert gone == [("db.service", "m1"), ("log.service", "m1")]
