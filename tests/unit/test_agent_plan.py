"""Table tests for the agent's pure reconciler (fleet's agent reconciler cases)."""

from __future__ import annotations

import pytest

from fleetd.agent.plan import CurrentUnit, DesiredUnit, Task, TaskKind, phases, plan
from fleetd.model import DesiredState

LOADED = DesiredState.LOADED
LAUNCHED = DesiredState.LAUNCHED


def want(name: str, state: DesiredState, hash_: str = "a" * 40) -> DesiredUnit:
    return DesiredUnit(name, hash_, state)


def have(
    name: str, *, loaded: bool = True, launched: bool = False, hash_: str = "a" * 40
) -> CurrentUnit:
    return CurrentUnit(name, hash_, loaded, launched)


def steps(tasks: list[Task]) -> list[tuple[str, str]]:
    return [(str(t.kind), t.unit) for t in tasks]


CASES: list[tuple[str, list[DesiredUnit], list[CurrentUnit], list[tuple[str, str]]]] = [
    ("nothing to do", [], [], []),
    (
        "scheduled loaded but not loaded: a new unit needs no reload",
        [want("a.service", LOADED)],
        [],
        [("load", "a.service")],
    ),
    (
        "inactive -> launched",
        [want("a.service", LAUNCHED)],
        [],
        [("load", "a.service"), ("start", "a.service")],
    ),
    (
        "loaded but not scheduled",
        [],
        [have("a.service")],
        [("unload", "a.service"), ("reload", "")],
    ),
    (
        "launched but not scheduled: stop before unload",
        [],
        [have("a.service", launched=True)],
        [("stop", "a.service"), ("unload", "a.service"), ("reload", "")],
    ),
    (
        "launched -> loaded",
        [want("a.service", LOADED)],
        [have("a.service", launched=True)],
        [("stop", "a.service")],
    ),
    (
        "loaded -> launched needs no reload",
        [want("a.service", LAUNCHED)],
        [have("a.service")],
        [("start", "a.service")],
    ),
    (
        "hash differs while launched: stop, unload, load, reload, start",
        [want("a.service", LAUNCHED, "b" * 40)],
        [have("a.service", launched=True)],
        [
            ("stop", "a.service"),
            ("unload", "a.service"),
            ("load", "a.service"),
            ("reload", ""),
            ("start", "a.service"),
        ],
    ),
    (
        "hash differs while loaded",
        [want("a.service", LOADED, "b" * 40)],
        [have("a.service")],
        [("unload", "a.service"), ("load", "a.service"), ("reload", "")],
    ),
    (
        "adoption: running with the same hash",
        [want("a.service", LAUNCHED), want("b.service", LOADED)],
        [have("a.service", launched=True), have("b.service")],
        [],
    ),
    (
        "file present but not linked: load again, keep running",
        [want("a.service", LAUNCHED)],
        [have("a.service", loaded=False, launched=True)],
        [("load", "a.service")],
    ),
    (
        "global units are ordinary schedule entries",
        [want("g.service", LAUNCHED), want("h@1.service", LAUNCHED)],
        [have("g.service", launched=True)],
        [("load", "h@1.service"), ("start", "h@1.service")],
    ),
    (
        "ordering across units: all stops, unloads, loads, one reload, starts",
        [want("new.service", LAUNCHED), want("down.service", LOADED)],
        [have("old.service", launched=True), have("down.service", launched=True)],
        [
            ("stop", "old.service"),
            ("stop", "down.service"),
            ("unload", "old.service"),
            ("load", "new.service"),
            ("reload", ""),
            ("start", "new.service"),
        ],
    ),
]


@pytest.mark.parametrize(
    ("desired", "current", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_plan_table(
    desired: list[DesiredUnit], current: list[CurrentUnit], expected: list[tuple[str, str]]
) -> None:
    assert steps(plan(desired, current)) == expected


def test_exactly_one_reload_per_batch() -> None:
    desired = [want(f"u{i}.service", LAUNCHED) for i in range(50)]
    current = [have(f"old{i}.service") for i in range(20)]
    tasks = plan(desired, current)
    assert [t.kind for t in tasks].count(TaskKind.RELOAD) == 1
    kinds = [kind for kind, _ in phases(tasks)]
    assert kinds == [TaskKind.UNLOAD, TaskKind.LOAD, TaskKind.RELOAD, TaskKind.START]


def test_no_reload_for_new_units_only() -> None:
    tasks = plan([want(f"u{i}.service", LAUNCHED) for i in range(5)], [])
    assert TaskKind.RELOAD not in [t.kind for t in tasks]


def test_reload_only_when_files_change() -> None:
    tasks = plan(
        [want("a.service", LAUNCHED), want("b.service", LOADED)],
        [have("a.service"), have("b.service", launched=True)],
    )
    assert TaskKind.RELOAD not in [t.kind for t in tasks]
    assert steps(tasks) == [("stop", "b.service"), ("start", "a.service")]


def test_load_carries_the_scheduled_hash_and_reasons() -> None:
    tasks = plan([want("a.service", LAUNCHED, "c" * 40)], [have("a.service", launched=True)])
    load = next(t for t in tasks if t.kind is TaskKind.LOAD)
    assert load.hash == "c" * 40
    assert all(t.reason for t in tasks)
    assert "hash changed aaaaaaa -> ccccccc" in tasks[0].reason
    assert tasks[0].describe() == "stop unit=a.service reason='hash changed aaaaaaa -> ccccccc'"


def test_inactive_schedule_entry_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"a\.service has desired state inactive"):
        plan([want("a.service", DesiredState.INACTIVE)], [])
