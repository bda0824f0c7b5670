"""The sandbox itself: real machines, etcd, faults, and a clean host after `down`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from fleetd.errors import SandboxError
from fleetd.registry.keys import Keys
from fleetd.sandbox import etcd, host, network
from fleetd.sandbox.cluster import Sandbox, teardown
from fleetd.sandbox.cuts import Cut
from fleetd.sandbox.spec import API_PORT, SandboxSpec
from fleetd.sandbox.state import Instance, instance

pytestmark = pytest.mark.integration

WaitFor = Callable[[Callable[[], object], float, str], object]

# Runs inside a machine with the host's venv python: exit 0 when host:port accepts TCP.
CONNECT = "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)"


def can_connect(sandbox: Sandbox, machine: str, url: str) -> bool:
    parsed = urlparse(url)
    address = [parsed.hostname or "", str(parsed.port)]
    proc = sandbox.exec(machine, sys.executable, "-c", CONNECT, *address, timeout=10)
    return proc.returncode == 0


def test_machines_have_distinct_ids_and_ips_and_reach_etcd(sandbox: Sandbox) -> None:
    machines = sandbox.machines
    assert [m.name for m in machines] == ["m1", "m2", "m3"]
    ids, ips = set(), set()
    for m in machines:
        machine_id = sandbox.exec(m.name, "cat", "/etc/machine-id").stdout.strip()
        assert machine_id == m.machine_id
        assert sandbox.exec(m.name, "hostname").stdout.strip() == m.name
        addr = json.loads(sandbox.exec(m.name, "ip", "-j", "-4", "addr", "show", "eth0").stdout)
        assert [a["local"] for a in addr[0]["addr_info"]] == [m.ip]
        state = sandbox.exec(m.name, "systemctl", "is-system-running").stdout.strip()
        assert state in ("running", "degraded"), f"{m.name}: {state}"
        ids.add(machine_id)
        ips.add(m.ip)
        assert can_connect(sandbox, m.name, sandbox.etcd_endpoints[0])
    assert len(ids) == 3
    assert len(ips) == 3

    # A write through etcd from one machine is read back from another.
    etcdctl = str(etcd.binary().with_name("etcdctl"))
    endpoints = f"--endpoints={','.join(sandbox.etcd_endpoints)}"
    put = sandbox.exec("m1", etcdctl, endpoints, "put", "/sandbox-test/hello", "from-m1")
    assert put.returncode == 0, put.stderr
    got = sandbox.exec("m3", etcdctl, endpoints, "get", "--print-value-only", "/sandbox-test/hello")
    assert got.stdout.strip() == "from-m1"
    sandbox.exec("m1", etcdctl, endpoints, "del", "/sandbox-test/hello")


def test_fleetd_runs_registered_and_kill_fleetd_restarts_it(
    sandbox: Sandbox, wait_for: WaitFor
) -> None:
    registered = etcd.keys(sandbox.etcd_endpoints, Keys().machines)
    assert sorted(registered) == sorted(Keys().machine(m.machine_id) for m in sandbox.machines)
    conf = sandbox.exec("m2", "cat", "/etc/fleet/fleet.conf").stdout
    assert "metadata = hostname=m2" in conf
    assert f"public_ip = {sandbox.machine('m2').ip}" in conf
    token = sandbox.exec("m2", "cat", "/etc/fleet/api-token").stdout.strip()
    assert token == sandbox.token

    def main_pid() -> str:
        return sandbox.exec("m2", "systemctl", "show", "-P", "MainPID", "fleetd").stdout.strip()

    before = main_pid()
    assert before not in ("", "0")
    sandbox.kill_fleetd("m2")
    wait_for(lambda: main_pid() not in ("0", before), 10, "systemd restarts fleetd on m2")
    restarts = sandbox.exec("m2", "systemctl", "show", "-P", "NRestarts", "fleetd").stdout
    assert int(restarts) >= 1
    wait_for(
        lambda: sandbox.exec("m2", "systemctl", "is-active", "fleetd").stdout.strip() == "active",
        30,
        "fleetd on m2 active again",
    )


def test_three_member_etcd_in_a_second_sandbox_side_by_side(sandbox: Sandbox) -> None:
    """A second, named sandbox with etcd on m1..m3 lives next to the session's one."""
    name = str(os.getpid() % 10000)  # unlike any other sandbox running here
    session_state = (instance().state_dir / "state.json").read_bytes()
    other = Sandbox.up(SandboxSpec(machines=3, etcd_members=3, fleetd=False), name=name)
    try:
        assert other.instance.bridge != sandbox.instance.bridge
        assert other.machine("m1").ip != sandbox.machine("m1").ip
        endpoints = other.etcd_endpoints
        assert len(endpoints) == 3
        assert all(etcd.healthy(ep) for ep in endpoints)
        etcdctl = str(etcd.binary().with_name("etcdctl"))
        members = other.exec("m1", etcdctl, f"--endpoints={endpoints[0]}", "member", "list")
        assert len(members.stdout.strip().splitlines()) == 3, members.stdout
        # A member down keeps quorum; booted again, it rejoins with the data on its disk.
        other.poweroff("m1")
        assert etcd.healthy(endpoints[1]) and etcd.healthy(endpoints[2])
        other.boot("m1")
        etcd.wait_healthy(endpoints, 30)
    finally:
        teardown(name)
    assert not [n for n in network.netns_names() if n.startswith(other.instance.prefix)]
    # The session's sandbox was not touched.
    assert (instance().state_dir / "state.json").read_bytes() == session_state
    assert all(sandbox.running(m.name) for m in sandbox.machines)


