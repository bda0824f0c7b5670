"""fleetctl --driver etcd: the same commands straight against a real etcd registry."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from fleetd.cli.main import app
from fleetd.etcd_server import EtcdServer
from fleetd.model import Capacity, Machine
from fleetd.registry.etcd import EtcdRegistry
from fleetd.registry.keys import Keys
from fleetd.registry.store import Store
from fleetd.unitfile import UnitFile

pytestmark = pytest.mark.etcd
SERVICE = "[Unit]\nDescription=Web\n\n[Service]\nExecStart=/bin/sleep 1000\n"


def etcd_env(etcd_server: EtcdServer, key_prefix: str) -> dict[str, str]:
    return {
        "FLEETCTL_DRIVER": "etcd",
        "FLEETCTL_ETCD_ENDPOINTS": etcd_server.endpoint,
        "FLEETCTL_ETCD_KEY_PREFIX": key_prefix,
    }


def driver(runner: CliRunner, env: dict[str, str]) -> Callable[..., Result]:
    """fleetctl with ``env``, failing on any traceback in its output."""

    def fleetctl(*args: str) -> Result:
        result = runner.invoke(app, list(args), env=env, catch_exceptions=False)
        assert "Traceback" not in result.output
        return result

    return fleetctl


def test_etcd_driver(etcd_server: EtcdServer, key_prefix: str, tmp_path: Path) -> None:
    unit = tmp_path / "web.service"
    unit.write_text(SERVICE)
    env = etcd_env(etcd_server, key_prefix)
    runner = CliRunner()
    fleetctl = driver(runner, env)

    r = fleetctl("submit", str(unit))
    assert r.exit_code == 0, r.output
    r = fleetctl("start", "--no-block", "web.service")
    assert r.stdout.strip() == "Triggered unit web.service start"
    r = fleetctl("list-unit-files", "--no-legend")
    h = UnitFile.from_text(SERVICE).hash[:7]
    assert r.stdout == f"web.service\t{h}\tlaunched\tinactive\t-\n"
    r = fleetctl("cat", "web.service")
    assert r.stdout == UnitFile.from_text(SERVICE).to_text()
    r = fleetctl("status", "web.service")
    assert r.exit_code == 1
    assert "--driver api" in r.stderr
    r = fleetctl("destroy", "web.service")
    assert r.stdout.strip() == "Destroyed web.service"
    r = fleetctl("list-unit-files", "--no-legend")
    assert r.stdout == ""
    r = runner.invoke(app, ["--etcd-key-prefix", "nope", "list-units"], env=env)
    assert r.exit_code == 1
    assert "prefix" in r.stderr


def test_etcd_driver_warns_and_accepts(
    etcd_server: EtcdServer, key_prefix: str, tmp_path: Path
) -> None:
    """What fleet accepted (Conflicts without a suffix) is written, with the warning."""
    for name in ("apache.service", "web.service"):
        (tmp_path / name).write_text(SERVICE + "\n[X-Fleet]\nConflicts=apache\n")
    env = etcd_env(etcd_server, key_prefix)
    runner = CliRunner()
    r = runner.invoke(app, ["submit", str(tmp_path / "apache.service")], env=env)
    assert r.exit_code == 0, r.output
    [warning] = r.stderr.splitlines()
    assert warning.startswith("WARNING: apache.service: Conflicts=apache: 'apache'")
    both = [str(tmp_path / n) for n in ("apache.service", "web.service")]
    r = runner.invoke(app, ["start", "--no-block", *both], env=env)
    assert r.exit_code == 0, r.output
    assert [w.split(": ")[1] for w in r.stderr.splitlines()] == ["web.service"]
    r = runner.invoke(app, ["list-unit-files", "--no-legend"], env=env)
    assert [line.split("\t")[0] for line in r.stdout.splitlines()] == [
        "apache.service",
        "web.service",
    ]


def test_etcd_driver_plans_writing_nothing(
    etcd_server: EtcdServer, key_prefix: str, tmp_path: Path
) -> None:
    """``plan`` reads the registry as an engine leader would, with the engine's default
    settings (it says so), and writes nothing."""

    async def registry_state(register: bool) -> tuple[list[object], int]:
        registry = EtcdRegistry([etcd_server.endpoint], timeout=5.0)
        try:
            store = Store(registry, Keys(key_prefix))
            if register:
                machine = Machine("m1", "host-m1", "10.0.0.1", (), Capacity(2000, 1 << 30))
                await store.register_machine(machine, await registry.grant_lease(60))
            items, revision = await registry.get_prefix(key_prefix)
            return [(kv.key, kv.value) for kv in items], revision
        finally:
            await registry.close()

    before = asyncio.run(registry_state(register=True))
    (tmp_path / "web.service").write_text(SERVICE)
    (tmp_path / "big.service").write_text(SERVICE + "\n[X-Fleet]\nMemoryReservation=2G\n")
    env = etcd_env(etcd_server, key_prefix)
    runner = CliRunner()
    r = runner.invoke(app, ["plan", str(tmp_path / "web.service")], env=env)
    assert r.exit_code == 1, r.output
    assert r.stdout.splitlines() == [
        "+ unit web.service (new, launched)",
        "+ schedule web.service on host-m1: load and start (best fit (binpack))",
        "Plan: 1 to schedule, 0 to update, 0 to unschedule.",
    ]
    assert "note: planned with the cluster settings and otherwise the engine's" in r.stderr
    r = runner.invoke(app, ["plan", str(tmp_path / "big.service")], env=env)
    assert r.exit_code == 2, r.output
    assert "! unplaceable big.service: m1: needs 2G memory, 1G free" in r.stdout
    assert asyncio.run(registry_state(register=False)) == before


def test_etcd_driver_config(etcd_server: EtcdServer, key_prefix: str, tmp_path: Path) -> None:
    """config get|set on the registry itself; fleetctl plan plans with the strategy set."""
    env = etcd_env(etcd_server, key_prefix)
    runner = CliRunner()
    fleetctl = driver(runner, env)

    async def register() -> None:
        registry = EtcdRegistry([etcd_server.endpoint], timeout=5.0)
        try:
            store = Store(registry, Keys(key_prefix))
            machine = Machine("m1", "host-m1", "10.0.0.1", (), Capacity(2000, 1 << 30))
            await store.register_machine(machine, await registry.grant_lease(60))
        finally:
            await registry.close()

    asyncio.run(register())
    r = fleetctl("config", "get", "guard_hold")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[1].split()[:3] == ["guard_hold", "35", "default"]
    r = fleetctl("config", "set", "strategy", "spread")
    assert r.exit_code == 0, r.output
    assert r.stdout == "strategy = spread\n"
    r = fleetctl("config", "set", "guard_share", "1.5")
    assert r.exit_code == 1 and "guard_share must be a number from 0 to 1" in r.stderr
    r = fleetctl("-o", "json", "config", "get")
    shown = {s["name"]: s for s in json.loads(r.stdout)}
    assert shown["strategy"]["value"] == "spread" and shown["strategy"]["set"]
    assert not shown["guard_share"]["set"]
    (tmp_path / "web.service").write_text(SERVICE)
    r = fleetctl("plan", str(tmp_path / "web.service"))
    assert "on host-m1: load and start (least loaded (spread))" in r.stdout
