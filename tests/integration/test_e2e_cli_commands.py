"""fleetctl status, restart and drain on real systemd machines: status exits with
systemctl's code, restart really restarts (one unit at a time; --no-block too), and
drain (by hostname) waits until the machine holds no units."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cluster_helpers import fleetctl, unit_properties, where_active

from fleetd.sandbox.cluster import Sandbox

pytestmark = pytest.mark.integration
WaitFor = Callable[[Callable[[], object], float, str], object]
SERVICE = "[Unit]\nDescription=fleetctl commands\n\n[Service]\nExecStart=/bin/sleep 100000\n"
TIMES = ["ActiveEnterTimestampMonotonic", "MainPID"]
# Logs each stop, so the journal (monotonic clock, shared by the machines) says when.
STOPS_LOGGED = SERVICE + "ExecStop=/bin/sh -c 'echo stopping-%n'\n"


@pytest.fixture
def tag(sandbox: Sandbox) -> Iterator[str]:
    """A unique unit-name prefix; its units are destroyed afterwards."""
    prefix = f"cmd{uuid.uuid4().hex[:6]}"
    yield prefix
    listed = fleetctl(sandbox, "list-unit-files", "--no-legend", "--fields", "unit")
    mine = [n for n in listed.stdout.split() if n.startswith(prefix)]
    if mine:
        fleetctl(sandbox, "destroy", *mine)


def _machines(sandbox: Sandbox) -> dict[str, str]:
    """machine id -> sandbox machine name."""
    return {m.machine_id: m.name for m in sandbox.machines}


def _placed(sandbox: Sandbox, names: list[str]) -> dict[str, str]:
    """unit -> the sandbox machine it runs on (from list-units)."""
    listed = fleetctl(sandbox, "list-units", "--full", "--no-legend", "--fields", "unit,machine")
    rows = [line.split() for line in listed.stdout.splitlines()]
    ids = _machines(sandbox)
    return {unit: ids[where.split("/")[0]] for unit, where in rows if unit in names}


def _times(sandbox: Sandbox, placed: dict[str, str]) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {}
    for unit, machine in placed.items():
        props = unit_properties(sandbox, machine, [unit], TIMES)[unit]
        found[unit] = {k: int(v) for k, v in props.items()}
    return found


def _stopped_at(sandbox: Sandbox, machine: str, unit: str) -> int | None:
    """When ``unit`` last logged its stop (CLOCK_MONOTONIC, µs), if it did."""
    proc = sandbox.exec(machine, "journalctl", "--no-pager", "-o", "json", "-u", unit, timeout=30)
    stops = [
        int(entry["__MONOTONIC_TIMESTAMP"])
        for entry in map(json.loads, proc.stdout.splitlines())
        if entry.get("MESSAGE") == f"stopping-{unit}"
    ]
    return max(stops) if stops else None


def test_status_exits_with_systemctls_code(sandbox: Sandbox, tmp_path: Path, tag: str) -> None:
    good, bad = tmp_path / f"{tag}-ok.service", tmp_path / f"{tag}-bad.service"
    good.write_text(SERVICE)
    bad.write_text("[Service]\nExecStart=/bin/false\n")
    r = fleetctl(sandbox, "start", "--block-attempts", "240", str(good), str(bad))
    assert r.returncode == 1 and f"Unit {bad.name} failed" in r.stderr, r.stdout + r.stderr
    r = fleetctl(sandbox, "status", good.name)
    assert r.returncode == 0 and "Active: active (running)" in r.stdout, r.stdout + r.stderr
    r = fleetctl(sandbox, "status", bad.name)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "Active: failed" in r.stdout
    r = fleetctl(sandbox, "status", bad.name, good.name)
    assert r.returncode == 3 and good.name not in r.stdout


def test_restart_really_restarts_one_unit_at_a_time(
    sandbox: Sandbox, tmp_path: Path, tag: str, wait_for: WaitFor
) -> None:
    template = tmp_path / f"{tag}@.service"
    template.write_text(STOPS_LOGGED)
    names = [f"{tag}@{i}.service" for i in (1, 2, 3)]
    r = fleetctl(sandbox, "start", "--block-attempts", "240", *(str(tmp_path / n) for n in names))
    assert r.returncode == 0, r.stdout + r.stderr
    placed = _placed(sandbox, names)
    before = _times(sandbox, placed)

    r = fleetctl(sandbox, "restart", "--block-attempts", "240", *names)
    assert r.returncode == 0, r.stdout + r.stderr
    assert [line.split(" on ")[0] for line in r.stdout.splitlines()] == [
        f"Unit {n} restarted" for n in names
    ]
    after = _times(sandbox, placed)
    for name in names:
        assert after[name]["MainPID"] != before[name]["MainPID"], name
        assert (
            after[name]["ActiveEnterTimestampMonotonic"]
            > before[name]["ActiveEnterTimestampMonotonic"]
        )
    # one at a time: each unit stopped only after the one before it was running again
    # (the machines share the host's monotonic clock)
    stops: dict[str, int] = {}
    for name in names:

        def logged(name: str = name) -> bool:
            at = _stopped_at(sandbox, placed[name], name)
            if at is not None:
                stops[name] = at
            return at is not None

        wait_for(logged, 30, f"the stop of {name} in its journal")
    for first, second in itertools.pairwise(names):
        assert stops[second] > after[first]["ActiveEnterTimestampMonotonic"], (stops, after)


def test_restart_no_block_really_restarts(
    sandbox: Sandbox, tmp_path: Path, tag: str, wait_for: WaitFor
) -> None:
    unit = tmp_path / f"{tag}-nb.service"
    unit.write_text(SERVICE)
    r = fleetctl(sandbox, "start", "--block-attempts", "240", str(unit))
    assert r.returncode == 0, r.stdout + r.stderr
    machine = _placed(sandbox, [unit.name])[unit.name]
    before = _times(sandbox, {unit.name: machine})[unit.name]

    r = fleetctl(sandbox, "restart", "--no-block", unit.name)
    assert r.returncode == 0 and r.stdout.strip() == f"Triggered unit {unit.name} start", r.stderr

    def restarted() -> bool:
        now = unit_properties(sandbox, machine, [unit.name], [*TIMES, "ActiveState"])[unit.name]
        return (
            now["ActiveState"] == "active"
            and int(now["ActiveEnterTimestampMonotonic"]) > before["ActiveEnterTimestampMonotonic"]
            and int(now["MainPID"]) != before["MainPID"]
        )

    wait_for(restarted, 60, f"{unit.name} running again with a new MainPID")


def test_drain_by_hostname_waits_until_the_machine_holds_no_units(
    sandbox: Sandbox, tmp_path: Path, tag: str
) -> None:
    names = [f"{tag}-d{i}.service" for i in range(4)]
    for name in names:
        (tmp_path / name).write_text(SERVICE)
    r = fleetctl(sandbox, "start", "--block-attempts", "240", *(str(tmp_path / n) for n in names))
    assert r.returncode == 0, r.stdout + r.stderr
    target = _placed(sandbox, names)[names[0]]
    target_id = sandbox.machine(target).machine_id
    listed = fleetctl(
        sandbox, "list-machines", "--full", "--no-legend", "--fields", "machine,hostname"
    )
    hostname = dict(line.split() for line in listed.stdout.splitlines())[target_id]
    assert hostname
    try:
        r = fleetctl(sandbox, "drain", "--block-attempts", "600", hostname, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.strip().endswith("drained: it holds no units"), r.stdout
        assert target_id in r.stdout
        # the end state, as systemd in the machines says
        active = where_active(sandbox, f"{tag}-d*.service")
        assert sorted(active) == names, active
        assert all(target not in where for where in active.values()), active
        rows = json.loads(fleetctl(sandbox, "-o", "json", "list-machines").stdout)
        mine = next(m for m in rows if m["id"] == target_id)
        assert mine["units"] == 0 and mine["draining"] is True
    finally:
        r = fleetctl(sandbox, "uncordon", hostname)
        assert r.returncode == 0, r.stdout + r.stderr