def test_unit_written_in_a_machine_starts_there_only(sandbox: Sandbox) -> None:
    unit = "[Service]\nExecStart=/bin/sh -c 'echo $(hostname) > /run/hello; exec sleep infinity'\n"
    path = "/etc/systemd/system/sandbox-hello.service"
    write = sandbox.exec("m2", "sh", "-c", f"cat > {path}", input=unit)
    assert write.returncode == 0, write.stderr
    try:
        assert sandbox.exec("m2", "systemctl", "daemon-reload").returncode == 0
        start = sandbox.exec("m2", "systemctl", "start", "sandbox-hello.service")
        assert start.returncode == 0, start.stderr
        active = sandbox.exec("m2", "systemctl", "is-active", "sandbox-hello.service")
        assert active.stdout.strip() == "active"
        assert sandbox.exec("m2", "cat", "/run/hello").stdout.strip() == "m2"
        # The other machines have their own systemd and their own root.
        other = sandbox.exec("m1", "systemctl", "is-active", "sandbox-hello.service")
        assert other.stdout.strip() == "inactive"
        assert sandbox.exec("m1", "test", "-e", path).returncode == 1
    finally:
        sandbox.exec("m2", "systemctl", "stop", "sandbox-hello.service")
        sandbox.exec("m2", "rm", "-f", path)
        sandbox.exec("m2", "systemctl", "daemon-reload")


def test_partition_cuts_and_heal_restores_connectivity(sandbox: Sandbox, wait_for: WaitFor) -> None:
    etcd_url = sandbox.etcd_endpoints[0]
    m1_url = f"http://{sandbox.machine('m1').ip}:22"  # any port: "refused" means reachable
    assert can_connect(sandbox, "m2", etcd_url)
    sandbox.partition("m2")
    try:
        assert sandbox.machine("m2").partitioned
        assert not network.link_up(sandbox.machine("m2").veth)
        assert not can_connect(sandbox, "m2", etcd_url)
        ping = sandbox.exec("m2", "timeout", "2", "bash", "-c", f"</dev/tcp/{m1_url[7:-3]}/22")
        assert "No route to host" in ping.stderr or ping.returncode == 124
        assert sandbox.running("m2")  # cut off, not powered off
    finally:
        sandbox.heal("m2")
    assert not sandbox.machine("m2").partitioned
    wait_for(lambda: can_connect(sandbox, "m2", etcd_url), 5, "m2 reaches etcd after heal")


