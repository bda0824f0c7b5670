"""The chaos run's invariants, checked on its history alone (pure: no I/O, no clock).

- ``at-most-once-twice``: an ``AtMostOnce`` unit seen active on two machines at
  overlapping samples (each machine's interval runs from the sample that first saw it
  to the last that did, so an overlap is certain, never an artefact of sampling);
- ``not-active-once``: after the last fault was undone, every unit the registry says is
  launched must be active on exactly one machine, and nothing else, within
  ``SETTLE_WITHIN`` seconds and still at the end;
- ``restarted``: a unit stopped and started again, or given a new ``MainPID``, on one
  machine, though its schedule entry did not change while it ran and no fault hit that
  machine then (a partition or a power-off; for ``AtMostOnce`` units, which are fenced
  when their machine loses etcd, any fault of etcd or of that machine's fleetd too: a
  fault of one etcd member may leave the whole cluster without an etcd leader, so it
  counts for every machine);
- ``unit-file-lost`` / ``unit-file-changed``: a unit created with a success answer and
  not destroyed is missing from the registry at the end, or its file (hash, desired
  state, or the ``Description`` systemd runs it with) differs from what was written;
- ``write-lost``: a destroy that was answered with success did not happen.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from fleetd.testing.chaos.history import History, Interval, Record

SETTLE_WITHIN = 30.0
# Faults after which a machine's units may restart (the machine itself was hit), and
# those after which its AtMostOnce units may (they lost etcd, or their agent did).
DISTURBS_ALL = frozenset({"partition", "poweroff"})
DISTURBS_AT_MOST_ONCE = DISTURBS_ALL | {
    "pause-leader",
    "kill-fleetd",
    "partition-etcd-all",
    "partition-etcd-member",
    "kill-etcd-member",
}
# Faults of one etcd member: an etcd election follows, during which no agent anywhere
# can renew its lease, so every machine's AtMostOnce units may be fenced.
CLUSTER_WIDE_FOR_AT_MOST_ONCE = frozenset({"partition-etcd-member", "kill-etcd-member"})


@dataclass(frozen=True, slots=True)
class Violation:
    invariant: str
    unit: str
    t: float
    details: str

    def record(self) -> Record:
        return {
            "kind": "violation",
            "t": self.t,
            "invariant": self.invariant,
            "unit": self.unit,
            "details": self.details,
        }


def check(history: History) -> list[Violation]:
    """Every invariant's violations, in the order above."""
    return [
        *at_most_once_twice(history),
        *active_once_after_faults(history),
        *restarted(history),
        *files_and_writes(history),
    ]


def at_most_once_twice(history: History) -> Iterator[Violation]:
    spans = history.intervals()
    for unit in sorted(history.at_most_once):
        for a, b in itertools.combinations(spans.get(unit, []), 2):
            if a.machine != b.machine and a.start <= b.end and b.start <= a.end:
                yield Violation(
                    "at-most-once-twice",
                    unit,
                    max(a.start, b.start),
                    f"active on {a.machine} {a.start:.2f}-{a.end:.2f} "
                    f"and on {b.machine} {b.start:.2f}-{b.end:.2f}",
                )


def _launched(history: History) -> set[str] | None:
    found = next(history.of("registry"), None)
    if found is None:
        return None
    return {name for name, u in found["units"].items() if u["desired"] == "launched"}


def _wrong(expected: set[str], now: dict[str, set[str]]) -> dict[str, str]:
    """unit -> what is wrong with it in ``now`` (unit -> machines active)."""
    wrong = {u: "not active" for u in expected if not now.get(u)}
    for unit, machines in now.items():
        if unit not in expected:
            wrong[unit] = f"active on {sorted(machines)} but not launched"
        elif len(machines) > 1:
            wrong[unit] = f"active on {sorted(machines)}"
    return wrong


def active_once_after_faults(
    history: History, within: float = SETTLE_WITHIN
) -> Iterator[Violation]:
    expected = _launched(history)
    settle = history.settle()
    if expected is None:
        yield Violation("not-active-once", "*", settle["t"], "the registry was not read")
        return
    healed = settle["healed"]
    first_ok, last, wrong = None, healed, {}
    for t, now in history.active_at_changes(healed):
        last, wrong = t, _wrong(expected, now)
        if not wrong and first_ok is None:
            first_ok = t
    if first_ok is not None and first_ok - healed > within:
        yield Violation(
            "not-active-once",
            "*",
            first_ok,
            f"every unit active exactly once only {first_ok - healed:.1f}s after the last "
            f"fault (limit {within:g}s)",
        )
    for unit, what in sorted(wrong.items()):
        yield Violation("not-active-once", unit, last, f"at the end: {what}")


