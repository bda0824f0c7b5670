"""fleetctl list-units shows the units' health (the ``health`` and ``healthmsg`` fields,
always in ``-o json``; fleet's default columns unchanged), and fleetctl validate refuses a
bad health check naming the key.  The cluster is clikit's (real agents, fake systemd)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from clikit import ServerThread
from clirun import serving
from healthkit import closed_port
from typer.testing import CliRunner

from fleetd.cli.main import app

SERVICE = "[Unit]\nDescription=web\n\n[Service]\nExecStart=/bin/sleep 1000\n"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    with serving(tmp_path, inspected=False, page_size=100) as thread:
        yield thread


def fleetctl(server: ServerThread, *args: str):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(app, ["--endpoint", server.endpoint, *args], catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


def eventually(server: ServerThread, args: list[str], expected: str, within: float = 10.0) -> str:
    """fleetctl's output once it holds ``expected`` (polled with a deadline)."""
    deadline = time.monotonic() + within
    while True:
        out = fleetctl(server, *args).stdout
        if expected in out:
            return str(out)
        if time.monotonic() > deadline:
            raise AssertionError(f"{expected!r} not in {out!r} within {within}s")
        time.sleep(0.02)


def test_list_units_health_fields(server: ServerThread, tmp_path: Path) -> None:
    (tmp_path / "web.service").write_text(SERVICE)
    (tmp_path / "db.service").write_text(
        SERVICE + f"\n[X-Fleet]\nHealthCheck=tcp://127.0.0.1:{closed_port()}\n"
    )
    r = fleetctl(server, "start", str(tmp_path / "web.service"), str(tmp_path / "db.service"))
    assert r.exit_code == 0, r.output
    fields = ["list-units", "--no-legend", "--fields", "unit,active,health,healthmsg"]
    out = eventually(server, fields, "unhealthy")
    assert [[c for c in line.split("\t") if c] for line in out.splitlines()] == [
        ["db.service", "active", "unhealthy", "connection refused"],
        ["web.service", "active", "healthy", "-"],
    ]
    # fleet's columns stay the default
    assert fleetctl(server, "list-units").stdout.splitlines()[0].split() == [
        "UNIT", "MACHINE", "ACTIVE", "SUB",
    ]  # fmt: skip
    states = json.loads(fleetctl(server, "-o", "json", "list-units").stdout)
    health = {s["name"]: (s["health"], s["healthMessage"]) for s in states}
    assert health == {
        "db.service": ("unhealthy", "connection refused"),
        "web.service": ("healthy", None),
    }
    assert all(s["healthSince"].endswith("Z") for s in states)

    r = fleetctl(server, "stop", str(tmp_path / "db.service"))
    assert r.exit_code == 0, r.output
    eventually(server, fields, "db.service\tinactive\tunknown\t")


def test_validate_refuses_a_bad_health_check(tmp_path: Path) -> None:
    (tmp_path / "a.service").write_text(SERVICE + "\n[X-Fleet]\nHealthCheck=udp://h:53\n")
    (tmp_path / "b.service").write_text(
        SERVICE + "\n[X-Fleet]\nHealthCheck=tcp://h:53\nHealthCheckTimeout=2 fortnights\n"
    )
    (tmp_path / "c.service").write_text(SERVICE + "\n[X-Fleet]\nHealthCheck=exec:/bin/true\n")
    files = [str(tmp_path / f"{n}.service") for n in "abc"]
    r = CliRunner().invoke(app, ["validate", *files], catch_exceptions=False)
    assert r.exit_code == 1
    assert r.stdout.splitlines() == [
        "a.service: HealthCheck=udp://h:53: unknown scheme 'udp' (use http://HOST:PORT/PATH, "
        "tcp://HOST:PORT or exec:COMMAND ARGS)",
        "b.service: HealthCheckTimeout=2 fortnights: not a time span: '2 fortnights' "
        "(expected a time span such as 500ms, 5s, 1min 30s or 2h)",
        "OK c.service",
    ]