def test_cut_from_etcd_leaves_the_rest_of_the_network(sandbox: Sandbox, wait_for: WaitFor) -> None:
    etcd_url = sandbox.etcd_endpoints[0]
    m1_api = f"http://{sandbox.machine('m1').ip}:{API_PORT}"
    sandbox.cut("m2", Cut.ETCD_CLIENTS)
    try:
        assert sandbox.machine("m2").cuts == (Cut.ETCD_CLIENTS.value,)
        assert not can_connect(sandbox, "m2", etcd_url)
        assert can_connect(sandbox, "m2", m1_api)  # only etcd's client port is cut
        assert can_connect(sandbox, "m3", etcd_url)
        with pytest.raises(SandboxError, match="no etcd member"):
            sandbox.cut("m2", Cut.ETCD_PEERS)  # etcd runs on the host here
    finally:
        sandbox.heal("m2")
    assert sandbox.machine("m2").cuts == ()
    wait_for(lambda: can_connect(sandbox, "m2", etcd_url), 5, "m2 reaches etcd after heal")


def test_poweroff_and_boot_keep_the_machine_identity(sandbox: Sandbox, wait_for: WaitFor) -> None:
    before = sandbox.machine("m3")
    marker = sandbox.exec("m3", "sh", "-c", "echo kept > /var/tmp/sandbox-disk")
    assert marker.returncode == 0
    sandbox.poweroff("m3")
    after = sandbox.machine("m3")
    assert not sandbox.running("m3")
    assert after.systemd_pid is None
    assert not host.alive(before.systemd_pid) and not host.alive(before.launcher_pid)
    with pytest.raises(SandboxError, match="not running"):
        sandbox.exec("m3", "true")
    # The rest of the cluster is unaffected.
    assert sandbox.running("m1") and sandbox.running("m2")

    sandbox.boot("m3")
    assert sandbox.running("m3")
    assert sandbox.exec("m3", "cat", "/etc/machine-id").stdout.strip() == before.machine_id
    assert sandbox.exec("m3", "cat", "/var/tmp/sandbox-disk").stdout.strip() == "kept"
    state = sandbox.exec("m3", "systemctl", "is-system-running").stdout.strip()
    assert state in ("running", "degraded")
    wait_for(lambda: can_connect(sandbox, "m3", sandbox.etcd_endpoints[0]), 5, "m3 reaches etcd")
    with pytest.raises(SandboxError, match="already running"):
        sandbox.boot("m3")


def test_systemctl_reboot_inside_boots_the_machine_again(sandbox: Sandbox) -> None:
    def boot_id() -> str:
        return sandbox.exec("m2", "cat", "/proc/sys/kernel/random/boot_id").stdout.strip()

    before = sandbox.machine("m2")
    boots = sandbox.boots("m2")
    first = boot_id()
    assert first and first != Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    marker = sandbox.exec("m2", "sh", "-c", "echo kept > /var/tmp/disk; echo gone > /run/volatile")
    assert marker.returncode == 0
    old_pid1 = sandbox.systemd_pid("m2")

    sandbox.exec("m2", "systemctl", "reboot")
    sandbox.wait_rebooted("m2", boots, timeout=60)

    assert sandbox.boots("m2") == boots + 1
    assert sandbox.systemd_pid("m2") not in (None, old_pid1)
    assert not host.alive(old_pid1)
    assert boot_id() not in ("", first)
    boots_seen = sandbox.exec("m2", "journalctl", "--list-boots", "--no-pager").stdout
    assert first.replace("-", "") in boots_seen
    # Same identity, disk and address; a fresh /run; fleetd started again.
    assert sandbox.exec("m2", "cat", "/etc/machine-id").stdout.strip() == before.machine_id
    assert sandbox.exec("m2", "hostname").stdout.strip() == "m2"
    assert sandbox.exec("m2", "cat", "/var/tmp/disk").stdout.strip() == "kept"
    assert sandbox.exec("m2", "test", "-e", "/run/volatile").returncode == 1
    address = sandbox.exec("m2", "ip", "-4", "-o", "addr", "show", "eth0").stdout
    assert f" {before.ip}/" in address
    assert sandbox.exec("m2", "systemctl", "is-active", "fleetd").stdout.strip() == "active"
    assert Keys().machine(before.machine_id) in etcd.keys(sandbox.etcd_endpoints, Keys().machines)
    assert sandbox.machine("m2").launcher_pid == before.launcher_pid  # the same supervisor
    status = {m.name: m for m in sandbox.status().machines}
    assert status["m2"].boots == boots + 1 and not status["m2"].rebooting


