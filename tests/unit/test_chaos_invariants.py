"""The chaos run's checkers (fleetd/testing/chaos/invariants.py) on made-up histories:
each invariant broken once is caught, and a history that keeps them all passes."""

from __future__ import annotations

from pathlib import Path

from fleetd.testing.chaos import invariants
from fleetd.testing.chaos.history import History, Record, dump, load

ONCE = "chaos-once-0000.service"
PLAIN = "chaos-u-0003.service"
H1, H2 = "h" * 40, "g" * 40


class Build:
    """A history: meta, the two units written, then whatever a test adds."""

    def __init__(self) -> None:
        self.records: list[Record] = [
            {
                "kind": "meta",
                "t": 0.0,
                "seed": 7,
                "ttl": 10.0,
                "machines": {"m1": "id1", "m2": "id2", "m3": "id3"},
                "at_most_once": [ONCE],
            },
            self.write("create", ONCE, 0.1),
            self.write("create", PLAIN, 0.1),
        ]
        self.last: dict[str, float] = {}

    @staticmethod
    def write(op: str, name: str, t: float, outcome: str = "ok", h: str = H1) -> Record:
        record: Record = {"kind": "write", "t": t, "op": op, "name": name, "outcome": outcome}
        if op == "create":
            record |= {"hash": h, "description": f"chaos {name} s7"}
        return record

    def active(self, machine: str, t: float, added: list[str], removed: list[str]) -> Build:
        prev = self.last.get(machine, t)
        self.records.append(
            {
                "kind": "active",
                "t": t,
                "prev": prev,
                "machine": machine,
                "added": added,
                "removed": removed,
            }
        )
        self.last[machine] = t
        return self

    def tick(self, machine: str, t: float) -> Build:
        """A sample that saw no change (recorded only as the next change's ``prev``)."""
        self.last[machine] = t
        return self

    def pids(self, machine: str, prev: float, t: float, pids: dict[str, int]) -> Build:
        self.records.append(
            {"kind": "pids", "t": t, "prev": prev, "machine": machine, "pids": pids}
        )
        return self

    def fault(self, fault: str, machines: list[str], start: float, end: float) -> Build:
        n = len(self.records)
        base = {"kind": "fault", "id": n, "fault": fault, "machines": machines, "details": {}}
        self.records += [base | {"t": start, "phase": "start"}, base | {"t": end, "phase": "end"}]
        return self

    def add(self, *records: Record) -> Build:
        self.records += records
        return self

    def end(
        self, healed: float, t: float, registry: dict[str, tuple[str, str]] | None = None
    ) -> History:
        units = (
            registry if registry is not None else {ONCE: (H1, "launched"), PLAIN: (H1, "launched")}
        )
        self.records.append(
            {
                "kind": "registry",
                "t": t,
                "units": {n: {"hash": h, "desired": d} for n, (h, d) in units.items()},
            }
        )
        self.records.append({"kind": "settle", "t": t, "healed": healed})
        return History(self.records)


def healthy() -> Build:
    """Both units start at 1 s, on m1 and m2, and run to the end."""
    return Build().active("m1", 1.0, [ONCE], []).active("m2", 1.0, [PLAIN], [])


def kinds(history: History) -> list[str]:
    return [v.invariant for v in invariants.check(history)]


def test_a_history_that_keeps_every_invariant_passes() -> None:
    history = (
        healthy()
        .pids("m1", 1.0, 2.0, {ONCE: 100})
        .pids("m2", 1.0, 2.0, {PLAIN: 200})
        .fault("partition", ["m3"], 10.0, 20.0)
        .add(
            {
                "kind": "systemd",
                "t": 60.0,
                "machine": "m1",
                "descriptions": {ONCE: f"chaos {ONCE} s7"},
            }
        )
        .end(healed=20.0, t=60.0)
    )
    assert invariants.check(history) == []


