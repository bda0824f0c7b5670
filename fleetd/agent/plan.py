"""The agent's pure reconciler: desired units + current units -> ordered tasks.

``plan(desired, current)`` compares what the machine's schedule asks for with
what the agent manages (files in ``units_directory`` as systemd sees them) and
returns the tasks that close the gap, each with a reason.

Task order is by kind, and every kind depends only on earlier kinds:

1. ``stop``   units that must stop (unscheduled, hash changed, launched -> loaded)
2. ``unload`` units no longer scheduled or whose hash changed (only after their stop)
3. ``load``   units scheduled but not loaded, or loaded with another hash
4. ``reload`` one systemd daemon-reload, only if a file systemd may hold in memory
   was removed or replaced (an unload, which a changed hash includes).  A
   unit new to this machine needs none: systemd (>= 246) notices new files in
   its unit directories when a unit it does not know is first referenced.
5. ``start``  units that should run and do not

Within one kind the tasks touch different units, so an executor may run them
concurrently; it must not begin a kind before the previous one succeeded.
A unit loaded and running with the scheduled hash yields no task at all
(adoption after an agent restart).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from fleetd.model import DesiredState


class TaskKind(StrEnum):
    STOP = "stop"
    UNLOAD = "unload"
    LOAD = "load"
    RELOAD = "reload"
    START = "start"


ORDER: tuple[TaskKind, ...] = (
    TaskKind.STOP,
    TaskKind.UNLOAD,
    TaskKind.LOAD,
    TaskKind.RELOAD,
    TaskKind.START,
)


@dataclass(frozen=True, slots=True)
class DesiredUnit:
    """One schedule entry of this machine: ``state`` is ``loaded`` or ``launched``."""

    name: str
    hash: str
    state: DesiredState


@dataclass(frozen=True, slots=True)
class CurrentUnit:
    """A unit the agent manages.

    ``hash`` is the hash of the file in ``units_directory``; ``loaded`` means
    the file is linked and systemd knows it; ``launched`` means the unit is
    running or was started by the agent for this hash (a unit that started
    and then failed stays launched: it is not restarted in a loop).
    """

    name: str
    hash: str
    loaded: bool
    launched: bool


@dataclass(frozen=True, slots=True)
class Task:
    kind: TaskKind
    unit: str  # empty for RELOAD
    reason: str
    hash: str = ""  # the hash to write, for LOAD

    def describe(self) -> str:
        """The log line of this action: ``verb unit=... reason=...``."""
        if self.kind is TaskKind.RELOAD:
            return f"reload reason={self.reason!r}"
        return f"{self.kind} unit={self.unit} reason={self.reason!r}"


def plan(desired: Iterable[DesiredUnit], current: Iterable[CurrentUnit]) -> list[Task]:
    """The ordered tasks that turn ``current`` into ``desired`` (see the module doc)."""
    want = {d.name: d for d in desired}
    have = {c.name: c for c in current}
    for d in want.values():
        if d.state is DesiredState.INACTIVE:
            raise ValueError(f"schedule entry {d.name} has desired state inactive")
    by_kind: dict[TaskKind, list[Task]] = {kind: [] for kind in ORDER}

    for name in sorted(have.keys() - want.keys()):
        if have[name].launched:
            by_kind[TaskKind.STOP].append(Task(TaskKind.STOP, name, "unit no longer scheduled"))
        by_kind[TaskKind.UNLOAD].append(Task(TaskKind.UNLOAD, name, "unit no longer scheduled"))

    for name in sorted(want):
        d = want[name]
        cur = have.get(name)
        launch = d.state is DesiredState.LAUNCHED
        if cur is not None and cur.hash != d.hash:
            why = f"hash changed {cur.hash[:7]} -> {d.hash[:7]}"
            if cur.launched:
                by_kind[TaskKind.STOP].append(Task(TaskKind.STOP, name, why))
            by_kind[TaskKind.UNLOAD].append(Task(TaskKind.UNLOAD, name, why))
            by_kind[TaskKind.LOAD].append(Task(TaskKind.LOAD, name, why, d.hash))
            if launch:
                by_kind[TaskKind.START].append(Task(TaskKind.START, name, why))
            continue
        if cur is None or not cur.loaded:
            why = "scheduled but not loaded"
            by_kind[TaskKind.LOAD].append(Task(TaskKind.LOAD, name, why, d.hash))
            if launch and (cur is None or not cur.launched):
                by_kind[TaskKind.START].append(Task(TaskKind.START, name, "scheduled launched"))
            continue
        if launch and not cur.launched:
            by_kind[TaskKind.START].append(Task(TaskKind.START, name, "desired launched"))
        elif not launch and cur.launched:
            by_kind[TaskKind.STOP].append(Task(TaskKind.STOP, name, "desired loaded"))

    if by_kind[TaskKind.UNLOAD]:
        n_load, n_unload = len(by_kind[TaskKind.LOAD]), len(by_kind[TaskKind.UNLOAD])
        by_kind[TaskKind.RELOAD].append(
            Task(TaskKind.RELOAD, "", f"{n_load} loaded, {n_unload} unloaded")
        )
    return [task for kind in ORDER for task in by_kind[kind]]


def phases(tasks: Iterable[Task]) -> list[tuple[TaskKind, list[Task]]]:
    """``tasks`` grouped by kind, in execution order, omitting empty kinds."""
    groups: dict[TaskKind, list[Task]] = {}
    for task in tasks:
        groups.setdefault(task.kind, []).append(task)
    return [(kind, groups[kind]) for kind in ORDER if kind in groups]
