"""What a chaos run saw, as records: one JSON object a line in the history file.

Every record has ``t`` (host ``CLOCK_MONOTONIC`` seconds; sandbox machines share
it) and ``kind``:

- ``meta``: the run's parameters (seed, duration, TTL, machines, the units' kinds);
- ``write``: a client write and its answer: ``op`` ``create`` (with the file's
  ``hash`` and ``description``) or ``destroy``, ``outcome`` ``ok``, ``fail`` (a
  definite refusal) or ``unknown`` (no answer: it may or may not have happened);
- ``fault``: a fault's ``phase`` ``start`` or ``end``, its ``fault`` kind,
  ``machines`` it hit and ``details``;
- ``active``: a machine's sample that differs from its previous one: units
  ``added`` and ``removed``, and ``prev``, the time of that previous sample (the
  last one at which the removed units were still seen active);
- ``pids``: a machine's ``MainPID`` of each active unit whose PID changed;
- ``schedule``: a unit's schedule entry written (``machine`` its id) or deleted
  (``machine`` null), as a watch on etcd delivered it;
- ``registry``: the units in etcd at the end (name -> hash, desired state);
- ``systemd``: each machine's ``Description`` of its active units at the end;
- ``settle``: when the last fault was undone (``healed``) and the sampling ended;
- ``violation``: an invariant broken (written by the checkers, at the end).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

Record = dict[str, Any]


def dump(records: Iterable[Record], out: TextIO) -> None:
    for record in records:
        out.write(json.dumps(record, sort_keys=True) + "\n")


def load(path: Path) -> list[Record]:
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]


@dataclass(frozen=True, slots=True)
class Interval:
    """A unit seen active on a machine from the sample at ``start`` to that at ``end``."""

    machine: str
    start: float
    end: float


@dataclass
class History:
    """The records of one run, grouped for the checkers."""

    records: list[Record]
    meta: Record = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.meta = next((r for r in self.records if r["kind"] == "meta"), {})

    def of(self, kind: str) -> Iterator[Record]:
        return (r for r in self.records if r["kind"] == kind)

    @property
    def at_most_once(self) -> set[str]:
        return set(self.meta.get("at_most_once", ()))

    @property
    def ids(self) -> dict[str, str]:
        """machine id -> sandbox machine name."""
        return {mid: name for name, mid in self.meta.get("machines", {}).items()}

    def settle(self) -> Record:
        found = next(self.of("settle"), None)
        if found is None:
            raise ValueError("history has no settle record: the run did not finish")
        return found

    def intervals(self) -> dict[str, list[Interval]]:
        """unit -> every interval it was seen active, per machine, in order of start."""
        open_: dict[tuple[str, str], float] = {}
        found: dict[str, list[Interval]] = {}
        for r in sorted(self.of("active"), key=lambda r: r["t"]):
            machine = r["machine"]
            for unit in r.get("removed", ()):
                start = open_.pop((unit, machine), None)
                if start is not None:
                    found.setdefault(unit, []).append(Interval(machine, start, r["prev"]))
            for unit in r.get("added", ()):
                open_.setdefault((unit, machine), r["t"])
        end = max((r["t"] for r in self.records), default=0.0)
        for (unit, machine), start in open_.items():
            found.setdefault(unit, []).append(Interval(machine, start, end))
        for spans in found.values():
            spans.sort(key=lambda i: i.start)
        return found

    def active_at_changes(self, since: float) -> Iterator[tuple[float, dict[str, set[str]]]]:
        """(t, unit -> machines active) at ``since``, then after every ``active`` record
        from then on."""
        now: dict[str, set[str]] = {}

        def view() -> dict[str, set[str]]:
            return {u: set(m) for u, m in now.items() if m}

        started = False
        for r in sorted(self.of("active"), key=lambda r: r["t"]):
            if r["t"] >= since and not started:
                started = True
                yield since, view()
            for unit in r.get("removed", ()):
                now.get(unit, set()).discard(r["machine"])
            for unit in r.get("added", ()):
                now.setdefault(unit, set()).add(r["machine"])
            if started:
                yield r["t"], view()
        if not started:
            yield since, view()

    def schedule_changes(self) -> dict[str, list[float]]:
        """unit -> times its schedule entry was written or deleted."""
        found: dict[str, list[float]] = {}
        for r in self.of("schedule"):
            found.setdefault(r["unit"], []).append(r["t"])
        return found

    def fault_windows(self) -> list[tuple[str, frozenset[str], float, float]]:
        """(kind, machines, start, end) of every fault; one never ended lasts to the end."""
        starts: dict[int, Record] = {}
        windows = []
        for r in self.of("fault"):
            if r["phase"] == "start":
                starts[r["id"]] = r
            elif r["id"] in starts:
                s = starts.pop(r["id"])
                windows.append((s["fault"], frozenset(s["machines"]), s["t"], r["t"]))
        end = max((r["t"] for r in self.records), default=0.0)
        for s in starts.values():
            windows.append((s["fault"], frozenset(s["machines"]), s["t"], end))
        return sorted(windows, key=lambda w: w[2])
