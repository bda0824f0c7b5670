"""Every transition of a maintenance step (fleetd/maintenance/plan.py), the maintenance
window (window.py), drain status (drain.py) and the records' codec (pure)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from fleetd.engine.plan import UnitSpec
from fleetd.errors import InvalidInput, RegistryError
from fleetd.maintenance.balance import refills
from fleetd.maintenance.drain import budgets_of, drain_status
from fleetd.maintenance.plan import Drain, Kind, Seen, Situation, Step, Timeouts, step
from fleetd.maintenance.record import (
    Action,
    ActionKind,
    ActionState,
    Job,
    JobPhase,
    MachineAction,
    Maintenance,
    Phase,
    RebootRequest,
)
from fleetd.maintenance.window import in_window, parse_window
from fleetd.model import DesiredState, Health, Machine, MachineFlags, Placement, UnitState
from fleetd.registry import maintcodec
from fleetd.requirements import Requirements

NOW = 1000.0
CMD = Action(ActionKind.COMMAND, ("/usr/bin/upgrade", "-y"))
REBOOT = Action()


def record(*machines: str, action: Action = REBOOT, n: int = 1, **kw: object) -> Maintenance:
    base = Maintenance("mt", action, tuple(Job(m) for m in machines), n, started=1.0)
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def up(machine: str, boot: str = "b1", connected: bool = True) -> Machine:
    return Machine(machine, boot_id=boot, systemd_connected=connected)


def seen(name: str, **kw: object) -> Seen:
    base = Seen(machine=up(name), units=("a.service",))
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def go(r: Maintenance, machines: dict[str, Seen], now: float = NOW, **kw: object) -> Step:
    return step(Situation(r, machines, now, **kw))  # type: ignore[arg-type]


def phases(r: Maintenance) -> list[str]:
    return [j.phase.value for j in r.jobs]


def test_pending_jobs_start_in_order_within_the_slots() -> None:
    r = record("m1", "m2", "m3", n=2)
    s = go(r, {m: seen(m) for m in ("m1", "m2", "m3")})
    assert phases(s.record) == ["draining", "draining", "pending"]
    assert s.record.jobs[2].detail == "waiting for a slot (2 at a time)"
    cordons = [(t.kind, t.machine, t.flags) for t in s.tasks]
    flags = MachineFlags(unschedulable=True, draining=True)
    assert cordons == [(Kind.FLAGS, "m1", flags), (Kind.FLAGS, "m2", flags)]
    assert s.record.jobs[0].moved == ("a.service",) and s.record.jobs[0].since == NOW
    # A job cordoned in this step is not judged drained before its drain was looked at.
    assert s.changed and not [t for t in s.tasks if t.kind is Kind.ACTION]


def test_an_unregistered_machine_waits_and_keeps_the_later_ones_waiting() -> None:
    s = go(record("m1", "m2", n=2), {"m2": seen("m2")})
    assert phases(s.record) == ["pending", "pending"]
    assert s.record.jobs[0].detail == "waiting: m1 is not registered"
    assert s.record.jobs[1].detail == "waiting for its turn"


def test_prior_flags_are_kept_and_guests_are_not_taken_home() -> None:
    r = record("m1", "m2")
    r = r.with_job(Job("m1", JobPhase.RETURNING, since=NOW, moved=("a.service",)))
    cordoned = MachineFlags(unschedulable=True, metadata_overrides=(("k", "v"),))
    s = go(r, {"m1": seen("m1"), "m2": seen("m2", flags=cordoned, units=("a.service", "b"))})
    job = s.record.jobs[1]
    assert job.phase is JobPhase.DRAINING and job.prior == (True, False)
    assert job.moved == ("b",)  # a.service is m1's
    [task] = [t for t in s.tasks if t.machine == "m2"]
    assert task.flags == MachineFlags(True, True, (("k", "v"),))


def test_a_drain_waits_for_what_is_left_then_for_its_budget_then_acts() -> None:
    r = record("m1").with_job(Job("m1", JobPhase.DRAINING, since=NOW))
    left = Drain(("a.service", "b.service"), {"a.service": "moving to m2"})
    s = go(r, {"m1": seen("m1", drain=left)})
    assert (
        s.record.jobs[0].detail == "draining: 2 units to move: a.service (moving to m2), b.service"
    )
    assert s.tasks == ()
    blocked = Drain(blocked="taking m1 down would take x down")
    s = go(r, {"m1": seen("m1", drain=blocked)})
    assert s.record.jobs[0].detail == "taking m1 down would take x down" and not s.tasks
    s = go(r, {"m1": seen("m1", drain=Drain())})
    job = s.record.jobs[0]
    assert job.phase is JobPhase.ACTING and job.boot_id == "b1"
    [task] = s.tasks
    assert task.kind is Kind.ACTION and task.action is not None
    assert task.action.id == "mt/m1" and task.action.boot_id == "b1"
    assert task.action.state is ActionState.REQUESTED


def test_a_reboot_is_done_when_the_machine_is_back_with_a_new_boot() -> None:
    r = record("m1").with_job(
        Job("m1", JobPhase.ACTING, since=NOW, boot_id="b1", prior=(True, False), moved=("a",))
    )
    action = MachineAction("mt/m1", Action(), ActionState.REBOOTING, boot_id="b1")
    for machine, detail in (
        (None, "reboot: waiting for it to register again"),
        (up("m1", "b1"), "reboot: rebooting"),
        (up("m1", "b2", connected=False), "reboot: waiting for its agent to reach systemd"),
    ):
        s = go(r, {"m1": seen("m1", machine=machine, action=action)})
        assert s.record.jobs[0].phase is JobPhase.ACTING
        assert s.record.jobs[0].detail == detail
    request = RebootRequest("m1", since=NOW - 5)
    s = go(
        r,
        {"m1": seen("m1", machine=up("m1", "b2"), action=action, units=())},
        where={"a": ("m2",)},
        requests={"m1": request},
    )
    job = s.record.jobs[0]
    # No machine is down any more: the rebalance brings it back to its one unit.
    assert job.phase is JobPhase.RETURNING and job.refill == ("a",)
    assert job.detail == "rebalancing: 1 unit to come: a"
    kinds = [(t.kind, t.machine) for t in s.tasks]
    assert kinds == [(Kind.FLAGS, "m1"), (Kind.CLEAR_ACTION, "m1"), (Kind.CLEAR_REQUEST, "m1")]
    assert s.tasks[0].flags == MachineFlags(unschedulable=True)  # as it was before
    assert s.moves == {"a": "m1"}


def test_a_machine_back_is_refilled_by_the_next_drain_and_rebalanced_at_the_end() -> None:
    r = record("m1", "m2").with_job(
        Job("m1", JobPhase.ACTING, since=NOW, boot_id="b1", moved=("a",))
    )
    rebooting = MachineAction("mt/m1", Action(), ActionState.REBOOTING, boot_id="b1")
    machines = {
        "m1": seen("m1", machine=up("m1", "b2"), action=rebooting, units=()),
        "m2": seen("m2", units=("a", "b")),
    }
    s = go(r, machines, where={"a": ("m2",)})
    # m2 drains at once; m1 asks nothing back meanwhile (m2's drain refills it).
    assert phases(s.record) == ["returning", "draining"]
    assert s.record.jobs[0].refill is None and s.moves == {}
    assert s.record.jobs[0].detail == "back; units come to it once no machine is draining or down"
    assert s.record.jobs[1].moved == ("b",)  # a is m1's
    r = s.record.with_job(dataclasses.replace(s.record.jobs[1], phase=JobPhase.ACTING))
    machines["m2"] = seen("m2", machine=None)
    s = go(r, machines, where={"a": ("m1",), "b": ("m1",)})
    assert phases(s.record) == ["returning", "acting"] and s.moves == {}
    # m2 back, empty; m1 holds a and b: b goes back, a stays; then done.
    machines["m1"] = seen("m1", units=("a", "b"))
    machines["m2"] = seen("m2", machine=up("m2", "b2"), units=())
    back = MachineAction("mt/m2", Action(), ActionState.REBOOTING, boot_id="b1")
    machines["m2"] = dataclasses.replace(machines["m2"], action=back)
    r = s.record.with_job(dataclasses.replace(s.record.jobs[1], boot_id="b1"))
    s = go(r, machines, NOW + 5, where={"a": ("m1",), "b": ("m1",)})
    assert [j.refill for j in s.record.jobs] == [(), ("b",)]
    assert phases(s.record) == ["done", "returning"] and s.moves == {"b": "m2"}
    assert s.record.jobs[1].since == NOW + 5  # its returns' deadline counts from now
    s = go(s.record, machines, where={"a": ("m1",), "b": ("m2",)})
    assert phases(s.record) == ["done", "done"] and s.record.phase is Phase.DONE


def test_the_rebalance_spreads_the_units_again_with_the_fewest_moves() -> None:
    a, b, c = (tuple(f"{x}{i}" for i in range(1, 5)) for x in "abc")
    # Each machine had 4 units.  m1's drain left a1, a2 on m2 and a3, a4 on m3; m2's put
    # its own and a1, a2 on m1 (just back); m3's put its own and a3, a4 on m2.
    on = {"m1": (*a[:2], *b), "m2": (*c, *a[2:]), "m3": ()}
    where = {u: (m,) for m, units in on.items() for u in units}
    found = refills([("m1", a), ("m2", b), ("m3", c)], on, where)
    # m3 gets 4: two of its own from m2, then two guests from m1; 4 each again.
    assert found == {"m3": ("c1", "c2", "b1", "b2")}


def test_the_rebalance_takes_only_units_the_maintenance_moved_and_that_may_move() -> None:
    # m1 had a, b, c, d; m9 (not in the maintenance) holds a and its own x; b is still
    # moving (on two machines); c is gone or follows another unit (not in where).
    where = {"a": ("m9",), "b": ("m9", "m1"), "d": ("m1",), "x": ("m9",)}
    found = refills([("m1", ("a", "b", "c", "d"))], {"m1": ("d",)}, where)
    assert found == {"m1": ("a",)}
    # A machine back that has as many as it had gets nothing, and gives only its surplus.
    where = {"a": ("m2",), "b": ("m2",), "c": ("m1",)}
    targets = [("m1", ("a", "b")), ("m2", ("c", "y"))]
    found = refills(targets, {"m1": ("c",), "m2": ("a", "b", "y")}, where)
    assert found == {"m1": ("a",)}


def test_a_command_is_done_on_exit_status_0_and_fails_the_maintenance_otherwise() -> None:
    r = record("m1", "m2", action=CMD).with_job(Job("m1", JobPhase.ACTING, since=NOW, boot_id="b1"))
    ok = MachineAction("mt/m1", CMD, ActionState.DONE, "b1", exit_status=0)
    s = go(r, {"m1": seen("m1", action=ok), "m2": seen("m2")})
    assert phases(s.record) == ["done", "draining"]  # nothing came from m1: done at once
    assert s.record.jobs[0].exit_status == 0
    bad = dataclasses.replace(ok, state=ActionState.FAILED, exit_status=3, message="E: broken")
    s = go(r, {"m1": seen("m1", action=bad), "m2": seen("m2")})
    job = s.record.jobs[0]
    assert job.phase is JobPhase.FAILED and job.exit_status == 3
    assert job.detail == "command /usr/bin/upgrade -y exited with status 3: E: broken"
    assert s.record.phase is Phase.FAILED  # nothing else under way
    assert s.record.failure == f"m1: {job.detail}" and s.record.message == s.record.failure
    assert s.record.jobs[1].detail == "not started: the maintenance stopped"
    assert not [t for t in s.tasks if t.kind is Kind.FLAGS]  # m1 stays cordoned


def test_a_failure_lets_the_jobs_under_way_finish_first() -> None:
    r = record("m1", "m2", action=CMD, n=2)
    r = r.with_job(Job("m1", JobPhase.ACTING, since=NOW, boot_id="b1"))
    r = r.with_job(Job("m2", JobPhase.DRAINING, since=NOW))
    bad = MachineAction("mt/m1", CMD, ActionState.FAILED, "b1", exit_status=1)
    s = go(r, {"m1": seen("m1", action=bad), "m2": seen("m2", drain=Drain(("x",)))})
    assert s.record.phase is Phase.STOPPING and s.record.message.startswith("stopping (m1: ")
    assert s.record.active
    s = go(s.record, {"m1": seen("m1", action=bad), "m2": seen("m2", drain=Drain())})
    assert phases(s.record) == ["failed", "acting"] and s.record.phase is Phase.STOPPING


def test_a_late_start_first_move_stops_the_drain_and_leaves_its_machine_cordoned() -> None:
    r = record("m1", "m2").with_job(Job("m1", JobPhase.DRAINING, since=NOW, prior=(False, False)))
    late = Drain(("a",), {"a": "moving to m2"}, late="a was not active and healthy on m2")
    s = go(r, {"m1": seen("m1", drain=late), "m2": seen("m2")})
    job = s.record.jobs[0]
    assert job.phase is JobPhase.FAILED
    assert job.detail == "drain stopped: a was not active and healthy on m2"
    assert s.record.phase is Phase.FAILED and s.record.failure == f"m1: {job.detail}"
    assert s.tasks == ()  # m1 stays cordoned; no action is asked of it


def test_a_cancel_stops_a_drain_lets_an_action_finish_and_starts_nothing() -> None:
    r = record("m1", "m2", "m3", n=2, phase=Phase.STOPPING, cancelled="ops")
    r = r.with_job(Job("m1", JobPhase.ACTING, since=NOW, boot_id="b1", moved=("a",)))
    r = r.with_job(Job("m2", JobPhase.DRAINING, since=NOW, prior=(True, False), moved=("b",)))
    rebooting = MachineAction("mt/m1", Action(), ActionState.REBOOTING, boot_id="b1")
    machines = {
        "m1": seen("m1", machine=None, action=rebooting),
        "m2": seen("m2", drain=Drain(("b",))),
        "m3": seen("m3"),
    }
    s = go(r, machines, where={"b": ("m3",)})
    assert phases(s.record) == ["acting", "returning", "pending"]
    # m1 is still down: m2's units come back once it is back.
    assert s.record.jobs[1].detail == "back; units come to it once no machine is draining or down"
    assert s.record.jobs[2].detail == "not started: the maintenance was cancelled"
    [uncordon] = s.tasks
    assert uncordon.machine == "m2" and uncordon.flags == MachineFlags(unschedulable=True)
    assert s.moves == {}
    assert s.record.phase is Phase.STOPPING
    assert s.record.message.startswith("stopping (cancelled by ops); m1: reboot: ")
    # m1 comes back and is uncordoned: both rebalanced at once, b asked home.
    machines["m1"] = seen("m1", machine=up("m1", "b2"), action=rebooting, units=())
    machines["m2"] = seen("m2", units=())
    s = go(s.record, machines, where={"a": ("m3",), "b": ("m3",)})
    assert phases(s.record) == ["returning", "returning", "pending"]
    assert [j.refill for j in s.record.jobs[:2]] == [("a",), ("b",)]
    assert s.moves == {"a": "m1", "b": "m2"}
    machines["m1"] = seen("m1", units=("a",))
    machines["m2"] = seen("m2", units=("b",))
    s = go(s.record, machines, where={"a": ("m1",), "b": ("m2",)})
    assert phases(s.record) == ["done", "done", "pending"]
    assert s.record.phase is Phase.CANCELLED and s.record.message == "cancelled by ops"
    assert s.tasks == ()


def test_an_action_of_another_maintenance_is_not_ours() -> None:
    r = record("m1", action=CMD).with_job(Job("m1", JobPhase.ACTING, since=NOW, boot_id="b1"))
    other = MachineAction("old/m1", CMD, ActionState.DONE, "b1", exit_status=0)
    s = go(r, {"m1": seen("m1", action=other)})
    assert s.record.jobs[0].phase is JobPhase.ACTING


def test_timeouts_fail_the_job() -> None:
    t = Timeouts(back=60, returns=30)
    r = record("m1").with_job(Job("m1", JobPhase.ACTING, since=NOW, boot_id="b1"))
    s = go(r, {"m1": seen("m1")}, NOW + 60, timeouts=t)
    assert s.record.jobs[0].phase is JobPhase.FAILED
    assert s.record.jobs[0].detail == "not back within 60s after reboot"
    r = record("m1").with_job(Job("m1", JobPhase.DRAINING, since=NOW))
    s = go(r, {"m1": Seen()}, NOW + 60, timeouts=t)
    assert s.record.jobs[0].detail == "m1 is not registered for 60s"
    job = Job("m1", JobPhase.RETURNING, since=NOW, moved=("a", "b"), refill=("a",))
    s = go(
        record("m1").with_job(job), {"m1": seen("m1")}, NOW + 30, where={"a": ("m2",)}, timeouts=t
    )
    assert s.record.jobs[0].phase is JobPhase.DONE
    assert s.record.jobs[0].detail == "done; 1 unit did not come: a"
    assert s.record.phase is Phase.DONE and s.record.finished == NOW + 30


def test_returns_wait_for_the_units_and_say_what_was_refused() -> None:
    moved = ("a", "b", "c", "d")
    job = Job("m1", JobPhase.RETURNING, since=NOW, moved=moved, refill=moved)
    r = record("m1").with_job(job)
    # a still moving back; b back; c gone; d placed nowhere for now (AtMostOnce: it stops
    # on its machine first)
    where = {"a": ("m1", "m2"), "b": ("m1",), "d": ()}
    s = go(r, {"m1": seen("m1")}, where=where, refused={"a": "m1: no room"})
    assert s.record.jobs[0].detail == (
        "rebalancing: 2 units to come: a, d (refused for now: a: m1: no room)"
    )
    assert s.moves == {"a": "m1", "d": "m1"}
    s = go(r, {"m1": seen("m1")}, where={"b": ("m1",)})
    assert s.record.phase is Phase.DONE and s.moves == {}


def test_requested_jobs_wait_for_their_window_and_end_when_withdrawn() -> None:
    r = record("m1", "m2", requested=True, n=2)
    monday = datetime(2026, 11, 30, 12, 0, tzinfo=UTC).timestamp()
    requests = {
        "m1": RebootRequest("m1", window="Sun 03:00 2h"),
        "m2": RebootRequest("m2", window="Mon 11:00 2h"),
    }
    s = go(r, {"m1": seen("m1"), "m2": seen("m2")}, monday, requests=requests)
    assert phases(s.record) == ["pending", "draining"]  # no turns among requests
    assert s.record.jobs[0].detail == "outside its maintenance window (Sun 03:00 2h)"
    s = go(r, {"m1": seen("m1"), "m2": seen("m2")}, monday, requests={})
    assert phases(s.record) == ["done", "done"] and s.record.phase is Phase.DONE
    assert s.record.jobs[0].detail == "no longer requested"


def test_an_over_maintenance_is_left_alone() -> None:
    r = record("m1", phase=Phase.DONE)
    assert go(r, {"m1": seen("m1")}) == Step(r)


@pytest.mark.parametrize(
    ("text", "when", "inside"),
    [
        ("Sun 03:00 2h", "2026-11-29 03:00", True),  # a Sunday
        ("Sun 03:00 2h", "2026-11-29 04:59", True),
        ("Sun 03:00 2h", "2026-11-29 05:00", False),
        ("Sun 03:00 2h", "2026-11-29 02:59", False),
        ("Sun 03:00 2h", "2026-11-30 03:30", False),
        ("Sun 23:00 2h", "2026-11-30 00:30", True),  # past midnight into Monday
        ("Mon-Fri 22:30 1h 30min", "2026-12-04 23:59", True),  # a Friday
        ("Mon-Fri 22:30 1h 30min", "2026-12-05 23:00", False),  # a Saturday
        ("Sat,sunday 10:00 1h", "2026-12-05 10:10", True),
        ("Fri-Mon 10:00 1h", "2026-12-07 10:10", True),  # wraps over the week's end
        ("Fri-Mon 10:00 1h", "2026-12-02 10:10", False),
        ("04:00 1h", "2026-12-02 04:10", True),
        ("Sat 00:00 7d", "2026-12-04 12:00", True),
    ],
)
def test_windows(text: str, when: str, inside: bool) -> None:
    t = datetime.strptime(when, "%Y-%m-%d %H:%M").replace(tzinfo=UTC).timestamp()
    assert parse_window(text).contains(t) is inside
    assert in_window(text, t - 3600, 3600) is inside  # one hour east of UTC


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "an empty maintenance window"),
        ("Sun", "the opening time HH:MM is missing"),
        ("Sun 25:00 1h", "the opening time HH:MM is missing"),
        ("Sun 03:00", "the duration is missing"),
        ("Sun 03:00 soon", "soon"),
        ("Sun 03:00 8d", "at most a week"),
        ("Sunday-Funday 03:00 1h", "'Funday' is not a day name"),
        ("Mon- 03:00 1h", "a day list is like"),
    ],
)
def test_bad_windows_say_why(text: str, why: str) -> None:
    with pytest.raises(InvalidInput, match="expected") as raised:
        parse_window(text)
    assert why in str(raised.value)
    assert not in_window(text or "x", NOW, 0)


def spec(name: str, **req: object) -> UnitSpec:
    return UnitSpec(name, "h", DesiredState.LAUNCHED, Requirements(**req))  # type: ignore[arg-type]


def test_drain_status_names_what_is_left_and_what_stays() -> None:
    units = {n: spec(n) for n in ("a", "b", "c", "d", "e")}
    units["g"] = spec("g", global_=True)
    placements = {
        "b": Placement("b", "cannot leave draining machine m1: m2: needs 2G memory"),
        "c": Placement("c", "waits to leave m1: x@.service allows 1 unit(s) down"),
    }
    states = [
        UnitState("m1", "e", "h", "loaded", "active", "running"),  # unscheduled, still up
        UnitState("m1", "g", "h", "loaded", "active", "running"),  # Global: stays
        UnitState("m1", "f", "h", "loaded", "inactive", "dead"),
    ]
    drain = drain_status(
        "m1",
        units=units,
        on=["a", "b", "c", "g"],
        placements=placements,
        stopping={"d": "m1", "x": "m9"},
        marked={("m2", "a"): "m1"},
        states=states,
    )
    assert drain.left == ("a", "c", "d", "e")
    assert drain.why == {
        "a": "moving to m2",
        "c": "waits to leave m1: x@.service allows 1 unit(s) down",
        "d": "stopping",
        "e": "still running there",
    }
    assert drain.blocked == ""
    # A start-first move past its deadline (from its placement reason's since).
    moving = {"a": Placement("a", "moving from m1 to m2: it runs on m1 until ...", since=10.0)}
    for now, late in ((39.0, ""), (40.0, "a was not active and healthy on m2 within 30s")):
        drain = drain_status(
            "m1",
            units=units,
            on=["a"],
            placements=moving,
            stopping={},
            marked={("m2", "a"): "m1"},
            states=[],
            now=now,
            move_timeout=30.0,
        )
        assert drain.left == ("a",) and drain.late.startswith(late)
        assert not late or drain.late.endswith("its copy on m1 keeps running")


def test_a_unit_that_cannot_leave_blocks_the_action_while_its_budget_is_spent() -> None:
    units = {f"w@{i}.service": spec(f"w@{i}.service", max_unavailable=1) for i in (1, 2)}
    stuck = Placement("w@1.service", "cannot leave draining machine m1: pinned")
    schedule = [("m1", "w@1.service"), ("m2", "w@2.service")]

    def status(health: Health) -> Drain:
        states = {
            (u, m): UnitState(m, u, "h", "loaded", "active", "running", health=health)
            for m, u in schedule
        }
        return drain_status(
            "m1",
            units=units,
            on=["w@1.service"],
            placements={"w@1.service": stuck},
            stopping={},
            marked={},
            states=[],
            budgets=budgets_of(units, schedule, states, ()),
        )

    assert status(Health.HEALTHY) == Drain()
    blocked = status(Health.UNHEALTHY).blocked  # w@2 is down already: no room for w@1
    assert blocked.startswith("taking m1 down would take w@1.service down (it cannot leave)")
    assert "w@.service allows 1 unit(s) down" in blocked


def test_records_round_trip_through_the_codec() -> None:
    r = record("m1", "m2", action=CMD, n=2, by="ops", message="x", failure="m1: y", cancelled="c")
    r = r.with_job(
        Job("m1", JobPhase.FAILED, 5.0, "d", "b1", (True, False), ("a", "b"), exit_status=3)
    )
    r = r.with_job(Job("m2", JobPhase.RETURNING, moved=("c",), refill=("a",)))
    assert maintcodec.decode_maintenance("k", maintcodec.encode_maintenance(r)) == r
    assert r.jobs[0].refill is None
    action = MachineAction("mt/m1", CMD, ActionState.FAILED, "b1", 3, "E", 7.0)
    assert maintcodec.decode_machine_action("k", maintcodec.encode_machine_action(action)) == action
    request = RebootRequest("m1", 3.0, "why", "Sun 03:00 2h", 3600)
    assert maintcodec.decode_request("m1", "k", maintcodec.encode_request(request)) == request
    with pytest.raises(RegistryError, match="unknown action"):
        maintcodec.decode_machine_action(
            "k", b'{"v":1,"id":"a","action":{"kind":"x"},"state":"done"}'
        )