def _disturbed(history: History, machine: str, kinds: frozenset[str], t1: float, t2: float) -> bool:
    margin = 2 * float(history.meta.get("ttl", 10.0))
    return any(
        kind in kinds
        and (machine in machines or kind in CLUSTER_WIDE_FOR_AT_MOST_ONCE)
        and start <= t2
        and t1 <= end + margin
        for kind, machines, start, end in history.fault_windows()
    )


def _restarts(
    spans: list[Interval], pids: list[tuple[float, float, int]]
) -> Iterator[tuple[float, float, float, str]]:
    """(born, t1, t2, how) of every restart on one machine: a gap between two intervals,
    or a new MainPID within one (``pids``: (previous sample, this sample, pid))."""
    for a, b in itertools.pairwise(spans):
        yield a.start, a.end, b.start, f"inactive from {a.end:.2f} to {b.start:.2f}"
    last: int | None = None
    for prev, t, pid in pids:
        span = next((s for s in spans if s.start <= prev and t <= s.end), None)
        if span is not None and last not in (None, 0) and pid not in (0, last):
            yield span.start, prev, t, f"MainPID {last} -> {pid} between {prev:.2f} and {t:.2f}"
        last = pid


def restarted(history: History) -> Iterator[Violation]:
    changes = history.schedule_changes()
    pids: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
    for r in history.of("pids"):
        for unit, pid in r["pids"].items():
            pids.setdefault((unit, r["machine"]), []).append((r["prev"], r["t"], pid))
    for unit, spans in sorted(history.intervals().items()):
        kinds = DISTURBS_AT_MOST_ONCE if unit in history.at_most_once else DISTURBS_ALL
        for machine in sorted({s.machine for s in spans}):
            mine = [s for s in spans if s.machine == machine]
            for born, t1, t2, how in _restarts(mine, sorted(pids.get((unit, machine), []))):
                if any(born <= t <= t2 for t in changes.get(unit, ())):
                    continue
                if _disturbed(history, machine, kinds, t1, t2):
                    continue
                yield Violation(
                    "restarted",
                    unit,
                    t2,
                    f"on {machine}: {how}; schedule unchanged since {born:.2f}",
                )


def files_and_writes(history: History) -> Iterator[Violation]:
    registry = next(history.of("registry"), None)
    if registry is None:
        return  # reported by active_once_after_faults
    at, units = registry["t"], registry["units"]
    created: dict[str, Record] = {}
    destroyed: set[str] = set()
    maybe_destroyed: set[str] = set()
    descriptions: dict[str, set[str]] = {}
    for w in history.of("write"):
        if w["op"] == "create" and w["outcome"] != "fail":
            descriptions.setdefault(w["name"], set()).add(w["description"])
            if w["outcome"] == "ok":
                created[w["name"]] = w
        elif w["op"] == "destroy":
            (destroyed if w["outcome"] == "ok" else maybe_destroyed).add(w["name"])
    for name in sorted(destroyed & set(units)):
        yield Violation("write-lost", name, at, "destroyed with success, still in the registry")
    for name, w in sorted(created.items()):
        if name in destroyed or name in maybe_destroyed:
            continue
        found = units.get(name)
        if found is None:
            yield Violation("unit-file-lost", name, at, "created with success, not in the registry")
        elif found["hash"] != w["hash"] or found["desired"] != "launched":
            yield Violation(
                "unit-file-changed",
                name,
                at,
                f"written {w['hash'][:12]} launched, registry has "
                f"{found['hash'][:12]} {found['desired']}",
            )
    for r in history.of("systemd"):
        for name, description in sorted(r["descriptions"].items()):
            known = descriptions.get(name)
            if known is not None and description not in known:
                yield Violation(
                    "unit-file-changed",
                    name,
                    r["t"],
                    f"{r['machine']} runs it as {description!r}, written as {sorted(known)}",
                )
