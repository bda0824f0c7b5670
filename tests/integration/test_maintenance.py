"""Maintenance on a sandbox of real systemd machines: `fleetctl reboot` reboots them for
real (a new systemd boot in each), the engine leader's machine among them.

Units serve HTTP (``python3 -m http.server``) on a port of their own and check
themselves with ``HealthCheck=``.  While a maintenance runs, a sampler on the host
asks every 100 ms each unit's server on every machine: an instance counts as up when
some machine answers for it; an ``AtMostOnce`` unit must never answer on two machines.
What the machines did is read inside them (their boot ids, the journal).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from cluster_helpers import fleetctl

from fleetd.errors import SandboxError
from fleetd.maintenance.store import MaintenanceStore
from fleetd.registry.etcd import EtcdRegistry
from fleetd.registry.store import Store
from fleetd.sandbox import etcd
from fleetd.sandbox.cluster import Sandbox

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
WaitFor = Callable[[Callable[[], object], float, str], object]
MACHINES = ("m1", "m2", "m3")
PORTS = tuple(range(8101, 8107))
ONCE_PORT = 8200


def service(description: str, port: str, fleet: str = "") -> str:
    return (
        f"[Unit]\nDescription={description}\n\n"
        "[Service]\nWorkingDirectory=/tmp\n"
        f"ExecStart=/usr/bin/python3 -m http.server {port} --bind 0.0.0.0\n\n"
        f"[X-Fleet]\nHealthCheck=http://127.0.0.1:{port}/\nHealthCheckInterval=200ms\n" + fleet
    )


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _registry_call(sandbox: Sandbox, fn: Callable[[Store], Any]) -> Any:
    registry = EtcdRegistry(sandbox.etcd_endpoints)
    try:
        return await fn(Store(registry))
    finally:
        await registry.close()


def registry(sandbox: Sandbox, fn: Callable[[Store], Any]) -> Any:
    return run(_registry_call(sandbox, fn))


def ids(sandbox: Sandbox) -> dict[str, str]:
    """machine id -> sandbox name."""
    return {sandbox.machine(m).machine_id: m for m in MACHINES}


def boot_ids(sandbox: Sandbox) -> dict[str, str]:
    return {
        m: sandbox.exec(m, "cat", "/proc/sys/kernel/random/boot_id").stdout.strip()
        for m in MACHINES
    }


class Sampler:
    """Every 100 ms: which instances some machine answers HTTP for, and on how many
    machines the AtMostOnce unit answers."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.ips = [sandbox.machine(m).ip for m in MACHINES]
        self.samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=len(self.ips) * (len(PORTS) + 1))
        self._client = httpx.Client(timeout=0.3)
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _answers(self, ip: str, port: int) -> bool:
        try:
            return self._client.get(f"http://{ip}:{port}/").status_code == 200
        except httpx.HTTPError:
            return False

    def sample(self) -> tuple[int, int]:
        asks = [(ip, port) for port in (*PORTS, ONCE_PORT) for ip in self.ips]
        answered = dict(zip(asks, self._pool.map(lambda a: self._answers(*a), asks), strict=True))
        up = sum(any(answered[(ip, port)] for ip in self.ips) for port in PORTS)
        once = sum(answered[(ip, ONCE_PORT)] for ip in self.ips)
        return up, once

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            up, once = self.sample()
            self.samples.append((started, up, once))
            self._stop.wait(max(0.0, 0.1 - (time.monotonic() - started)))

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=30)
        self._pool.shutdown()
        self._client.close()


@pytest.fixture
def services(sandbox: Sandbox, tmp_path: Path, wait_for: WaitFor) -> Iterator[None]:
    """Six instances of an HTTP template (MaxUnavailable=1) and one AtMostOnce service."""
    template = tmp_path / "mweb@.service"
    template.write_text(service("web %i", "%i", "MaxUnavailable=1\n"))
    once = tmp_path / "monce.service"
    once.write_text(service("once", str(ONCE_PORT), "AtMostOnce=true\n"))
    names = [f"mweb@{p}.service" for p in PORTS]
    assert fleetctl(sandbox, "submit", str(template)).returncode == 0
    r = fleetctl(sandbox, "start", *names, str(once), timeout=180)
    assert r.returncode == 0, r.stderr
    probe = Sampler(sandbox)
    wait_for(lambda: probe.sample() == (len(PORTS), 1), 60, "every service answers")
    probe.__exit__()
    try:
        yield
    finally:
        fleetctl(sandbox, "destroy", *names, "mweb@.service", "monce.service")
        for m in MACHINES:
            fleetctl(sandbox, "uncordon", sandbox.machine(m).machine_id)