def test_an_at_most_once_unit_on_two_machines_at_overlapping_samples() -> None:
    history = (
        healthy()
        .active("m3", 5.0, [ONCE], [])  # m1 still had it at 5.0 and later
        .tick("m1", 5.5)
        .active("m1", 5.6, [], [ONCE])
        .end(healed=0.0, t=60.0)
    )
    found = [v for v in invariants.check(history) if v.invariant == "at-most-once-twice"]
    assert [v.unit for v in found] == [ONCE]
    assert "m1" in found[0].details and "m3" in found[0].details


def test_a_move_seen_between_two_samples_is_not_twice() -> None:
    # m1 last saw it at 5.0; m3 first saw it at 5.05: no sample saw both.
    history = (
        healthy()
        .tick("m1", 5.0)
        .active("m3", 5.05, [ONCE], [])
        .active("m1", 5.1, [], [ONCE])
        .add({"kind": "schedule", "t": 4.9, "unit": ONCE, "machine": "m3", "op": "put"})
        .end(healed=0.0, t=60.0)
    )
    assert "at-most-once-twice" not in kinds(history)


def test_a_launched_unit_not_active_after_the_faults() -> None:
    history = healthy().tick("m2", 3.0).active("m2", 3.1, [], [PLAIN]).end(healed=2.0, t=60.0)
    found = [v for v in invariants.check(history) if v.invariant == "not-active-once"]
    assert [(v.unit, v.details) for v in found] == [(PLAIN, "at the end: not active")]


def test_a_unit_active_twice_or_not_launched_at_the_end() -> None:
    history = (
        healthy()
        .active("m3", 3.0, [PLAIN], [])
        .end(healed=2.0, t=60.0, registry={ONCE: (H1, "inactive"), PLAIN: (H1, "launched")})
    )
    found = {
        v.unit: v.details for v in invariants.check(history) if v.invariant == "not-active-once"
    }
    assert "['m2', 'm3']" in found[PLAIN]
    assert "not launched" in found[ONCE]


def test_settling_later_than_30s_after_the_last_fault() -> None:
    history = (
        Build()
        .active("m1", 1.0, [ONCE], [])
        .fault("poweroff", ["m2"], 5.0, 10.0)
        .active("m2", 45.0, [PLAIN], [])
        .end(healed=10.0, t=60.0)
    )
    found = [v for v in invariants.check(history) if v.invariant == "not-active-once"]
    assert len(found) == 1 and "35.0s after the last fault" in found[0].details


def test_a_unit_restarted_on_a_healthy_machine() -> None:
    history = (
        healthy()
        .pids("m2", 1.0, 2.0, {PLAIN: 200})
        .fault("kill-fleetd", ["m2"], 9.0, 10.0)  # its machine stayed healthy
        .pids("m2", 10.0, 11.0, {PLAIN: 201})
        .end(healed=10.0, t=60.0)
    )
    found = [v for v in invariants.check(history) if v.invariant == "restarted"]
    assert [v.unit for v in found] == [PLAIN]
    assert "MainPID 200 -> 201" in found[0].details


def test_a_unit_stopped_and_started_again_on_a_healthy_machine() -> None:
    history = (
        healthy()
        .tick("m2", 5.0)
        .active("m2", 5.1, [], [PLAIN])
        .active("m2", 6.0, [PLAIN], [])
        .end(healed=0.0, t=60.0)
    )
    found = [v for v in invariants.check(history) if v.invariant == "restarted"]
    assert [v.unit for v in found] == [PLAIN]
    assert "inactive from 5.00 to 6.00" in found[0].details


def test_restarts_allowed_after_a_schedule_change_or_a_fault_of_its_machine() -> None:
    moved = (
        healthy()
        .pids("m2", 1.0, 2.0, {PLAIN: 200})
        .add({"kind": "schedule", "t": 5.0, "unit": PLAIN, "machine": "m2", "op": "put"})
        .pids("m2", 10.0, 11.0, {PLAIN: 201})
        .end(healed=0.0, t=60.0)
    )
    assert "restarted" not in kinds(moved)
    powered_off = (
        healthy()
        .pids("m2", 1.0, 2.0, {PLAIN: 200})
        .fault("poweroff", ["m2"], 5.0, 8.0)
        .pids("m2", 10.0, 11.0, {PLAIN: 201})
        .end(healed=8.0, t=60.0)
    )
    assert "restarted" not in kinds(powered_off)


