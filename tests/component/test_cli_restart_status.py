"""fleetctl restart (one unit at a time, stop at the first failure, --no-block really
restarts) and fleetctl status (systemctl's exit code), against the in-process cluster."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from clikit import ServerThread
from clirun import (
    SERVICE,
    Result,
    history,
    revision,
    runner,
    serving,
    unit_files,
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    with serving(tmp_path) as thread:
        yield thread


@pytest.fixture
def run(
    server: ServerThread,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., Result]:
    return runner(server, unit_files(tmp_path), capsys, monkeypatch)


def _units(events: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
    return [(name, value) for kind, name, value in events if kind == "unit"]


def test_restart_one_unit_at_a_time_and_stop_at_the_first_failure(
    run, server: ServerThread
) -> None:  # type: ignore[no-untyped-def]
    r = run("start", "--block-attempts", "50", "a.service", "bad.service", "c.service")
    assert r.code == 1 and "Unit bad.service failed" in r.stderr
    since = server.call(revision(server))
    r = run("restart", "--block-attempts", "50", "a", "bad", "c")
    assert r.code == 1, r
    assert r.stdout.startswith("Unit a.service restarted on m")
    assert r.stderr.startswith("Unit bad.service failed on m")
    assert "c.service" in r.stderr and "first failure" in r.stderr
    events = server.call(history(server, since))
    assert _units(events) == [
        ("a.service", "loaded"),
        ("a.service", "launched"),
        ("bad.service", "loaded"),
        ("bad.service", "launched"),
    ]
    # a's start is asked for only once its machine reported it stopped
    a = [e for e in events if e[1] == "a.service"]
    assert a.index(("state", "a.service", "inactive")) < a.index(("unit", "a.service", "launched"))


def test_restart_no_block_waits_for_the_stop_before_the_start(run, server: ServerThread) -> None:  # type: ignore[no-untyped-def]
    assert run("start", "--block-attempts", "50", "a.service", "c.service").code == 0
    since = server.call(revision(server))
    r = run("restart", "--no-block", "a", "c")
    assert r.code == 0, r
    assert r.stdout.splitlines() == [
        "Triggered unit a.service start",
        "Triggered unit c.service start",
    ]
    events = server.call(history(server, since))
    for name in ("a.service", "c.service"):
        mine = [e for e in events if e[1] == name]
        stopped = mine.index(("state", name, "inactive"))
        assert stopped < mine.index(("unit", name, "launched")), mine
    assert _units(events) == [
        ("a.service", "loaded"),
        ("a.service", "launched"),
        ("c.service", "loaded"),
        ("c.service", "launched"),
    ]


def test_restart_of_a_unit_not_loaded_changes_nothing(run, server: ServerThread) -> None:  # type: ignore[no-untyped-def]
    assert run("start", "--block-attempts", "50", "a.service").code == 0
    assert run("submit", "c.service").code == 0
    since = server.call(revision(server))
    r = run("restart", "a", "c")
    assert r.code == 1 and "c.service" in r.stderr and "not loaded" in r.stderr
    assert _units(server.call(history(server, since))) == []


def test_status_exits_with_systemctls_code(run, server: ServerThread) -> None:  # type: ignore[no-untyped-def]
    # on m1, whose status comes from the fake systemctl of clirun.inspector
    pinned = SERVICE + "\n[X-Fleet]\nMachineMetadata=role=m1\n"
    for name in ("a", "down", "gone"):
        Path(f"{name}.service").write_text(pinned)
    r = run("start", "--block-attempts", "50", "a.service", "down.service", "gone.service")
    assert r.code == 0, r
    r = run("status", "a.service")
    assert r.code == 0 and r.stdout.startswith("* a.service")
    r = run("status", "down.service")
    assert r.code == 3 and r.stdout.startswith("* down.service")
    r = run("status", "gone.service")
    assert r.code == 4
    # in order, up to the first failure (as fleet)
    r = run("status", "a", "down", "gone")
    assert r.code == 3
    assert "* a.service" in r.stdout and "* down.service" in r.stdout
    assert "gone.service" not in r.stdout
    r = run("-o", "json", "status", "a", "down")
    assert r.code == 3
    assert [(s["name"], s["exitCode"]) for s in json.loads(r.stdout)] == [
        ("a.service", 0),
        ("down.service", 3),
    ]
