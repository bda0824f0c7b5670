"""The scheduler's input and output values (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from fleetd.requirements import Requirements


@dataclass(frozen=True, slots=True)
class Job:
    """A unit that should run somewhere (desired state loaded or launched)."""

    name: str
    requirements: Requirements = field(default_factory=Requirements)


# NamedTuples rather than frozen dataclasses: a pass creates one per placement.
class Placed(NamedTuple):
    unit: str
    machine: str
    reason: str


class Removal(NamedTuple):
    unit: str
    machine: str
    reason: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one pass.

    ``assignments``: every job that is placed -> its machines (sorted; one
    unless Global).  ``placed``: placements that are new in this pass.
    ``removals``: current placements to drop, with why.  ``unplaceable``:
    unit -> per-machine reasons, one bounded message; ``rejections`` a bounded
    sample of (machine, reason) pairs behind it.  A unit that cannot leave a
    draining machine stays assigned there and is listed here too.

    ``handovers``: units that leave a machine start-first in this pass (unit -> that
    machine, whose removal is listed; engine/handover.py).  ``waiting``: units that
    would leave a machine but stay for now, with why (a disruption budget).
    ``refused``: move requests that cannot be met now, with why (the unit stays).
    """

    assignments: Mapping[str, tuple[str, ...]]
    placed: tuple[Placed, ...]
    removals: tuple[Removal, ...]
    unplaceable: Mapping[str, str]
    drained: int = 0  # units that leave draining machines stop-first in this pass
    rejections: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    handovers: Mapping[str, str] = field(default_factory=dict)
    waiting: Mapping[str, str] = field(default_factory=dict)
    refused: Mapping[str, str] = field(default_factory=dict)
