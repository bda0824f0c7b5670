"""What changed in the engine's model since the engine last looked (mutable).

Every change that matters to planning is written to one ``ChangeLog``, by
the model method that makes it, as one of six things:

- a unit whose spec changed or vanished, or that may be placed again (an
  AtMostOnce unit seen stopped): a scoped pass plans it;
- a machine that left: a scoped pass moves its units;
- a machine that joined or changed (metadata, capacity, systemd link,
  cordon, drain, metadata overrides), or where a placed unit's requirements
  changed: a scoped pass checks its units again and offers it to units
  waiting for a machine;
- a machine where the engine's own writes took a unit off (room freed there,
  possibly after a waiting unit's turn in the pass that wrote it): a scoped
  pass offers it to the units waiting for room (and Global units missing there);
- a machine whose slot may be out of date (its load, capacity, metadata or
  flags changed, or it left): the kept slots bring it up to date;
- something a scoped pass does not handle, with why (``FullReason``):
  another process wrote to the schedule, a prefix was re-read, a pass
  failed, the cluster settings changed.  The next pass is then a full one, and says why.

Two readers take from it at different moments: each pass (``take``: what
to plan, or why to plan everything) and the upkeep of the kept slots
(``take_slots``, at the start of a scoped pass and after a full pass).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Cause(StrEnum):
    """Why a pass plans everything: a small fixed set (fit for a metric label)."""

    LOADED = "loaded"  # the model was read: a new leader's first pass, a mirror re-read
    FOREIGN_WRITE = "foreign write"  # another process wrote a schedule entry or reason
    FAILED = "failed pass"  # the last pass did not write everything it decided
    NOT_SCOPED = "not scoped"  # a change a scoped pass leaves to a full one
    TIMER = "timer"  # a held AtMostOnce unit, a drain batch or a stopping unit is due
    SAFETY = "safety"  # the periodic safety pass
    REQUESTED = "requested"  # a caller asked for one
    SETTINGS = "settings"  # the cluster settings changed (strategy, the guard's thresholds)


@dataclass(frozen=True, slots=True)
class FullReason:
    """Why a pass plans everything: the cause, and what exactly (names included)."""

    cause: Cause
    detail: str

    def __str__(self) -> str:
        return f"{self.cause}: {self.detail}"


@dataclass(frozen=True, slots=True)
class Change:
    """What a scoped pass reacts to: units whose spec changed (or vanished, or that may
    be placed again), machines that left, machines whose units are checked again
    (joined or changed, or a placed unit's requirements changed there), and machines
    where room was freed (offered to the units waiting for room)."""

    units: frozenset[str] = frozenset()
    gone: frozenset[str] = frozenset()
    machines: frozenset[str] = frozenset()
    freed: frozenset[str] = frozenset()


class ChangeLog:
    """The model's changes since each reader last took them.

    A new log asks for a full pass ("loaded: first pass"): there is nothing to
    compare the model with yet.
    """

    def __init__(self) -> None:
        self._units: set[str] = set()
        self._gone: set[str] = set()
        self._machines: set[str] = set()
        self._freed: set[str] = set()
        self._slots: set[str] = set()
        self._full: FullReason | None = FullReason(Cause.LOADED, "first pass")

    def unit(self, name: str) -> None:
        """``name``'s spec changed or vanished, or it may be placed again."""
        self._units.add(name)

    def left(self, machine: str) -> None:
        """``machine`` left: its units move, its slot goes."""
        self._gone.add(machine)
        self._slots.add(machine)

    def machine(self, machine: str) -> None:
        """``machine`` joined or changed: its units are checked again, its slot updated."""
        self._machines.add(machine)
        self._slots.add(machine)

    def units_changed_on(self, machines: Iterable[str]) -> None:
        """A placed unit's requirements changed on ``machines``: the units there are
        checked again (room, conflicts), and units waiting may take what it left."""
        self._machines.update(machines)
        self._slots.update(machines)

    def freed(self, machines: Iterable[str]) -> None:
        """Units were taken off ``machines`` (the engine's own writes): units waiting for
        room may take it."""
        self._freed.update(machines)

    def slot(self, machine: str) -> None:
        """The slot of ``machine`` may be out of date (load, capacity, metadata, flags)."""
        self._slots.add(machine)

    def slots(self, machines: Iterable[str]) -> None:
        """``slot`` for each of ``machines``."""
        self._slots.update(machines)

    def full(self, cause: Cause, detail: str) -> None:
        """The next pass must plan everything; the first reason since the last pass wins."""
        if self._full is None:
            self._full = FullReason(cause, detail)

    @property
    def pending(self) -> FullReason | None:
        """Why the next pass will be full, if it will be."""
        return self._full

    def take(self) -> Change | FullReason:
        """What changed since the last call, or why the pass must be full; resets both."""
        found = self._full or Change(
            frozenset(self._units),
            frozenset(self._gone),
            frozenset(self._machines),
            frozenset(self._freed),
        )
        self._units.clear()
        self._gone.clear()
        self._machines.clear()
        self._freed.clear()
        self._full = None
        return found

    def take_slots(self) -> set[str]:
        """Machines whose kept slot may be out of date since the last call; resets it."""
        found, self._slots = self._slots, set()
        return found
