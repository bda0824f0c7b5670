"""Host facts the agent registers: machine id, default-route IP, memory, capacity."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fleetd.agent import host
from fleetd.errors import ConfigError
from fleetd.model import Capacity

ROUTES = (
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
    "lo\t0000007F\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0\n"
    "lo\t00000000\t0100007F\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
)


def test_machine_id_is_read_and_checked(tmp_path: Path) -> None:
    good = tmp_path / "machine-id"
    good.write_text("0123456789abcdef0123456789abcdef\n")
    assert host.machine_id(good) == "0123456789abcdef0123456789abcdef"
    bad = tmp_path / "bad"
    bad.write_text("not-an-id\n")
    with pytest.raises(ConfigError, match="does not hold a machine id"):
        host.machine_id(bad)
    with pytest.raises(ConfigError, match="cannot read the machine id"):
        host.machine_id(tmp_path / "missing")


def test_default_route_ip_uses_the_gateway_route(tmp_path: Path) -> None:
    table = tmp_path / "route"
    table.write_text(ROUTES)  # default route via 127.0.0.1 on lo
    assert host.default_route_ip(table) == "127.0.0.1"
    table.write_text(ROUTES.splitlines()[0] + "\n")
    assert host.default_route_ip(table) == ""
    assert host.default_route_ip(tmp_path / "missing") == ""


def test_memory_and_capacity(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:        2048 kB\nMemFree:  1 kB\n")
    assert host.memory_total(meminfo) == 2048 * 1024
    cpus = (os.cpu_count() or 1) * 1000
    assert host.capacity(memory_bytes=4096, reserved_cpu_millis=500) == Capacity(cpus - 500, 4096)
    assert host.capacity(cpu_millis=1500, memory_bytes=10, reserved_memory_bytes=99) == Capacity(
        1500, 10
    )
