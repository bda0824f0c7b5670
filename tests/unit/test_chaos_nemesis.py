"""The chaos run's plan of faults and its units (fleetd/testing/chaos/nemesis.py,
workload.py): the same seed gives the same plan, every kind of fault comes in every
round, and the units are of the kinds the run counts on."""

from __future__ import annotations

import collections

from fleetd.testing.chaos import nemesis, workload
from fleetd.testing.chaos.nemesis import FaultKind
from fleetd.unitfile import UnitFile

MACHINES = ("m1", "m2", "m3")


def test_the_same_seed_gives_the_same_plan_another_seed_another() -> None:
    a = nemesis.plan(42, 180, 10.0, MACHINES)
    assert a == nemesis.plan(42, 180, 10.0, MACHINES)
    assert a != nemesis.plan(43, 180, 10.0, MACHINES)


def test_every_kind_in_every_round_long_enough_and_bounded() -> None:
    steps = nemesis.plan(5, 600, 10.0, MACHINES)
    rounds = [steps[i : i + len(FaultKind)] for i in range(0, len(steps), len(FaultKind))]
    assert all({s.kind for s in r} == set(FaultKind) for r in rounds)
    assert sum(s.gap + s.hold for s in steps) >= 600
    for s in steps:
        assert nemesis.GAP[0] <= s.gap <= nemesis.GAP[1]
        assert 0 <= s.hold <= 2 * 10.0
        expected = {
            FaultKind.KILL_FLEETD: {"leader", "follower"},
            FaultKind.PAUSE_LEADER: {"leader"},
            FaultKind.PARTITION_ETCD_ALL: {"all"},
        }.get(s.kind, set(MACHINES))
        assert s.target in expected, s
    assert all(s.hold == 0 for s in steps if s.kind is FaultKind.KILL_FLEETD)


def test_units_of_every_kind_and_conflict_groups_of_three() -> None:
    units = workload.initial(300, 9)
    assert len({u.name for u in units}) == 300
    assert sum(u.at_most_once for u in units) == 30
    groups = collections.Counter(
        u.name.split("-")[1] for u in units if u.name.startswith("chaos-cg")
    )
    assert len(groups) == 10 and set(groups.values()) == {3}
    assert sum("HealthCheck=" in u.text for u in units) == 30
    for u in units:
        assert u.name.startswith(workload.PREFIX)
        assert u.description == f"chaos {u.name} s9"
        # What the registry keeps once the API has turned the options back into a file.
        assert u.hash == UnitFile.from_options(u.options).hash


def test_the_burst_creates_new_units_and_destroys_existing_ones() -> None:
    units = workload.initial(60, 1)
    new, gone = workload.burst(1, units, 10, 6)
    assert len(new) == 10 and not {u.name for u in new} & {u.name for u in units}
    assert len(gone) == 6 and set(gone) <= {u.name for u in units}
    assert workload.burst(1, units, 10, 6) == (new, gone)


def test_pauses_stay_within_the_lease_unless_long_pauses() -> None:
    def pauses(long_pauses: bool) -> list[float]:
        steps = nemesis.plan(3, 3000, 10.0, MACHINES, long_pauses=long_pauses)
        return [s.hold for s in steps if s.kind is FaultKind.PAUSE_LEADER]

    assert max(pauses(False)) <= nemesis.SHORT_PAUSE * 10.0
    assert max(pauses(True)) > 10.0  # some outlast the TTL
