"""Rolling updates on a sandbox of real systemd machines, driven by the real engine.

Units serve HTTP (``python3 -m http.server``) on a port of their own and check themselves
with ``HealthCheck=``.  While a rollout runs, a sampler on the host asks every 100 ms
both systemd in each machine (one long-lived D-Bus watcher per machine,
``fleetd/testing/unitwatch.py``) and each unit's server (HTTP from the host): a unit counts
as up when systemd has it active and it answers.  The end state is read with
``systemctl`` inside the machines: the unit file each one runs (its Description says
the version).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cluster_helpers import finish, fleetctl, fleetctl_process, unit_properties, where_active

from fleetd.registry.etcd import EtcdRegistry
from fleetd.registry.store import Store
from fleetd.sandbox.cluster import Sandbox
from fleetd.testing import unitwatch

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
WaitFor = Callable[[Callable[[], object], float, str], object]
SETTLE = 120.0


def service(description: str, port: str, check: str = "/", fleet: str = "") -> str:
    return (
        f"[Unit]\nDescription={description}\n\n"
        "[Service]\nWorkingDirectory=/tmp\n"
        f"ExecStart=/usr/bin/python3 -m http.server {port} --bind 0.0.0.0\n\n"
        f"[X-Fleet]\nHealthCheck=http://127.0.0.1:{port}{check}\nHealthCheckInterval=200ms\n"
        + fleet
    )


class Sampler:
    """Every 100 ms: how many of ``targets`` (unit, machine, port) are up, i.e. active in
    their machine's systemd and answering HTTP there; counting starts with the first
    sample that finds ``up`` of them up (default: all)."""

    def __init__(
        self,
        sandbox: Sandbox,
        pattern: str,
        targets: list[tuple[str, str, int]],
        up: int | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.targets = targets
        self.first = len(targets) if up is None else up
        self.names = sorted({machine for _, machine, _ in targets})
        self.active: dict[str, set[str]] = {}
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        argv = unitwatch.argv(pattern)
        self._watchers = {
            name: subprocess.Popen(
                sandbox.command(name, *argv),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for name in self.names
        }
        self._threads = [
            threading.Thread(target=self._read, args=(n, p), daemon=True)
            for n, p in self._watchers.items()
        ]
        self._threads.append(threading.Thread(target=self._sample, daemon=True))

    def __enter__(self) -> Sampler:
        try:
            return self._start()
        except BaseException:
            self.__exit__()
            raise

    def _start(self) -> Sampler:
        for thread in self._threads:
            thread.start()
        deadline = time.monotonic() + 30
        while len(self.active) < len(self.names) and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for proc in self._watchers.values():
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in self._watchers.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for thread in self._threads:
            if thread.is_alive() or thread.ident is not None:
                thread.join(timeout=10)
        for proc in self._watchers.values():
            if proc.stdout is not None:
                proc.stdout.close()

    def _read(self, name: str, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            _, *units = line.split()
            self.active[name] = set(units)

    def _sample(self) -> None:
        # Counting starts with the first sample that finds the targets up (the rollout
        # starts after it): the first connections to a machine may be slow to set up.
        counting = False
        with httpx.Client(timeout=0.5) as client:
            while not self._stop.is_set():
                began = time.monotonic()
                up = 0
                for unit, machine, port in self.targets:
                    if unit not in self.active.get(machine, set()):
                        continue
                    try:
                        ip = self.sandbox.machine(machine).ip
                        answered = client.get(f"http://{ip}:{port}/").status_code == 200
                    except httpx.HTTPError:
                        answered = False
                    up += answered
                counting = counting or up == self.first
                if counting:
                    self.samples.append((began, up))
                self._stop.wait(max(0.0, 0.1 - (time.monotonic() - began)))

    def fewest(self) -> int:
        return min(up for _, up in self.samples)

    def median_interval(self) -> float:
        times = [t for t, _ in self.samples]
        return statistics.median(b - a for a, b in itertools.pairwise(times))


def descriptions(sandbox: Sandbox, where: dict[str, str]) -> dict[str, tuple[str, str]]:
    """unit -> (ActiveState, Description) as systemd in its machine has them."""
    found: dict[str, tuple[str, str]] = {}
    for machine in set(where.values()):
        units = [u for u, m in where.items() if m == machine]
        props = unit_properties(sandbox, machine, units, ["ActiveState", "Description"])
        for unit, values in props.items():
            found[unit] = (values["ActiveState"], values["Description"])
    return found


def rollout_record(sandbox: Sandbox, unit: str) -> dict[str, Any]:
    r = fleetctl(sandbox, "-o", "json", "rollout", "status", unit)
    assert r.returncode == 0, r.stderr
    found: dict[str, Any] = json.loads(r.stdout)
    return found


def registry_dump(sandbox: Sandbox, rollouts: bool = True) -> dict[str, bytes]:
    """Units, versions, version heads and rollouts: what a refused rollout must not touch
    (``rollouts`` False: the rollout records are left out, one may be running)."""

    async def read() -> dict[str, bytes]:
        store = Store(EtcdRegistry(list(sandbox.etcd_endpoints)))
        try:
            found: dict[str, bytes] = {}
            k = store.keys
            prefixes = [k.units, k.versions, k.version_heads]
            for prefix in [*prefixes, k.rollouts] if rollouts else prefixes:
                items, _ = await store.registry.get_prefix(prefix)
                found.update((kv.key, kv.value) for kv in items)
            return found
        finally:
            await store.registry.close()

    return asyncio.run(read())


def leader(sandbox: Sandbox) -> str:
    async def read() -> str:
        store = Store(EtcdRegistry(list(sandbox.etcd_endpoints)))
        try:
            found = await store.current_leader()
            assert found is not None, "no engine leader"
            return {m.machine_id: m.name for m in sandbox.machines}[found.machine]
        finally:
            await store.registry.close()

    return asyncio.run(read())


class Group:
    """Six instances of one template, each serving on its own port."""

    def __init__(self, sandbox: Sandbox, tmp_path: Path) -> None:
        self.sandbox = sandbox
        self.tmp_path = tmp_path
        tag = uuid.uuid4().hex[:6]
        self.prefix = f"ro-{tag}"
        self.template = f"{self.prefix}@.service"
        base = random.randrange(20000, 30000, 10)
        self.ports = [base + i for i in range(6)]
        self.units = [f"{self.prefix}@{p}.service" for p in self.ports]
        self.where: dict[str, str] = {}

    def file(self, version: str, check: str = "/") -> str:
        path = self.tmp_path / version / self.template
        path.parent.mkdir(exist_ok=True)
        path.write_text(service(f"rollout test %i {version}", "%i", check))
        return str(path)

    def start(self, wait_for: WaitFor) -> None:
        r = fleetctl(self.sandbox, "submit", self.file("v1"))
        assert r.returncode == 0, r.stderr
        r = fleetctl(self.sandbox, "start", "--block-attempts", "240", *self.units, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr

        def placed() -> bool:
            found = where_active(self.sandbox, f"{self.prefix}@*")
            self.where = {u: ms[0] for u, ms in found.items() if len(ms) == 1}
            return sorted(self.where) == sorted(self.units)

        wait_for(placed, SETTLE, "six instances active")

    def sampler(self) -> Sampler:
        targets = [(u, self.where[u], p) for u, p in zip(self.units, self.ports, strict=True)]
        return Sampler(self.sandbox, f"{self.prefix}@*", targets)

    def versions(self) -> dict[str, tuple[str, str]]:
        return descriptions(self.sandbox, self.where)

    def all_on(self, version: str) -> bool:
        return self.versions() == {
            u: ("active", f"rollout test {p} {version}")
            for u, p in zip(self.units, self.ports, strict=True)
        }

    def destroy(self) -> None:
        fleetctl(self.sandbox, "destroy", *self.units, self.template)


@pytest.fixture
def group(sandbox: Sandbox, tmp_path: Path, wait_for: WaitFor) -> Iterator[Group]:
    g = Group(sandbox, tmp_path)
    g.start(wait_for)
    try:
        yield g
    finally:
        g.destroy()


def test_a_template_rolls_two_at_a_time_and_a_broken_version_is_reverted(
    sandbox: Sandbox, group: Group, wait_for: WaitFor
) -> None:
    with group.sampler() as sampler:
        r = fleetctl(
            sandbox, "update", "--max-parallel", "2", "--min-healthy-time", "1s",
            "--healthy-deadline", "90s", group.file("v2"), timeout=600,
        )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Rollout of" in r.stdout and "succeeded: 6 of 6 updated" in r.stdout
    print(
        f"\n{len(sampler.samples)} samples, median interval "
        f"{sampler.median_interval() * 1000:.0f} ms, fewest up {sampler.fewest()}"
    )
    assert len(sampler.samples) > 20
    assert sampler.median_interval() < 0.2
    assert sampler.fewest() >= 4, sampler.samples
    assert group.all_on("v2"), group.versions()

    # The health check of v3 asks a page the server does not have (404): unhealthy.
    broken = group.file("v3", check="/missing")
    with group.sampler() as sampler:
        r = fleetctl(
            sandbox, "update", "--max-parallel", "2", "--min-healthy-time", "1s",
            "--healthy-deadline", "10s", "--auto-revert", broken, timeout=600,
        )  # fmt: skip
    assert r.returncode == 1, r.stdout + r.stderr
    assert "reverted" in r.stderr and "unhealthy: HTTP 404" in r.stderr, r.stderr
    assert sampler.fewest() >= 4, sampler.samples
    wait_for(lambda: group.all_on("v2"), 60, "all six active on v2 again")
    record = rollout_record(sandbox, group.template)
    assert record["phase"] == "reverted" and record["revertVersion"] == 4


def test_the_rollout_survives_the_leader_s_death(
    sandbox: Sandbox, group: Group, wait_for: WaitFor
) -> None:
    proc = fleetctl_process(
        sandbox, "update", "--max-parallel", "1", "--min-healthy-time", "2s",
        "--healthy-deadline", "120s", group.file("v2"),
    )  # fmt: skip

    def one_done() -> bool:
        r = fleetctl(sandbox, "-o", "json", "rollout", "status", group.template)
        if r.returncode != 0:  # not started yet
            return False
        return any(t["state"] == "done" for t in json.loads(r.stdout)["targets"])

    try:
        wait_for(one_done, SETTLE, "a first instance updated")
        victim = leader(sandbox)
        sandbox.kill_fleetd(victim)
        killed = time.monotonic()
    except BaseException:
        proc.kill()
        finish(proc, 10)
        raise
    r = finish(proc, 600)  # fleetctl follows through the failover (its endpoint may be it)
    assert r.returncode == 0, r.stdout + r.stderr
    wait_for(lambda: group.all_on("v2"), SETTLE, "all six on v2")
    print(f"\nleader {victim} killed; rollout done {time.monotonic() - killed:.1f}s later")
    record = rollout_record(sandbox, group.template)
    assert record["phase"] == "succeeded"
    assert [t["state"] for t in record["targets"]] == ["done"] * 6


def test_a_global_unit_rolls_one_machine_at_a_time(
    sandbox: Sandbox, tmp_path: Path, wait_for: WaitFor
) -> None:
    name = f"rg-{uuid.uuid4().hex[:6]}.service"
    port = random.randrange(30000, 40000)
    machines = [m.name for m in sandbox.machines]

    def file(version: str) -> str:
        path = tmp_path / version / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(service(f"global {version}", str(port), fleet="Global=true\n"))
        return str(path)

    r = fleetctl(sandbox, "start", "--block-attempts", "240", file("v1"), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        wait_for(
            lambda: where_active(sandbox, name).get(name) == machines, SETTLE, "on every machine"
        )
        with Sampler(sandbox, name, [(name, m, port) for m in machines]) as sampler:
            r = fleetctl(
                sandbox, "update", "--max-parallel", "1", "--min-healthy-time", "1s",
                "--healthy-deadline", "90s", file("v2"), timeout=600,
            )  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
        assert sampler.fewest() >= 2, sampler.samples
        record = rollout_record(sandbox, name)
        assert record["kind"] == "global" and record["phase"] == "succeeded"
        moved = sorted(record["targets"], key=lambda t: t["started"])
        for before, after in itertools.pairwise(moved):
            assert after["started"] >= before["since"], moved  # the next after the last
        for machine in machines:
            props = unit_properties(sandbox, machine, [name], ["ActiveState", "Description"])
            assert props[name] == {"ActiveState": "active", "Description": "global v2"}
    finally:
        fleetctl(sandbox, "destroy", name)


def test_bad_rollouts_are_refused_with_a_clear_error_and_change_nothing(
    sandbox: Sandbox, group: Group, tmp_path: Path
) -> None:
    def refused(args: list[str], words: str, running: bool = False) -> None:
        before = registry_dump(sandbox, rollouts=not running)
        r = fleetctl(sandbox, "update", *args)
        assert r.returncode == 1 and words in r.stderr, r.stdout + r.stderr
        assert registry_dump(sandbox, rollouts=not running) == before

    bad_check = tmp_path / "bad" / group.template
    bad_check.parent.mkdir()
    bad_check.write_text(service("bad", "%i").replace("http://127.0.0.1", "ftp://127.0.0.1"))
    refused([str(bad_check)], "HealthCheck")
    refused(["--max-parallel", "0", group.file("v2")], "max-parallel must be at least 1, got 0")
    idle = tmp_path / "idle" / f"{group.prefix}-idle.service"
    idle.parent.mkdir()
    idle.write_text(service("idle v1", "29999"))
    assert fleetctl(sandbox, "submit", str(idle)).returncode == 0
    try:
        idle.write_text(service("idle v2", "29999"))
        refused([str(idle)], "is not launched")
    finally:
        fleetctl(sandbox, "destroy", idle.name)
    # The API refuses the same, with fleet's error shape.
    token = sandbox.env().get("FLEETCTL_TOKEN", "")
    before = registry_dump(sandbox)
    answer = httpx.post(
        f"{sandbox.env()['FLEETCTL_ENDPOINT']}/fleet/v1/rollouts",
        json={"unit": group.template, "maxParallel": 0, "version": 1},
        headers={"Authorization": f"Bearer {token}"} if token else {},
        timeout=30,
    )
    assert answer.status_code == 400
    assert "max-parallel must be at least 1" in answer.json()["error"]["message"]
    assert registry_dump(sandbox) == before
    # Two rollouts of one unit at once: the second is refused while the first runs.
    r = fleetctl(
        sandbox, "update", "--no-block", "--min-healthy-time", "60s", "--healthy-deadline",
        "120s", group.file("v2"),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    first = rollout_record(sandbox, group.template)["id"]
    try:
        running = "a rollout of " + group.template + " is already running"
        refused([group.file("v3")], running, running=True)
        assert rollout_record(sandbox, group.template)["id"] == first
    finally:
        r = fleetctl(sandbox, "rollout", "abort", group.template)
        assert r.returncode == 0 and ": aborted: aborted by " in r.stdout, r.stdout + r.stderr


def test_start_first_serves_throughout_and_moves_to_another_machine(
    sandbox: Sandbox, tmp_path: Path, wait_for: WaitFor
) -> None:
    name = f"rs-{uuid.uuid4().hex[:6]}.service"
    port = random.randrange(40000, 50000)
    machines = [m.name for m in sandbox.machines]

    def file(version: str) -> str:
        path = tmp_path / version / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(service(f"start-first {version}", str(port)))
        return str(path)

    r = fleetctl(sandbox, "start", "--block-attempts", "240", file("v1"), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        wait_for(lambda: len(where_active(sandbox, name).get(name, [])) == 1, SETTLE, "running")
        [old] = where_active(sandbox, name)[name]
        with Sampler(sandbox, name, [(name, m, port) for m in machines], up=1) as sampler:
            r = fleetctl(
                sandbox, "update", "--start-first", "--min-healthy-time", "2s",
                "--healthy-deadline", "90s", file("v2"), timeout=600,
            )  # fmt: skip
            assert r.returncode == 0, r.stdout + r.stderr
            wait_for(
                lambda: len(where_active(sandbox, name).get(name, [])) == 1, SETTLE, "one copy"
            )
        [new] = where_active(sandbox, name)[name]
        assert new != old
        print(
            f"\nstart-first: {len(sampler.samples)} samples, fewest up {sampler.fewest()}, "
            f"most up {max(up for _, up in sampler.samples)}"
        )
        assert sampler.fewest() >= 1, sampler.samples  # never down
        assert max(up for _, up in sampler.samples) == 2  # both at once for a while
        props = unit_properties(sandbox, new, [name], ["ActiveState", "Description"])
        assert props[name] == {"ActiveState": "active", "Description": "start-first v2"}
    finally:
        fleetctl(sandbox, "destroy", name)
