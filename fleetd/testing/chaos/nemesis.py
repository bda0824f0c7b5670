"""The nemesis's plan: which faults, in what order, for how long (pure, from a seed).

The kinds come in rounds, each round every kind once in a shuffled order, so even a
short run injects every kind.  Each step waits ``gap`` seconds of quiet, injects
its fault, holds it ``hold`` seconds and undoes it.  Targets are sandbox machine
names, or ``leader`` / ``follower``, which the run resolves when it injects the
fault (the plan does not know who leads).  The same seed gives the same plan.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass


class FaultKind(enum.StrEnum):
    KILL_FLEETD = "kill-fleetd"  # SIGKILL of fleetd (systemd restarts it)
    PAUSE_LEADER = "pause-leader"  # SIGSTOP of the leader's fleetd, SIGCONT at the end
    PARTITION = "partition"  # one machine off the network
    PARTITION_ETCD_ALL = "partition-etcd-all"  # every machine's processes from etcd
    PARTITION_ETCD_MEMBER = "partition-etcd-member"  # one etcd member from its peers
    POWEROFF = "poweroff"  # one machine powered off, booted at the end
    KILL_ETCD_MEMBER = "kill-etcd-member"  # one member SIGKILLed and kept down


# Longest hold of each kind, in agent TTLs (the shortest is a second or two).  A pause
# is short unless ``long_pauses``: a pause past the lease leaves the AtMostOnce units of
# the paused fleetd to systemd's fence (fencetimer.py; see benchmarks/README.md).
SHORT_PAUSE = 0.25
LONG_PAUSE = 1.5
_HOLD_TTLS = {
    FaultKind.KILL_FLEETD: 0.0,
    FaultKind.PAUSE_LEADER: SHORT_PAUSE,
    FaultKind.PARTITION: 2.0,
    FaultKind.PARTITION_ETCD_ALL: 2.0,
    FaultKind.PARTITION_ETCD_MEMBER: 1.5,
    FaultKind.POWEROFF: 1.5,
    FaultKind.KILL_ETCD_MEMBER: 1.5,
}
GAP = (2.0, 8.0)  # quiet before each fault, seconds


@dataclass(frozen=True, slots=True)
class Step:
    gap: float
    kind: FaultKind
    target: str  # a machine, "leader", "follower" or "all"
    hold: float


def _target(rng: random.Random, kind: FaultKind, machines: tuple[str, ...]) -> str:
    if kind is FaultKind.KILL_FLEETD:
        return rng.choice(("leader", "follower"))
    if kind is FaultKind.PAUSE_LEADER:
        return "leader"
    if kind is FaultKind.PARTITION_ETCD_ALL:
        return "all"
    return rng.choice(machines)


def plan(
    seed: int, duration: float, ttl: float, machines: tuple[str, ...], long_pauses: bool = False
) -> list[Step]:
    """Steps whose gaps and holds add up to at least ``duration`` seconds."""
    holds = _HOLD_TTLS | ({FaultKind.PAUSE_LEADER: LONG_PAUSE} if long_pauses else {})
    rng = random.Random(seed)
    steps: list[Step] = []
    total = 0.0
    while total < duration:
        kinds = list(FaultKind)
        rng.shuffle(kinds)
        for kind in kinds:
            gap = round(rng.uniform(*GAP), 2)
            longest = holds[kind] * ttl
            hold = round(rng.uniform(min(1.0, longest), longest), 2) if longest else 0.0
            steps.append(Step(gap, kind, _target(rng, kind, machines), hold))
            total += gap + hold
    return steps