def test_a_partitioned_machine_boots_and_registers_once_healed(
    sandbox: Sandbox, wait_for: WaitFor
) -> None:
    key = Keys().machine(sandbox.machine("m3").machine_id)
    sandbox.partition("m3")
    try:
        sandbox.poweroff("m3")
        wait_for(
            lambda: key not in etcd.keys(sandbox.etcd_endpoints, Keys().machines),
            15,
            "m3's registration goes away when it powers off",
        )
        sandbox.boot("m3")  # returns although fleetd cannot reach etcd
        assert sandbox.running("m3")
        assert key not in etcd.keys(sandbox.etcd_endpoints, Keys().machines)
    finally:
        sandbox.heal("m3")
    sandbox.wait_registered(["m3"], 30)
    assert key in etcd.keys(sandbox.etcd_endpoints, Keys().machines)


def test_second_up_is_refused_and_changes_nothing(sandbox: Sandbox, state_dir: Path) -> None:
    before = (state_dir / "state.json").read_bytes()
    with pytest.raises(SandboxError, match="already running"):
        Sandbox.up(SandboxSpec(machines=3, fleetd=False))
    cli = subprocess.run(
        [sys.executable, "-m", "fleetd.sandbox.cli", "up", "--machines", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cli.returncode != 0
    assert "already running" in cli.stderr
    assert (state_dir / "state.json").read_bytes() == before
    assert all(sandbox.running(m.name) for m in sandbox.machines)


def test_cli_status_and_env(sandbox: Sandbox) -> None:
    def cli(*args: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "fleetd.sandbox.cli", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return proc.stdout

    status = json.loads(cli("status", "--json"))
    assert [m["name"] for m in status["machines"]] == ["m1", "m2", "m3"]
    assert all(m["systemd"] in ("running", "degraded") for m in status["machines"])
    assert all(healthy for _, healthy in status["etcd"])
    env = cli("env")
    assert f"export FLEETCTL_ENDPOINT=http://{sandbox.machine('m1').ip}:49153" in env
    assert f"export FLEETCTL_TOKEN={sandbox.token}" in env
    assert cli("exec", "m2", "--", "hostname").strip() == "m2"


def test_down_leaves_nothing_behind(
    sandbox: Sandbox, session_sandbox: Any, state_dir: Path
) -> None:
    """Runs last in this module: tears the session sandbox down, checks, brings it back."""
    machines = sandbox.machines
    pids = [p for m in machines for p in (m.systemd_pid, m.launcher_pid)]
    state = json.loads((state_dir / "state.json").read_text())
    pids.append(state["etcd_pid"])
    assert all(host.alive(pid) for pid in pids)
    session_sandbox.down()
    try:
        if session_sandbox.host_before is not None:
            assert session_sandbox.host_before == session_sandbox.snapshot()
        prefix = instance().prefix
        assert not [n for n in network.netns_names() if n.startswith(prefix)]
        assert not [n for n in network.link_names() if n.startswith(prefix)]
        assert not [m for m in machines if Path(f"/run/netns/{m.netns}").exists()]
        mounts = Path("/proc/self/mountinfo").read_text()
        assert str(state_dir) not in mounts
        assert not (host.cgroup2_root() / instance().cgroup_name).exists()
        assert not state_dir.exists()
        assert not [pid for pid in pids if host.alive(pid)]
        assert not [
            pid
            for pid in os.listdir("/proc")
            if pid.isdigit() and _is_machine_process(int(pid), instance())
        ]
    finally:
        session_sandbox.ensure_up()


def _is_machine_process(pid: int, inst: Instance) -> bool:
    """A live process in the sandbox's cgroup would be a leftover of a machine or etcd."""
    if not host.alive(pid):
        return False
    try:
        cgroup = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False
    name = inst.cgroup_name
    return f"/{name}/" in cgroup or cgroup.rstrip().endswith(f"/{name}")
