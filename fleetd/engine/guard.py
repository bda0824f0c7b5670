"""The mass-loss guard (pure): whether the units of absent machines may move yet.

A machine whose registration vanished is *absent*; normally its units move at
once (a machine lost alone: within TTL of its death).  fleet's worst failures
were units stopped or moved because the control plane itself blinked; so the
engine does not believe an absence at once when it is more likely to be the
control plane's than the machines':

- **mass loss**: at least ``machines`` machines, and at least ``share`` of all
  (registered or absent), vanished within ``window`` seconds of each other:
  etcd, the network to it or a partition is more likely than that many machines
  dying together.  The absent machines get ``hold`` seconds (a TTL plus a grace)
  from the last of them to register again (those back already still count: the
  rest of a burst is not lost sooner because some came back);
- **new leader**: this engine became leader less than ``hold`` ago and a
  machine it never saw registered is absent: it may be re-registering after
  whatever took the old leader away (an etcd outage, a partition).  (A machine
  it saw vanish is lost as usual: its lease expired.)

While the guard holds, a unit on an absent machine stays scheduled there (it is
neither unscheduled nor placed elsewhere) and its reason says why (plan.py); when
it ends, the machines still absent are lost as usual.  Time is an input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class GuardSettings:
    """The guard's thresholds (cluster settings, docs/configuration.md)."""

    share: float = 0.3
    machines: int = 2
    window: float = 10.0
    hold: float = 15.0


class GuardCause(StrEnum):
    MASS_LOSS = "mass loss"
    NEW_LEADER = "new leader"


@dataclass(frozen=True, slots=True)
class Guard:
    """Units of absent machines stay where they are until ``until`` (engine clock)."""

    cause: GuardCause
    until: float
    reason: str


def decide(
    now: float,
    *,
    leading_since: float,
    departed: Mapping[str, float],
    unseen: int,
    machines: int,
    settings: GuardSettings,
) -> Guard | None:
    """The guard holding at ``now``, if any (the one that holds longest).

    ``departed``: machines seen vanish lately (absent, or back since) -> when;
    ``unseen``: absent machines this engine never saw registered; ``machines``: how
    many there are (registered or absent); ``leading_since``: when this engine became
    leader."""
    found: list[Guard] = []
    if unseen and now < leading_since + settings.hold:
        found.append(
            Guard(
                GuardCause.NEW_LEADER,
                leading_since + settings.hold,
                f"mass-loss guard: this engine became leader less than {settings.hold:g}s "
                "ago; waiting for absent machines to register again",
            )
        )
    burst = _burst(now, departed, machines, settings)
    if burst is not None:
        found.append(burst)
    return max(found, key=lambda g: g.until, default=None)


def _burst(now: float, departed: Mapping[str, float], total: int, s: GuardSettings) -> Guard | None:
    """The latest-ending mass loss still held at ``now`` (None: none)."""
    times = sorted(departed.values())
    best: Guard | None = None
    last = 0
    for first, start in enumerate(times):
        while last + 1 < len(times) and times[last + 1] - start <= s.window:
            last += 1
        count = last - first + 1
        until = times[last] + s.hold
        if count < s.machines or count < s.share * total or until <= now:
            continue
        if best is None or until > best.until:
            span = times[last] - start
            best = Guard(
                GuardCause.MASS_LOSS,
                until,
                f"mass-loss guard: {count} of {total} machines vanished within {span:.0f}s; "
                f"waiting {s.hold:g}s for them to register again",
            )
    return best
