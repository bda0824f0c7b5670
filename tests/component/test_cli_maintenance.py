"""``fleetctl reboot`` against the in-process cluster: the real engine's maintenance driver
reboots the fake machines (fleetd/testing/hostactions.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from clikit import M1, M2, ServerThread
from clirun import fleetctl, serving

from fleetd.maintenance.store import MaintenanceStore

SERVICE = "[Unit]\nDescription=App %i\n\n[Service]\nExecStart=/bin/sleep 1000\n"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    with serving(tmp_path, inspected=False, page_size=100) as thread:
        yield thread


@pytest.fixture
def env(
    server: ServerThread,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """Three instances of app@.service running."""
    env = {"FLEETCTL_ENDPOINT": server.endpoint}
    template = tmp_path / "app@.service"
    template.write_text(SERVICE)
    assert fleetctl(capsys, monkeypatch, ["submit", str(template)], env).code == 0
    r = fleetctl(capsys, monkeypatch, ["start", "app@1", "app@2", "app@3"], env)
    assert r.code == 0, r
    return env


def boots(server: ServerThread) -> list[int]:
    return [server.cluster.nodes[m].boots for m in (M1, M2)]


def test_reboot_all_follows_the_maintenance_to_its_end(
    server: ServerThread,
    env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    r = fleetctl(capsys, monkeypatch, ["reboot", "--all"], env)
    assert r.code == 0, r
    assert "started: reboot of m1, m2, 1 at a time" in r.stderr
    assert "m1: draining" in r.stderr and "m2: acting: reboot" in r.stderr
    assert "done: reboot of m1, m2" in r.stdout
    assert boots(server) == [2, 2]
    r = fleetctl(capsys, monkeypatch, ["reboot", "--status"], env)
    assert r.code == 0, r
    assert r.stdout.startswith("Maintenance maintenance-") and ": done" in r.stdout.splitlines()[0]
    assert "MACHINE" in r.stdout and "m1" in r.stdout and "m2" in r.stdout
    r = fleetctl(capsys, monkeypatch, ["-o", "json", "reboot", "--status"], env)
    record = json.loads(r.stdout)
    assert record["phase"] == "done" and [m["phase"] for m in record["machines"]] == ["done"] * 2


def test_a_failing_command_exits_1_naming_the_machine_and_why(
    server: ServerThread,
    env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    r = fleetctl(capsys, monkeypatch, ["reboot", "--command", "/bin/false --now", "m2", "m1"], env)
    assert r.code == 1, r
    assert "failed: m2: command /bin/false --now exited with status 1" in r.stderr
    assert boots(server) == [1, 1]
    assert server.cluster.nodes[M1].actions.commands == []  # stopped after m2
    flags = server.call(server.store.list_machine_flags())
    assert flags[M2].draining and M1 not in flags


def test_bad_input_is_refused_and_changes_nothing(
    server: ServerThread,
    env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cases = [
        ([], "exactly one of them"),
        (["--status", "m1"], "exactly one of them"),
        (["--all", "m1"], "not both"),
        (["--max-unavailable", "0", "m1"], "--max-unavailable must be at least 1"),
        (["nope"], "machine 'nope' not found"),
        (["m1", "m1"], "named more than once"),
        (["--command", "", "m1"], "--command is empty"),
        (["--command", "'unclosed", "m1"], "No closing quotation"),
        (["--request", "nope"], "machine 'nope' not found"),
        (["--cancel", "m1"], "exactly one of them"),
        (["--cancel"], "no maintenance was ever started: nothing to cancel"),
    ]
    for args, text in cases:
        r = fleetctl(capsys, monkeypatch, ["reboot", *args], env)
        assert r.code == 1, (args, r)
        assert text in r.stderr, (args, r.stderr)
    records = MaintenanceStore(server.store)
    assert server.call(records.get()) is None
    assert server.call(records.list_requests()) == {}
    assert server.call(server.store.list_machine_flags()) == {}
    r = fleetctl(capsys, monkeypatch, ["reboot", "--status"], env)
    assert r.code == 1 and "no maintenance was ever started" in r.stderr
    # A second maintenance while one runs: refused, the first one goes on.
    r = fleetctl(capsys, monkeypatch, ["reboot", "--no-block", "m1"], env)
    assert r.code == 0, r
    first = server.call(records.get())
    assert first is not None
    r = fleetctl(capsys, monkeypatch, ["reboot", "--no-block", "m2"], env)
    assert r.code == 1 and f"maintenance {first[0].id}" in r.stderr and "one at a time" in r.stderr
    found = server.call(records.get())
    assert found is not None and found[0].id == first[0].id


def test_request_asks_for_a_reboot_that_is_served(
    server: ServerThread,
    env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    r = fleetctl(capsys, monkeypatch, ["reboot", "--request", "m2"], env)
    assert r.code == 0, r
    assert f"Machine {M2} (m2, 10.0.0.2) asked for a reboot (asked by unix socket)" in r.stdout
    server.call(server.cluster.wait_for(lambda: boots(server) == [1, 2], "m2 rebooted", within=20))


def test_cancel_stops_the_maintenance_after_the_machine_under_way(
    server: ServerThread,
    env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hold = server.cluster.nodes[M1].actions.hold = asyncio.Event()
    r = fleetctl(capsys, monkeypatch, ["reboot", "--no-block", "m1", "m2"], env)
    assert r.code == 0, r
    nodes = server.cluster.nodes
    server.call(server.cluster.wait_for(lambda: nodes[M1].actions.reboots == 1, "m1 rebooting"))

    async def cancelled() -> bool:
        found = await records.get()
        return found is not None and bool(found[0].cancelled)

    async def release() -> None:  # m1 comes back once the cancel is in, while fleetctl follows
        await server.cluster.wait_for(cancelled, "the cancel is in", within=30)
        hold.set()

    records = MaintenanceStore(server.store)
    released = asyncio.run_coroutine_threadsafe(release(), server.loop)
    r = fleetctl(capsys, monkeypatch, ["reboot", "--cancel"], env)
    assert r.code == 0, r
    assert "cancelled; the machines under way finish their step" in r.stderr
    assert "cancelled by unix socket: reboot of m1 done, the others not started" in r.stdout
    released.result(timeout=5)
    assert boots(server) == [2, 1]
    assert server.call(server.store.list_machine_flags()) == {}
    r = fleetctl(capsys, monkeypatch, ["reboot", "--status"], env)
    assert ": cancelled" in r.stdout.splitlines()[0] and "cancelled by unix socket" in r.stdout
    r = fleetctl(capsys, monkeypatch, ["reboot", "--cancel"], env)
    assert r.code == 1 and "is cancelled: nothing runs to cancel" in r.stderr