def placement(sandbox: Sandbox) -> dict[str, list[str]]:
    entries = registry(sandbox, lambda s: s.list_all_schedule())
    found: dict[str, list[str]] = {}
    for e in entries:
        if e.name.startswith(("mweb@", "monce")):
            found.setdefault(e.name, []).append(e.machine)
    return {n: sorted(ms) for n, ms in sorted(found.items())}


def test_rolling_reboot_of_every_machine_keeps_the_instances_up(
    sandbox: Sandbox, services: None
) -> None:
    before_boots = boot_ids(sandbox)
    before_counts = {m: sandbox.boots(m) for m in MACHINES}
    before = placement(sandbox)
    leader = registry(sandbox, lambda s: s.current_leader())
    assert leader is not None
    leader_name = ids(sandbox)[leader.machine]
    with Sampler(sandbox) as sampler:
        r = fleetctl(sandbox, "reboot", "--all", timeout=600)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "done: reboot of m1, m2, m3" in r.stdout
    # Every machine rebooted once: a new systemd boot in each (read inside it).
    assert {m: sandbox.boots(m) for m in MACHINES} == {m: n + 1 for m, n in before_counts.items()}
    after_boots = boot_ids(sandbox)
    assert all(after_boots[m] not in ("", before_boots[m]) for m in MACHINES), after_boots
    for m in MACHINES:
        boots = sandbox.exec(m, "journalctl", "--list-boots", "--no-pager").stdout
        assert before_boots[m].replace("-", "") in boots
    # Never fewer than 5 of the 6 instances up; the AtMostOnce unit never twice.
    assert len(sampler.samples) > 50
    lowest = min(up for _, up, _ in sampler.samples)
    assert lowest >= 5, [s for s in sampler.samples if s[1] < 5][:5]
    assert max(once for _, _, once in sampler.samples) <= 1
    # The leader's machine was one of them; all uncordoned; done means the units are
    # spread again: as many on each machine as before, each on one.
    assert leader_name in MACHINES
    machines = json.loads(fleetctl(sandbox, "-o", "json", "list-machines").stdout)
    assert not any(m["unschedulable"] or m["draining"] for m in machines), machines
    after = placement(sandbox)
    assert sorted(after) == sorted(before) and all(len(ms) == 1 for ms in after.values())
    assert Counter(ms[0] for ms in after.values()) == Counter(ms[0] for ms in before.values())
    assert len(set(Counter(ms[0] for ms in after.values()))) == 3
    status = json.loads(fleetctl(sandbox, "-o", "json", "reboot", "--status").stdout)
    assert status["phase"] == "done" and [j["phase"] for j in status["machines"]] == ["done"] * 3


