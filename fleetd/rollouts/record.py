"""A rollout: one unit's change to a new version, rolled target by target (pure).

The record (``rollouts/<unit>``) holds everything about a rollout: what it
changes (versions and hashes), how (``Options``), where it stands
(``phase``, per-target progress) and what it waits for (``message``).  The
engine leader drives it from the record alone, so a new leader continues
where the previous one stopped.  Times are wall-clock seconds (the record
outlives the machine that wrote it).

Targets: the launched instances of a template (``web@1.service``), the
machines of a Global unit (which keep their hash through ``pins()`` until
moved), or the unit itself for a plain unit.  A target's
``current`` is the hash it has been assigned; it is *ready* when its
machine runs that hash, active and healthy, and *done* once it has been
ready for ``min_healthy_time`` without a break.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import StrEnum

DEFAULT_MIN_HEALTHY = 10.0
DEFAULT_DEADLINE = 300.0
MAX_SECONDS = 7 * 86400.0
MAX_COUNT = 100_000


class Phase(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    AWAITING_PROMOTION = "awaiting-promotion"
    REVERTING = "reverting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REVERTED = "reverted"
    ABORTED = "aborted"

    @property
    def active(self) -> bool:
        return self in _ACTIVE


_ACTIVE = frozenset({Phase.RUNNING, Phase.PAUSED, Phase.AWAITING_PROMOTION, Phase.REVERTING})


class Kind(StrEnum):
    """What the rolled unit is: its targets are instances, machines, or the unit itself."""

    TEMPLATE = "template"
    GLOBAL = "global"
    UNIT = "unit"


class State(StrEnum):
    """Where one target is: ``pending`` (not yet assigned the new hash), ``updating``
    (assigned, not yet ready), ``healthy`` (ready, for less than min_healthy_time),
    ``done``, ``failed`` (not done by the deadline), ``skipped`` (gone, or left alone)."""

    PENDING = "pending"
    UPDATING = "updating"
    HEALTHY = "healthy"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def in_flight(self) -> bool:
        return self in (State.UPDATING, State.HEALTHY)

    @property
    def settled(self) -> bool:
        return self in (State.DONE, State.SKIPPED)


@dataclass(frozen=True, slots=True)
class Options:
    """How a rollout proceeds (seconds for times).

    ``max_parallel``: targets in flight at once; ``canary``: targets updated before
    the rollout waits for a promotion (0: none); ``start_first``: a plain unit's new
    copy is started and healthy before the old one stops."""

    max_parallel: int = 1
    min_healthy_time: float = DEFAULT_MIN_HEALTHY
    healthy_deadline: float = DEFAULT_DEADLINE
    auto_revert: bool = False
    canary: int = 0
    start_first: bool = False

    def problems(self) -> list[str]:
        """What is wrong with these options (empty: nothing)."""
        found = []
        if self.max_parallel < 1:
            found.append(f"max-parallel must be at least 1, got {self.max_parallel}")
        if self.max_parallel > MAX_COUNT or self.canary > MAX_COUNT:
            found.append(f"max-parallel and canary are at most {MAX_COUNT}")
        for what, value in (
            ("min-healthy-time", self.min_healthy_time),
            ("healthy-deadline", self.healthy_deadline),
        ):
            if not math.isfinite(value) or value > MAX_SECONDS:
                found.append(f"{what} must be at most {MAX_SECONDS:g}s (a week), got {value:g}")
        if found:
            return found
        if self.min_healthy_time < 0:
            found.append(f"min-healthy-time cannot be negative, got {self.min_healthy_time:g}s")
        if self.healthy_deadline <= self.min_healthy_time:
            found.append(
                f"healthy-deadline ({self.healthy_deadline:g}s) must be longer than "
                f"min-healthy-time ({self.min_healthy_time:g}s)"
            )
        if self.canary < 0:
            found.append(f"canary cannot be negative, got {self.canary}")
        return found


@dataclass(frozen=True, slots=True)
class Target:
    """One target's progress.  ``old``: its hash before the rollout; ``current``: the
    hash it is assigned now; ``started``: when it was assigned the hash it moves to;
    ``since``: when it was first seen ready (healthy) or when it settled."""

    name: str
    old: str
    current: str
    state: State = State.PENDING
    started: float = 0.0
    since: float = 0.0
    message: str = ""


@dataclass(frozen=True, slots=True)
class Rollout:
    """The record of one rollout of ``unit`` (``rollouts/<unit>``).

    ``reverting``: the revert leg began (the targets then move back to their
    ``old`` hash; the phase may be ``reverting``, ``paused``, ``reverted`` or
    ``failed``).  ``failure``: why it failed (kept through the revert).
    ``revert_version``: the version the unit's own text was written back as.
    ``held``: with ``start_first``, where the plain unit's old copy runs (machine, hash)
    while its new copy starts elsewhere.
    """

    id: str
    unit: str
    kind: Kind
    from_version: int
    from_hash: str
    to_version: int
    to_hash: str
    options: Options = field(default_factory=Options)
    phase: Phase = Phase.RUNNING
    targets: tuple[Target, ...] = ()
    by: str = ""
    created: float = 0.0
    updated: float = 0.0
    message: str = ""
    failure: str = ""
    promoted: bool = False
    reverting: bool = False
    revert_version: int | None = None
    held: tuple[tuple[str, str], ...] = ()

    @property
    def active(self) -> bool:
        return self.phase.active

    @property
    def text_hash(self) -> str:
        """The hash the unit's own text has while this rollout runs (after a revert
        began: the old one again)."""
        return self.from_hash if self.reverting else self.to_hash

    def want(self, target: Target) -> str:
        """The hash ``target`` moves to in the current leg."""
        return target.old if self.reverting else self.to_hash

    def target(self, name: str) -> Target | None:
        return next((t for t in self.targets if t.name == name), None)

    def with_targets(self, targets: tuple[Target, ...]) -> Rollout:
        return replace(self, targets=targets)

    def pins(self) -> tuple[tuple[str, str], ...]:
        """The unit record's ``pinned`` machines this rollout needs now (sorted).

        A Global unit: the machines that keep another hash than the unit's text (skipped
        targets, whose machine left, get the text's hash if they come back).  A plain
        unit rolled start-first: where its old copy runs, while the new one is on its
        way (the engine then starts the new copy elsewhere and keeps the old one)."""
        if self.kind is Kind.GLOBAL:
            text = self.text_hash
            return tuple(
                sorted(
                    (t.name, t.current)
                    for t in self.targets
                    if t.current != text and t.state is not State.SKIPPED
                )
            )
        starting = self.options.start_first and self.active and not self.reverting
        if starting and any(t.state.in_flight for t in self.targets):
            return self.held
        return ()

    def counts(self) -> dict[State, int]:
        found = dict.fromkeys(State, 0)
        for target in self.targets:
            found[target.state] += 1
        return found
