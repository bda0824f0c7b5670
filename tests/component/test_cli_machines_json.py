"""fleetctl cordon/uncordon/drain by hostname or id prefix, drain's wait and its
progress, and the JSON shape of every listing (documented in api/README.md)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from clikit import M1, M2, ServerThread
from clirun import Result, runner, serving, unit_files

from fleetd import model
from fleetd.cli import machines

M3 = "5e6f0000" + "1" * 24


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


def _add_machine(server: ServerThread, machine_id: str, hostname: str) -> None:
    async def add() -> None:
        lease = await server.store.registry.grant_lease(3600)
        await server.store.register_machine(
            model.Machine(machine_id, hostname, "10.0.0.3", (), model.Capacity(1000, 1 << 30), ""),
            lease,
        )

    server.call(add())


def _flags(server: ServerThread, machine: str) -> model.MachineFlags:
    return server.call(server.store.get_machine_flags(machine))


def test_machines_by_hostname_or_id_prefix(run, server: ServerThread) -> None:  # type: ignore[no-untyped-def]
    r = run("cordon", "m2")
    assert r.code == 0 and r.stdout.strip() == f"Machine {M2} cordoned"
    assert _flags(server, M2).unschedulable
    r = run("uncordon", "m2")
    assert r.code == 0 and not _flags(server, M2).unschedulable
    assert run("cordon", "5e6f").code == 0
    assert run("uncordon", M2).code == 0
    r = run("cordon", "m9")
    assert r.code == 1 and "m9" in r.stderr and "not found" in r.stderr


def test_an_ambiguous_name_lists_the_candidates(run, server: ServerThread) -> None:  # type: ignore[no-untyped-def]
    _add_machine(server, M3, "m2")
    for name in ("m2", "5e6f"):
        r = run("cordon", name)
        assert r.code == 1, r
        assert "ambiguous" in r.stderr
        assert f"{M2} (m2, 10.0.0.2)" in r.stderr and f"{M3} (m2, 10.0.0.3)" in r.stderr
    assert not _flags(server, M2).unschedulable and not _flags(server, M3).unschedulable
    assert run("cordon", "5e6f7").code == 0
    assert _flags(server, M2).unschedulable


def test_drain_waits_until_the_machine_holds_no_units(run, server: ServerThread) -> None:  # type: ignore[no-untyped-def]
    assert run("start", "--block-attempts", "50", "web.service").code == 0
    r = run("drain", "m2")
    assert r.code == 0, r
    assert r.stdout.strip() == f"Machine {M2} (m2, 10.0.0.2) drained: it holds no units"
    assert _flags(server, M2).draining
    # web.service is on m1 now, and cannot leave it while m2 drains: the wait runs out
    # and says what is left.
    r = run("drain", "--block-attempts", "3", "m1")
    assert r.code == 1
    assert "still holds web.service after 3 attempt(s)" in r.stderr
    # once m2 takes units again, m1's units move there and the drain ends
    assert run("uncordon", "m2").code == 0
    r = run("drain", "m1")
    assert r.code == 0, r
    assert r.stdout.strip() == f"Machine {M1} (m1, 10.0.0.1) drained: it holds no units"
    placed = server.call(server.store.list_all_schedule())
    assert [(e.machine, e.name) for e in placed] == [(M2, "web.service")]
    assert run("uncordon", "m1").code == 0
    r = run("drain", "--no-block", "m1")
    assert r.code == 0 and "draining" in r.stdout
    r = run("-o", "json", "drain", "--no-block", "m1")
    assert json.loads(r.stdout) == {
        "id": M1,
        "unschedulable": True,
        "draining": True,
        "drained": False,
    }


class _Progress:
    """Stands for the live status line fleetctl shows on a terminal."""

    def __init__(self, text: str) -> None:
        self.lines = [text]

    def update(self, text: str) -> None:
        self.lines.append(text)


def test_drain_shows_its_progress_on_a_terminal(
    run, server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    shown: list[_Progress] = []

    @contextlib.contextmanager
    def live(text: str) -> Iterator[_Progress]:
        shown.append(_Progress(text))
        yield shown[-1]

    monkeypatch.setattr(machines, "_live", live)
    assert run("start", "--block-attempts", "50", "web.service").code == 0
    placed = server.call(server.store.list_all_schedule())
    where, other = ("m1", "m2") if [e.machine for e in placed] == [M1] else ("m2", "m1")
    # web.service cannot leave: the other machine takes no new units
    assert run("cordon", other).code == 0
    r = run("drain", "--block-attempts", "2", where)
    assert r.code == 1, r
    assert [p.lines for p in shown] == [
        [f"draining {where}...", *[f"draining {where}: web.service still there"] * 2]
    ]
    shown.clear()
    assert run("drain", "--no-block", other).code == 0
    assert shown == []


UNIT_STATE_KEYS = {
    "name", "machineID", "machineIP", "hash", "desiredState", "systemdLoadState",
    "systemdActiveState", "systemdSubState", "health", "healthMessage", "healthSince",
    "reason",
}  # fmt: skip
UNIT_FILE_KEYS = {
    "name", "hash", "desiredState", "currentState", "machineID", "global", "description",
    "reason", "options",
}  # fmt: skip
MACHINE_KEYS = {
    "id", "hostname", "primaryIP", "metadata", "capacity", "allocated", "units",
    "unschedulable", "draining", "version", "systemdConnected",
}  # fmt: skip


def test_json_shapes(run, server: ServerThread, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    big = Path("big.service")
    big.write_text("[Service]\nExecStart=/bin/true\n\n[X-Fleet]\nMachineMetadata=role=none\n")
    run("start", "--block-attempts", "50", "web.service")
    run("start", "--block-attempts", "5", "big.service")
    run("submit", "a.service")

    rows = json.loads(run("-o", "json", "list-units").stdout)
    assert [set(r) for r in rows] == [UNIT_STATE_KEYS] * 2
    assert rows[0] == {
        "name": "big.service",
        "machineID": None,
        "machineIP": None,
        "hash": rows[0]["hash"],
        "desiredState": "launched",
        "systemdLoadState": None,
        "systemdActiveState": None,
        "systemdSubState": None,
        "health": None,
        "healthMessage": None,
        "healthSince": None,
        "reason": rows[0]["reason"],
    }
    assert "role=none" in rows[0]["reason"]
    assert rows[1]["name"] == "web.service" and rows[1]["machineID"] == M1
    assert rows[1]["machineIP"] == "10.0.0.1" and rows[1]["systemdActiveState"] == "active"
    assert rows[1]["reason"] is None

    rows = json.loads(run("list-unit-files", "--output=json").stdout)
    assert [r["name"] for r in rows] == ["a.service", "big.service", "web.service"]
    assert all(set(r) == UNIT_FILE_KEYS for r in rows)
    assert rows[2]["description"] == "Web server" and rows[2]["global"] is False
    assert rows[0]["machineID"] is None and rows[0]["reason"] is None

    rows = json.loads(run("list-machines", "-o", "json").stdout)
    assert [r["id"] for r in rows] == [M1, M2]
    assert all(set(r) == MACHINE_KEYS for r in rows)
    assert rows[0]["hostname"] == "m1" and rows[0]["units"] == 1
    assert rows[0]["capacity"] == {"cpuMillis": 2000, "memoryBytes": 4 << 30}

    cat = json.loads(run("-o", "json", "cat", "web.service").stdout)
    assert set(cat) == UNIT_FILE_KEYS

    Path("broken.service").write_text("[X-Fleet]\nAtMostOnce=maybe\n")
    Path("odd.service").write_text("[Service]\nExecStart=/bin/true\n[X-Fleet]\nBogus=1\n")
    r = run("-o", "json", "validate", "web.service", "broken.service", "odd.service")
    assert r.code == 1
    rows = json.loads(r.stdout)
    assert rows[0] == {
        "name": "web.service",
        "file": "web.service",
        "ok": True,
        "reason": None,
        "warnings": [],
    }
    assert rows[1]["name"] == "broken.service" and rows[1]["ok"] is False
    assert "AtMostOnce" in rows[1]["reason"] and rows[1]["warnings"] == []
    assert rows[2]["ok"] is True and rows[2]["reason"] is None
    assert any("Bogus" in w for w in rows[2]["warnings"])

    r = run("-o", "json", "stop", "--block-attempts", "50", "web.service")
    assert json.loads(r.stdout) == [
        {
            "name": "web.service",
            "ok": True,
            "message": "Unit web.service stopped on m1 (10.0.0.1)",
            "currentState": "loaded",
            "machineID": M1,
            "reason": None,
        }
    ]