def test_machines_that_need_a_reboot_reboot_one_after_the_other(
    sandbox: Sandbox, wait_for: WaitFor
) -> None:
    names = ids(sandbox)
    counts = {m: sandbox.boots(m) for m in MACHINES}
    prefix = "/fleet/machines/"
    gone: dict[str, list[float]] = {m: [] for m in MACHINES}
    stop = threading.Event()

    def watch() -> None:  # when each machine is not registered
        while not stop.is_set():
            try:
                present = {k[len(prefix) :] for k in etcd.keys(sandbox.etcd_endpoints, prefix)}
            except SandboxError:  # etcd busy for a moment: the next look counts
                continue
            now = time.monotonic()
            for mid, name in names.items():
                if mid not in present:
                    gone[name].append(now)
            stop.wait(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        for m in ("m2", "m3"):
            assert sandbox.exec(m, "touch", "/run/reboot-required").returncode == 0
        wait_for(
            lambda: sandbox.boots("m2") > counts["m2"] and sandbox.boots("m3") > counts["m3"],
            180,
            "m2 and m3 rebooted",
        )
        sandbox.wait_rebooted("m2", counts["m2"])
        sandbox.wait_rebooted("m3", counts["m3"])

        def over() -> bool:
            status = json.loads(fleetctl(sandbox, "-o", "json", "reboot", "--status").stdout)
            return bool(status["requested"] and status["phase"] == "done")

        wait_for(over, 120, "the requests served")
    finally:
        stop.set()
        watcher.join(timeout=10)
    assert sandbox.boots("m1") == counts["m1"]
    assert gone["m2"] and gone["m3"], gone
    m2 = (min(gone["m2"]), max(gone["m2"]))
    m3 = (min(gone["m3"]), max(gone["m3"]))
    assert m2[1] < m3[0] or m3[1] < m2[0], f"down together: m2 {m2}, m3 {m3}"
    for m in ("m2", "m3"):  # /run is fresh: the flag went with the reboot
        assert sandbox.exec(m, "test", "-e", "/run/reboot-required").returncode == 1
    requests = registry(sandbox, lambda s: MaintenanceStore(s).list_requests())
    assert requests == {}


def test_a_failing_command_stops_and_leaves_its_machine_cordoned(
    sandbox: Sandbox, wait_for: WaitFor
) -> None:
    command = "/bin/sh -c 'echo upgraded $(hostname); test $(hostname) != m2'"
    counts = {m: sandbox.boots(m) for m in MACHINES}
    try:
        r = fleetctl(sandbox, "reboot", "--command", command, "m1", "m2", "m3", timeout=300)
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert "failed: m2: command /bin/sh -c" in r.stderr
        assert "exited with status 1" in r.stderr
        status = json.loads(fleetctl(sandbox, "-o", "json", "reboot", "--status").stdout)
        by_name = {ids(sandbox)[j["id"]]: j for j in status["machines"]}
        assert by_name["m1"]["phase"] == "done" and by_name["m1"]["exitStatus"] == 0
        assert by_name["m2"]["phase"] == "failed" and by_name["m2"]["exitStatus"] == 1
        assert by_name["m3"]["phase"] == "pending"
        machines = {
            ids(sandbox)[m["id"]]: m
            for m in json.loads(fleetctl(sandbox, "-o", "json", "list-machines").stdout)
        }
        assert machines["m2"]["draining"] and not machines["m1"]["unschedulable"]
        assert not machines["m3"]["unschedulable"]
        # The command ran on m1 through systemd: its output is in m1's journal.
        journal = sandbox.exec(
            "m1", "journalctl", "--no-pager", "-o", "cat", "-u", "fleetd-maintenance-*"
        ).stdout
        assert "upgraded m1" in journal
        assert {m: sandbox.boots(m) for m in MACHINES} == counts  # a command is no reboot
    finally:
        fleetctl(sandbox, "uncordon", sandbox.machine("m2").machine_id)


def test_bad_input_is_refused_and_changes_nothing(sandbox: Sandbox, wait_for: WaitFor) -> None:
    def snapshot() -> tuple[object, object, object]:
        async def read(s: Store) -> tuple[object, object, object]:
            records = MaintenanceStore(s)
            return await records.get(), await s.list_machine_flags(), await records.list_requests()

        return registry(sandbox, read)  # type: ignore[no-any-return]

    before = snapshot()
    for args, text in (
        (["nope"], "machine 'nope' not found"),
        (["--max-unavailable", "0", "m1"], "--max-unavailable must be at least 1"),
        (["m1", "m1"], "named more than once"),
        (["--command", "", "m1"], "--command is empty"),
    ):
        r = fleetctl(sandbox, "reboot", *args)
        assert r.returncode == 1 and text in r.stderr, (args, r.stderr)
    assert snapshot() == before
    # A second maintenance while one runs (its command waits for /run/go: however slow
    # fleetctl starts on a busy host, the first one still runs).
    sandbox.exec("m1", "rm", "-f", "/run/go")
    wait = "/bin/sh -c 'while [ ! -e /run/go ]; do sleep 0.1; done'"
    r = fleetctl(sandbox, "reboot", "--no-block", "--command", wait, "m1", "m2")
    assert r.returncode == 0, r.stderr
    running = snapshot()
    second = fleetctl(sandbox, "reboot", "--no-block", "m2")
    assert second.returncode == 1 and "one at a time" in second.stderr, second.stderr
    found = registry(sandbox, lambda s: MaintenanceStore(s).get())
    assert found is not None and running[0] is not None
    assert found[0].id == running[0][0].id  # type: ignore[index]
    # Cancelled while m1 runs its command: m1 finishes, m2 never starts.
    r = fleetctl(sandbox, "reboot", "--cancel", "--no-block")
    assert r.returncode == 0 and "cancelled" in r.stderr, r.stderr
    assert sandbox.exec("m1", "touch", "/run/go").returncode == 0

    def over() -> bool:
        status = json.loads(fleetctl(sandbox, "-o", "json", "reboot", "--status").stdout)
        return bool(status["phase"] == "cancelled")

    wait_for(over, 120, "the first one cancelled")
    status = json.loads(fleetctl(sandbox, "-o", "json", "reboot", "--status").stdout)
    assert [m["phase"] for m in status["machines"]] == ["done", "pending"], status
    machines = json.loads(fleetctl(sandbox, "-o", "json", "list-machines").stdout)
    assert not any(m["unschedulable"] or m["draining"] for m in machines), machines
