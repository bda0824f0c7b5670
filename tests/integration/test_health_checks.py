"""Health checks on a sandbox of real systemd machines: a unit whose ExecStart serves HTTP
becomes healthy through its HealthCheck=, a unit whose check fails is unhealthy with the
reason, and a stopped unit is no longer checked; seen through fleetctl list-units and the
REST API, with systemd inside the machines as the judge of what runs."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from cluster_helpers import fleetctl

from fleetd.sandbox.cluster import Sandbox

pytestmark = pytest.mark.integration
WaitFor = Callable[[Callable[[], object], float, str], object]


def write(tmp_path: Path, name: str, service: str, *fleet: str) -> str:
    (tmp_path / name).write_text(
        f"[Unit]\nDescription=health check test\n\n[Service]\n{service}\n\n[X-Fleet]\n"
        + "\n".join(fleet)
        + "\n"
    )
    return str(tmp_path / name)


def states(sandbox: Sandbox) -> dict[str, dict[str, str]]:
    """The units' states by name, as ``fleetctl -o json list-units`` shows the API's."""
    r = fleetctl(sandbox, "-o", "json", "list-units")
    assert r.returncode == 0, r.stderr
    return {s["name"]: s for s in json.loads(r.stdout)}


def listed(sandbox: Sandbox, name: str) -> list[str]:
    """``fleetctl list-units`` fields unit, machine, active, health, healthmsg of ``name``."""
    r = fleetctl(
        sandbox, "list-units", "--no-legend", "--full",
        "--fields", "unit,machine,active,health,healthmsg",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    for row in r.stdout.splitlines():
        cells = [c for c in row.split("\t") if c]
        if cells[0] == name:
            return cells
    return []


def machine_of(sandbox: Sandbox, name: str) -> str:
    machine_id = states(sandbox)[name]["machineID"]
    return {m.machine_id: m.name for m in sandbox.machines}[machine_id]


def systemctl_is_active(sandbox: Sandbox, machine: str, name: str) -> str:
    return sandbox.exec(machine, "systemctl", "is-active", name).stdout.strip()


def test_units_become_healthy_unhealthy_and_unchecked_when_stopped(
    sandbox: Sandbox, tmp_path: Path, wait_for: WaitFor
) -> None:
    tag = uuid.uuid4().hex[:8]
    web, bad, stop = (f"hc-{kind}-{tag}.service" for kind in ("web", "bad", "stop"))
    count = f"/run/hc-{tag}.count"
    files = [
        write(
            tmp_path, web,
            "WorkingDirectory=/tmp\nExecStart=/usr/bin/python3 -m http.server 18931 "
            "--bind 127.0.0.1",
            "HealthCheck=http://127.0.0.1:18931/", "HealthCheckInterval=500ms",
        ),
        write(
            tmp_path, bad, "ExecStart=/bin/sleep 100000",
            "HealthCheck=http://127.0.0.1:18932/health", "HealthCheckInterval=500ms",
        ),
        write(
            tmp_path, stop, "ExecStart=/bin/sleep 100000",
            f"HealthCheck=exec:/bin/sh -c 'echo checked >> {count}'",
            "HealthCheckInterval=200ms",
        ),
    ]  # fmt: skip
    r = fleetctl(sandbox, "start", "--block-attempts", "120", *files)
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        wait_for(lambda: listed(sandbox, web)[3:] == ["healthy", "-"], 60, f"{web} healthy")
        wait_for(
            lambda: listed(sandbox, bad)[3:] == ["unhealthy", "connection refused"],
            60,
            f"{bad} unhealthy",
        )
        wait_for(lambda: listed(sandbox, stop)[3:] == ["healthy", "-"], 60, f"{stop} healthy")

        # the API says the same, and systemd in the machines agrees on what runs
        token = sandbox.env().get("FLEETCTL_TOKEN", "")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body = httpx.get(
            f"{sandbox.env()['FLEETCTL_ENDPOINT']}/fleet/v1/state",
            params=[("unitName", web), ("unitName", bad)],
            headers=headers,
            timeout=10,
        ).json()
        by_name = {s["name"]: s for s in body["states"]}
        assert by_name[web]["health"] == "healthy" and "healthMessage" not in by_name[web]
        assert by_name[bad]["health"] == "unhealthy"
        assert by_name[bad]["healthMessage"] == "connection refused"
        assert by_name[bad]["healthSince"].endswith("Z")
        for name in (web, bad, stop):
            assert systemctl_is_active(sandbox, machine_of(sandbox, name), name) == "active"

        # stopped: unknown, and the check no longer runs
        where = machine_of(sandbox, stop)
        r = fleetctl(sandbox, "stop", "--block-attempts", "120", stop)
        assert r.returncode == 0, r.stdout + r.stderr
        wait_for(lambda: states(sandbox)[stop]["health"] == "unknown", 30, f"{stop} health unknown")
        assert systemctl_is_active(sandbox, where, stop) == "inactive"

        def checks_run() -> int:
            return len(sandbox.exec(where, "cat", count).stdout.splitlines())

        before = checks_run()
        assert before >= 1
        # Nothing to wait for here: an absence is observed over a window of ten check
        # intervals, in which a check still scheduled would have run several times.
        window_end = time.monotonic() + 2.0
        while time.monotonic() < window_end:
            assert checks_run() == before
            time.sleep(0.2)
    finally:
        names = [web, bad, stop]
        fleetctl(sandbox, "destroy", *names)
        for m in sandbox.machines:
            sandbox.exec(m.name, "rm", "-f", count)