def test_at_most_once_units_may_restart_after_an_etcd_fault_plain_ones_may_not() -> None:
    history = (
        healthy()
        .pids("m1", 1.0, 2.0, {ONCE: 100})
        .pids("m2", 1.0, 2.0, {PLAIN: 200})
        .fault("partition-etcd-all", ["m1", "m2", "m3"], 5.0, 40.0)
        .pids("m1", 41.0, 42.0, {ONCE: 101})
        .pids("m2", 41.0, 42.0, {PLAIN: 201})
        .end(healed=40.0, t=60.0)
    )
    found = [v for v in invariants.check(history) if v.invariant == "restarted"]
    assert [v.unit for v in found] == [PLAIN]


def test_an_etcd_member_s_fault_excuses_at_most_once_restarts_on_every_machine() -> None:
    # m3's member cut off: an etcd election, during which m1's agent renews nothing
    # either, so m1's AtMostOnce unit may be fenced; m2's plain unit must not restart.
    history = (
        healthy()
        .pids("m1", 1.0, 2.0, {ONCE: 100})
        .pids("m2", 1.0, 2.0, {PLAIN: 200})
        .fault("partition-etcd-member", ["m3"], 5.0, 12.0)
        .pids("m1", 10.0, 11.0, {ONCE: 101})
        .pids("m2", 10.0, 11.0, {PLAIN: 201})
        .end(healed=12.0, t=60.0)
    )
    found = [v for v in invariants.check(history) if v.invariant == "restarted"]
    assert [v.unit for v in found] == [PLAIN]


def test_a_created_unit_lost_or_changed_in_the_registry() -> None:
    lost = healthy().end(healed=0.0, t=60.0, registry={ONCE: (H1, "launched")})
    assert ("unit-file-lost", PLAIN) in [(v.invariant, v.unit) for v in invariants.check(lost)]
    changed = healthy().end(
        healed=0.0, t=60.0, registry={ONCE: (H2, "launched"), PLAIN: (H1, "launched")}
    )
    found = [v for v in invariants.check(changed) if v.invariant == "unit-file-changed"]
    assert [v.unit for v in found] == [ONCE]


def test_systemd_running_another_file_than_the_one_written() -> None:
    history = healthy().add(
        {"kind": "systemd", "t": 60.0, "machine": "m2", "descriptions": {PLAIN: "something else"}}
    )
    found = [
        v for v in invariants.check(history.end(0.0, 60.0)) if v.invariant == "unit-file-changed"
    ]
    assert [v.unit for v in found] == [PLAIN]


def test_a_destroy_answered_ok_that_did_not_happen() -> None:
    history = healthy().add(Build.write("destroy", PLAIN, 5.0)).end(healed=0.0, t=60.0)
    found = [(v.invariant, v.unit) for v in invariants.check(history)]
    assert ("write-lost", PLAIN) in found


def test_writes_without_a_success_answer_may_go_either_way() -> None:
    new = "chaos-burst-0001.service"
    history = (
        healthy()
        .add(Build.write("create", new, 5.0, outcome="unknown"))
        .add(Build.write("destroy", PLAIN, 5.0, outcome="unknown"))
        .tick("m2", 6.0)
        .active("m2", 6.1, [], [PLAIN])
        .add({"kind": "schedule", "t": 5.5, "unit": PLAIN, "machine": "m2", "op": "delete"})
        .end(healed=0.0, t=60.0, registry={ONCE: (H1, "launched")})
    )
    assert invariants.check(history) == []


def test_the_history_file_round_trips(tmp_path: Path) -> None:
    records = healthy().end(healed=0.0, t=60.0).records
    path = tmp_path / "history.jsonl"
    with path.open("w") as out:
        dump(records, out)
    assert load(path) == records
