"""plan_rollout: every phase transition, deadlines on injected time, canaries, reverts,
pause/resume/abort, with the record as the only memory (pure)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fleetd.errors import Conflict
from fleetd.rollouts.control import Control, controlled
from fleetd.rollouts.plan import Action, Seen, Situation, Step, Task, plan_rollout
from fleetd.rollouts.record import Kind, Options, Phase, Rollout, State, Target

OLD, NEW = "o" * 40, "n" * 40
T0 = 1_000.0


def template(**options: object) -> Rollout:
    settings = Options(**{"min_healthy_time": 10.0, "healthy_deadline": 60.0, **options})  # type: ignore[arg-type]
    return Rollout("id1", "web@.service", Kind.TEMPLATE, 1, OLD, 2, NEW, settings, by="ops")


def names(n: int) -> list[str]:
    return [f"web@{i}.service" for i in range(1, n + 1)]


class World:
    """The instances as the driver would see them, moved by the writes a step asks for."""

    def __init__(self, n: int) -> None:
        self.hash = dict.fromkeys(names(n), OLD)
        self.up = dict.fromkeys(names(n), True)
        self.unit_hash: str | None = NEW

    def seen(self) -> dict[str, Seen]:
        return {
            n: Seen(h, self.up[n], "" if self.up[n] else "failed/failed")
            for n, h in self.hash.items()
        }

    def step(self, record: Rollout, now: float, **changes: object) -> Step:
        s = Situation(record, self.unit_hash, self.seen(), now, dict(self.hash))
        step = plan_rollout(replace(s, **changes))  # type: ignore[arg-type]
        for task in step.tasks:
            assert task.action is Action.WRITE
            if task.unit == "web@.service":
                self.unit_hash = task.hash
            else:
                self.hash[task.unit] = task.hash
        return step


def states(r: Rollout) -> list[str]:
    return [t.state.value for t in r.targets]


def test_a_template_rolls_max_parallel_at_a_time_and_succeeds() -> None:
    w = World(3)
    step = w.step(template(max_parallel=2), T0)
    assert step.changed and [t.unit for t in step.tasks] == names(2)
    assert all(t.hash == NEW for t in step.tasks)
    r = step.record
    assert states(r) == ["updating", "updating", "pending"]
    assert r.updated == T0 and step.wake_at == T0 + 60
    r = w.step(r, T0 + 1).record
    assert states(r) == ["healthy", "healthy", "pending"]
    assert w.step(r, T0 + 2).record == r  # nothing happened: no write
    step = w.step(r, T0 + 11)
    assert states(step.record) == ["done", "done", "updating"]
    assert [t.unit for t in step.tasks] == ["web@3.service"]
    r = w.step(step.record, T0 + 12).record
    r = w.step(r, T0 + 22).record
    assert r.phase is Phase.SUCCEEDED and not r.active
    assert r.message == "3 of 3 updated: all on version 2"
    assert w.step(r, T0 + 99) == Step(r)


def test_a_target_that_stops_being_ready_starts_its_min_healthy_time_again() -> None:
    w = World(1)
    r = w.step(template(), T0).record
    r = w.step(r, T0 + 1).record
    assert r.targets[0].state is State.HEALTHY and r.targets[0].since == T0 + 1
    w.up["web@1.service"] = False
    r = w.step(r, T0 + 5).record
    assert r.targets[0].state is State.UPDATING and r.targets[0].started == T0
    assert r.targets[0].message == "failed/failed"
    w.up["web@1.service"] = True
    r = w.step(r, T0 + 6).record
    assert r.targets[0].since == T0 + 6
    assert w.step(r, T0 + 15).record.targets[0].state is State.HEALTHY
    assert w.step(r, T0 + 16).record.targets[0].state is State.DONE


def test_the_deadline_fails_the_rollout_where_it_stands() -> None:
    w = World(2)
    r = w.step(template(), T0).record
    w.up["web@1.service"] = False
    r = w.step(r, T0 + 59).record
    assert r.phase is Phase.RUNNING
    step = w.step(r, T0 + 60)
    r = step.record
    assert r.phase is Phase.FAILED and not step.tasks
    assert states(r) == ["failed", "pending"]
    assert r.failure == "web@1.service: not healthy within 1m (failed/failed)"
    assert w.hash == {"web@1.service": NEW, "web@2.service": OLD}


def test_auto_revert_rolls_the_updated_targets_back_the_same_way() -> None:
    w = World(4)
    r = w.step(template(max_parallel=2, auto_revert=True), T0).record
    r = w.step(r, T0 + 1).record
    r = w.step(r, T0 + 11).record  # 1 and 2 done, 3 and 4 updating
    w.up["web@3.service"] = False
    r = w.step(r, T0 + 12).record
    assert states(r) == ["done", "done", "updating", "healthy"]
    step = w.step(r, T0 + 71)
    r = step.record
    assert r.phase is Phase.REVERTING and r.reverting
    assert r.failure == "web@3.service: not healthy within 1m (failed/failed)"
    # The template first, then the first two targets (max_parallel), back to their old hash.
    assert [(t.unit, t.hash) for t in step.tasks] == [
        ("web@.service", OLD),
        ("web@1.service", OLD),
        ("web@2.service", OLD),
    ]
    assert step.tasks[0].reason.startswith("revert web@.service to version 1")
    assert states(r) == ["updating", "updating", "pending", "pending"]
    assert r.text_hash == OLD and w.unit_hash == OLD
    w.up["web@3.service"] = True
    r = w.step(r, T0 + 72).record
    r = w.step(r, T0 + 82).record
    assert states(r) == ["done", "done", "updating", "updating"]
    r = w.step(r, T0 + 83).record
    r = w.step(r, T0 + 93).record
    assert r.phase is Phase.REVERTED
    assert set(w.hash.values()) == {OLD}
    assert r.message.startswith("4 of 4 back on the previous version: reverted to version 1")


def test_untouched_targets_are_skipped_by_the_revert() -> None:
    w = World(3)
    r = w.step(template(auto_revert=True), T0).record
    w.up["web@1.service"] = False
    r = w.step(r, T0 + 60).record
    assert r.phase is Phase.REVERTING
    assert states(r) == ["updating", "skipped", "skipped"]
    assert r.targets[1].message == "not updated"


def test_a_failed_revert_fails_the_rollout_naming_both() -> None:
    w = World(1)
    r = w.step(template(auto_revert=True), T0).record
    w.up["web@1.service"] = False
    r = w.step(r, T0 + 60).record
    assert r.phase is Phase.REVERTING
    r = w.step(r, T0 + 120).record
    assert r.phase is Phase.FAILED and r.reverting
    assert r.failure == (
        "web@1.service: not healthy within 1m (failed/failed); then the revert failed: "
        "web@1.service: not healthy within 1m (failed/failed)"
    )


def test_canaries_wait_for_a_promotion_then_the_rest_rolls() -> None:
    w = World(4)
    step = w.step(template(canary=1, max_parallel=3), T0)
    assert [t.unit for t in step.tasks] == ["web@1.service"]
    assert step.tasks[0].reason.startswith("canary web@1.service")
    r = w.step(step.record, T0 + 1).record
    r = w.step(r, T0 + 11).record
    assert r.phase is Phase.AWAITING_PROMOTION
    assert r.message == "1 of 4 updated: canaries healthy, waiting for a promotion"
    waiting = w.step(r, T0 + 500)
    assert waiting.record == r and waiting.wake_at is None
    r = controlled(r, Control.PROMOTE, "ops", T0 + 600)
    assert r.phase is Phase.RUNNING and r.promoted
    step = w.step(r, T0 + 601)
    assert [t.unit for t in step.tasks] == names(4)[1:]


def test_a_canary_that_is_skipped_is_replaced_by_the_next() -> None:
    w = World(3)
    r = w.step(template(canary=1), T0).record
    del w.hash["web@1.service"]  # destroyed
    step = w.step(r, T0 + 1)
    assert states(step.record) == ["skipped", "updating", "pending"]
    assert step.record.targets[0].message == "no longer exists"


def test_pause_stops_new_targets_but_follows_those_in_flight() -> None:
    w = World(3)
    r = w.step(template(), T0).record
    r = controlled(r, Control.PAUSE, "ops", T0 + 1)
    assert r.phase is Phase.PAUSED and r.message == "paused by ops"
    r = w.step(r, T0 + 2).record
    r = w.step(r, T0 + 12).record
    assert states(r) == ["done", "pending", "pending"] and r.phase is Phase.PAUSED
    assert r.message == "1 of 3 updated: paused"
    r = controlled(r, Control.RESUME, "ops", T0 + 20)
    step = w.step(r, T0 + 21)
    assert [t.unit for t in step.tasks] == ["web@2.service"]


def test_a_paused_rollout_with_nothing_left_succeeds() -> None:
    w = World(1)
    r = w.step(template(), T0).record
    r = controlled(r, Control.PAUSE, "ops", T0)
    r = w.step(r, T0 + 1).record
    assert w.step(r, T0 + 11).record.phase is Phase.SUCCEEDED


def test_an_aborted_rollout_is_left_as_it_is() -> None:
    w = World(2)
    r = w.step(template(), T0).record
    r = controlled(r, Control.ABORT, "ops", T0 + 1)
    assert r.phase is Phase.ABORTED and r.message == "aborted by ops"
    assert w.step(r, T0 + 100) == Step(r)


def test_control_refuses_what_does_not_apply() -> None:
    r = template()
    with pytest.raises(Conflict, match="no canaries awaiting a promotion"):
        controlled(r, Control.PROMOTE, "ops", T0)
    assert controlled(r, Control.RESUME, "ops", T0) is r
    paused = controlled(r, Control.PAUSE, "ops", T0)
    assert controlled(paused, Control.PAUSE, "ops", T0) is paused
    waiting = replace(template(canary=1), phase=Phase.AWAITING_PROMOTION)
    with pytest.raises(Conflict, match="awaits a promotion"):
        controlled(waiting, Control.PAUSE, "ops", T0)
    done = replace(r, phase=Phase.SUCCEEDED)
    for action in Control:
        with pytest.raises(Conflict, match=f"has ended \\(succeeded\\): nothing to {action}"):
            controlled(done, action, "ops", T0)
    reverting = replace(r, phase=Phase.PAUSED, reverting=True)
    assert controlled(reverting, Control.RESUME, "ops", T0).phase is Phase.REVERTING


def test_a_pending_target_found_with_the_new_hash_is_on_its_way() -> None:
    # A write whose record did not follow (the leader died between them).
    w = World(2)
    r = template().with_targets(tuple(Target(n, OLD, OLD) for n in names(2)))
    w.hash["web@2.service"] = NEW
    step = w.step(r, T0)
    assert states(step.record) == ["pending", "updating"]  # one at a time
    assert step.record.target("web@2.service") == Target(
        "web@2.service", OLD, NEW, State.UPDATING, started=T0
    )


def test_a_target_whose_file_changed_outside_is_skipped() -> None:
    w = World(2)
    r = w.step(template(), T0).record
    w.hash["web@1.service"] = "x" * 40
    r = w.step(r, T0 + 1).record
    assert r.targets[0].state is State.SKIPPED
    assert r.targets[0].message == "its file was changed outside this rollout (hash xxxxxxx)"


def test_the_unit_changed_or_destroyed_outside_fails_the_rollout() -> None:
    w = World(1)
    r = w.step(template(), T0).record
    changed = w.step(r, T0 + 1, unit_hash="x" * 40).record
    assert changed.phase is Phase.FAILED
    assert changed.failure.startswith("the file of web@.service was changed outside")
    # A template destroyed: its instances are units of their own and still roll.
    assert w.step(r, T0 + 1, unit_hash=None).record.phase is Phase.RUNNING
    plain = replace(r, kind=Kind.UNIT, unit="db.service")
    gone = w.step(plain, T0 + 1, unit_hash=None).record
    assert gone.phase is Phase.FAILED and gone.failure == "unit db.service was destroyed"


def test_instances_launched_later_join_until_the_revert() -> None:
    w = World(1)
    r = w.step(template(max_parallel=1), T0).record
    w.hash["web@9.service"] = OLD
    w.up["web@9.service"] = True
    w.hash["web@8.service"] = NEW  # created from the new template: nothing to do
    w.up["web@8.service"] = True
    r = w.step(r, T0 + 1).record
    assert [t.name for t in r.targets] == ["web@1.service", "web@9.service"]


def test_a_plain_unit_is_its_only_target_and_reverts_by_its_own_text() -> None:
    start = Target("db.service", OLD, NEW, State.UPDATING, started=T0)
    r = replace(template(auto_revert=True), kind=Kind.UNIT, unit="db.service", targets=(start,))

    def at(now: float, assigned: str, ready: bool, unit_hash: str) -> Step:
        seen = {"db.service": Seen(assigned, ready, "" if ready else "failed/failed")}
        return plan_rollout(Situation(r, unit_hash, seen, now))

    step = at(T0 + 60, NEW, False, NEW)
    r = step.record
    assert r.phase is Phase.REVERTING
    assert step.tasks == (Task(Action.WRITE, "db.service", OLD, step.tasks[0].reason),)
    assert r.targets[0].current == OLD and r.targets[0].state is State.UPDATING
    r = at(T0 + 61, OLD, True, OLD).record
    r = at(T0 + 71, OLD, True, OLD).record
    assert r.phase is Phase.REVERTED


class Machines:
    """A Global unit's machines as the driver sees them: each runs the hash the unit
    record gives it (its text's, or a pin), moved by the step's WRITE and PIN tasks."""

    def __init__(self, *machines: str) -> None:
        self.unit_hash = NEW
        self.pinned = dict.fromkeys(machines, OLD)
        self.up = dict.fromkeys(machines, True)

    def step(self, record: Rollout, now: float) -> Step:
        seen = {
            m: Seen(self.pinned.get(m, self.unit_hash), self.up[m], "" if self.up[m] else "down")
            for m in self.up
        }
        step = plan_rollout(Situation(record, self.unit_hash, seen, now))
        for task in step.tasks:
            assert task.unit == "g.service"
            if task.action is Action.WRITE:
                self.unit_hash = task.hash
            else:
                self.pinned = dict(step.record.pins())
        return step


def global_rollout(*machines: str, **options: object) -> Rollout:
    r = replace(template(**options), kind=Kind.GLOBAL, unit="g.service")
    return r.with_targets(tuple(Target(m, OLD, OLD) for m in machines))


def test_a_global_unit_moves_machine_by_machine_through_its_pins() -> None:
    w = Machines("m1", "m2", "m3")
    r = global_rollout("m1", "m2", "m3")
    assert r.pins() == (("m1", OLD), ("m2", OLD), ("m3", OLD))
    step = w.step(r, T0)
    assert [(t.action, t.reason) for t in step.tasks] == [
        (Action.PIN, "1 machine(s) moved: 2 keep another file")
    ]
    assert w.pinned == {"m2": OLD, "m3": OLD}
    r = w.step(step.record, T0 + 1).record
    assert states(r) == ["healthy", "pending", "pending"]
    r = w.step(r, T0 + 11).record
    assert states(r) == ["done", "updating", "pending"] and w.pinned == {"m3": OLD}
    r = w.step(w.step(r, T0 + 12).record, T0 + 22).record
    r = w.step(w.step(r, T0 + 23).record, T0 + 33).record
    assert r.phase is Phase.SUCCEEDED and w.pinned == {} and r.pins() == ()


def test_a_global_unit_s_revert_writes_its_old_text_and_pins_the_updated_machines() -> None:
    w = Machines("m1", "m2", "m3")
    r = global_rollout("m1", "m2", "m3", auto_revert=True)
    r = w.step(r, T0).record
    r = w.step(r, T0 + 1).record
    r = w.step(r, T0 + 11).record  # m1 done, m2 updating
    w.up["m2"] = False
    step = w.step(r, T0 + 71)
    r = step.record
    assert r.phase is Phase.REVERTING
    assert [(t.action, t.hash) for t in step.tasks] == [(Action.WRITE, OLD), (Action.PIN, "")]
    # The text is the old one again; m1 moves back first (max_parallel 1), m2 waits on NEW.
    assert w.unit_hash == OLD and w.pinned == {"m2": NEW}
    assert states(r) == ["updating", "pending", "skipped"]
    w.up["m2"] = True
    r = w.step(w.step(r, T0 + 72).record, T0 + 82).record
    assert w.pinned == {}
    r = w.step(w.step(r, T0 + 83).record, T0 + 93).record
    assert r.phase is Phase.REVERTED


def test_a_failed_global_rollout_keeps_the_machines_not_moved_on_their_old_file() -> None:
    w = Machines("m1", "m2")
    r = w.step(global_rollout("m1", "m2"), T0).record
    w.up["m1"] = False
    r = w.step(r, T0 + 60).record
    assert r.phase is Phase.FAILED and r.pins() == (("m2", OLD),)
    assert w.pinned == {"m2": OLD}  # nothing else written: m2 stays where it was


def test_the_message_does_not_change_with_the_time_alone() -> None:
    w = World(2)
    r = w.step(template(), T0).record
    w.up["web@1.service"] = False
    r = w.step(r, T0 + 1).record
    assert r.message == "0 of 2 updated; waiting for web@1.service (failed/failed)"
    for now in (T0 + 2, T0 + 30, T0 + 59):
        assert not w.step(r, now).changed


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"max_parallel": 0}, "max-parallel must be at least 1, got 0"),
        ({"max_parallel": 10**9}, "max-parallel and canary are at most 100000"),
        ({"min_healthy_time": -1.0}, "min-healthy-time cannot be negative, got -1s"),
        ({"healthy_deadline": float("inf")}, "healthy-deadline must be at most 604800s"),
        ({"min_healthy_time": float("nan")}, "min-healthy-time must be at most 604800s"),
        ({"min_healthy_time": 300.0}, "healthy-deadline (300s) must be longer than"),
        ({"canary": -1}, "canary cannot be negative, got -1"),
    ],
)
def test_bad_options_are_named(options: dict[str, object], problem: str) -> None:
    found = Options(**options).problems()  # type: ignore[arg-type]
    assert any(p.startswith(problem) for p in found), found
    assert Options().problems() == []


def test_start_first_holds_the_old_copy_until_the_new_one_is_done() -> None:
    start = Target("db.service", OLD, NEW, State.UPDATING, started=T0)
    r = replace(
        template(start_first=True), kind=Kind.UNIT, unit="db.service", targets=(start,),
        held=(("m1", OLD),),
    )  # fmt: skip
    assert r.pins() == (("m1", OLD),)

    def at(now: float, ready: bool, unit_hash: str = NEW, assigned: str = NEW) -> Step:
        seen = {"db.service": Seen(assigned, ready, "" if ready else "activating/start")}
        return plan_rollout(Situation(r, unit_hash, seen, now))

    r = at(T0 + 1, True).record
    assert r.targets[0].state is State.HEALTHY and r.pins() == (("m1", OLD),)
    step = at(T0 + 11, True)
    assert step.record.phase is Phase.SUCCEEDED and step.record.pins() == ()
    assert [t.action for t in step.tasks] == [Action.PIN]  # the old copy goes now


def test_a_failed_start_first_drops_the_new_copy_without_auto_revert() -> None:
    start = Target("db.service", OLD, NEW, State.UPDATING, started=T0)
    r = replace(
        template(start_first=True), kind=Kind.UNIT, unit="db.service", targets=(start,),
        held=(("m1", OLD),),
    )  # fmt: skip
    seen = {"db.service": Seen(NEW, False, "failed/failed on m2")}
    step = plan_rollout(Situation(r, NEW, seen, T0 + 60))
    assert step.record.phase is Phase.REVERTING and step.record.pins() == ()
    assert [(t.action, t.hash) for t in step.tasks] == [(Action.WRITE, OLD), (Action.PIN, "")]
