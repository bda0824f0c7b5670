"""A user's path with fleetctl on a sandbox of real systemd machines (through the REST API
on TCP with the sandbox's token): validate, submit, start (blocking), list-units, status,
journal, stop, destroy; and a unit that cannot be placed, with the reason shown."""

from __future__ import annotations

import os
import selectors
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from cluster_helpers import FLEETCTL, fleetctl

from fleetd.sandbox.cluster import Sandbox

pytestmark = pytest.mark.integration
WaitFor = Callable[[Callable[[], object], float, str], object]


def test_user_path(sandbox: Sandbox, tmp_path: Path, wait_for: WaitFor) -> None:
    name = f"e2e-{uuid.uuid4().hex[:8]}.service"
    unit = tmp_path / name
    unit.write_text(
        "[Unit]\nDescription=fleetctl end to end\n\n"
        "[Service]\nExecStart=/bin/sh -c 'echo hello-from-e2e; exec sleep 1000'\n"
    )
    ips = {m.ip: m.name for m in sandbox.machines}

    r = fleetctl(sandbox, "validate", str(unit))
    assert r.returncode == 0 and r.stdout.strip() == f"OK {name}", r.stdout + r.stderr

    r = fleetctl(sandbox, "submit", str(unit))
    assert r.returncode == 0, r.stderr
    assert f"Unit {name} submitted" in r.stdout

    r = fleetctl(sandbox, "start", "--block-attempts", "120", name)
    assert r.returncode == 0, r.stdout + r.stderr
    line = r.stdout.strip().splitlines()[-1]
    assert line.startswith(f"Unit {name} started on ")
    host, ip = line.rsplit(" ", 2)[-2:]
    assert ips[ip.strip("()")] == host

    r = fleetctl(sandbox, "list-units", "--no-legend")
    rows = [row.split("\t") for row in r.stdout.splitlines()]
    mine = [[c for c in row if c] for row in rows if row[0] == name]
    assert mine and mine[0][2:] == ["active", "running"], r.stdout

    r = fleetctl(sandbox, "status", name)
    assert r.returncode == 0, r.stderr
    assert "Active: active (running)" in r.stdout

    def journal_has_hello() -> bool:
        out = fleetctl(sandbox, "journal", "--lines", "50", name)
        return "hello-from-e2e" in out.stdout

    wait_for(journal_has_hello, 30, "the unit's output in fleetctl journal")
    assert "hello-from-e2e" in _first_followed_lines(sandbox, name)

    r = fleetctl(sandbox, "stop", "--block-attempts", "120", name)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"Unit {name} stopped on {host}" in r.stdout

    r = fleetctl(sandbox, "destroy", name)
    assert r.stdout.strip() == f"Destroyed {name}"
    r = fleetctl(sandbox, "list-unit-files", "--no-legend", "--fields", "unit")
    assert name not in r.stdout.split()


def test_unplaceable_unit_shows_why(sandbox: Sandbox, tmp_path: Path) -> None:
    name = f"e2e-nowhere-{uuid.uuid4().hex[:8]}.service"
    unit = tmp_path / name
    unit.write_text(
        "[Service]\nExecStart=/bin/sleep 1000\n\n[X-Fleet]\nMachineMetadata=role=nowhere\n"
    )
    try:
        r = fleetctl(sandbox, "start", "--block-attempts", "120", str(unit))
        assert r.returncode == 1, r.stdout + r.stderr
        assert f"Unit {name} could not be placed: " in r.stderr
        r = fleetctl(sandbox, "list-unit-files")
        header = r.stdout.splitlines()[0].split()
        assert header[-1] == "REASON"
        row = next(x for x in r.stdout.splitlines() if x.startswith(name))
        assert "role" in row.split("\t")[-1]
    finally:
        fleetctl(sandbox, "destroy", name)


def test_fleet_unit_with_warnings_runs(sandbox: Sandbox, tmp_path: Path) -> None:
    """A unit file as fleet v1.0 users wrote it (a line before any section, Conflicts
    without a suffix, an unknown key) is accepted with warnings and runs under systemd."""
    name = f"e2e-fleet-{uuid.uuid4().hex[:8]}.service"
    unit = tmp_path / name
    unit.write_text(
        "Description=written before the first section\n"
        "[Service]\nExecStart=/bin/sleep 1000\n\n"
        "[X-Fleet]\nConflicts=apache\nMachineMetdata=role=web\n"
    )
    try:
        r = fleetctl(sandbox, "start", "--block-attempts", "120", str(unit))
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.strip().splitlines()[-1].startswith(f"Unit {name} started on ")
        warnings = [w for w in r.stderr.splitlines() if w.startswith(f"WARNING: {name}: ")]
        assert len(warnings) == 3, r.stderr
        assert "outside of any [Section]" in warnings[0]
        assert "did you mean MachineMetadata?" in warnings[1]
        assert "Conflicts=apache" in warnings[2]
        r = fleetctl(sandbox, "status", name)
        assert "Active: active (running)" in r.stdout, r.stdout + r.stderr
    finally:
        fleetctl(sandbox, "destroy", name)


def _first_followed_lines(sandbox: Sandbox, name: str, timeout: float = 30) -> str:
    """What ``fleetctl journal -f`` prints until the unit's line shows up (then it is
    stopped, as a user's Ctrl-C would)."""
    proc = subprocess.Popen(
        [FLEETCTL, "journal", "-f", "--lines", "50", name],
        env={**os.environ, **sandbox.env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    seen = b""
    deadline = time.monotonic() + timeout
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            while b"hello-from-e2e" not in seen and time.monotonic() < deadline:
                if selector.select(timeout=max(0.0, deadline - time.monotonic())):
                    chunk = os.read(proc.stdout.fileno(), 65536)
                    if not chunk:
                        break
                    seen += chunk
        assert proc.poll() is None, "journal -f ended by itself"
    finally:
        proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
    return seen.decode(errors="replace")
