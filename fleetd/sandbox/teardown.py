"""``fleetd sandbox down``: remove everything a sandbox created, even after a crash of ``up``."""

from __future__ import annotations

import signal
from pathlib import Path

from fleetd.errors import SandboxError
from fleetd.sandbox import host, machine, network
from fleetd.sandbox import state as st
from fleetd.sandbox.state import Instance, instance


def teardown(name: str | Instance | None = None) -> list[str]:
    """Power off and remove everything the sandbox created; works on partial state.

    Returns what was removed (empty when there was nothing).  Only objects the
    state file names, or that carry the sandbox's prefix, are touched.
    """
    inst = name if isinstance(name, Instance) else instance(name)
    state_dir = inst.state_dir
    removed: list[str] = []
    try:
        state = st.load(state_dir)
    except SandboxError:
        state = None
    machines = state.machines if state else ()
    # Each machine's PID 1 as it is now (a reboot changes it); then its launcher goes
    # first, so that no machine is booted again.
    pid1 = {m.name: machine.current_systemd(m.launcher_pid) for m in machines}
    for ms in machines:
        host.signal_pid(ms.launcher_pid, signal.SIGKILL, machine.LAUNCHER)
    running = [m for m in machines if host.alive(pid1[m.name], "systemd")]
    for ms in running:
        host.signal_pid(pid1[ms.name], signal.SIGRTMIN + 4, "systemd")
    pids = [p for m in machines for p in (pid1[m.name], m.launcher_pid)]
    if not host.wait_gone(pids, 10.0):
        for ms in machines:
            machine.kill(ms.launcher_pid, pid1[ms.name])
    removed += [f"machine {m.name}" for m in running]
    if state and host.alive(state.etcd_pid, "etcd"):
        host.stop_pid(state.etcd_pid, "etcd")
        removed.append("etcd")
    cgroup = Path(state.cgroup) if state else _default_cgroup(inst)
    if cgroup is not None and cgroup.exists():
        host.cgroup_kill(cgroup)
        host.cgroup_remove(cgroup)
        removed.append(f"cgroup {cgroup}")
    for netns in sorted({m.netns for m in machines} | set(network.owned_netns(inst.prefix))):
        if netns in network.netns_names():
            network.delete_netns(netns)
            removed.append(f"netns {netns}")
    links = {m.veth for m in machines} | set(network.owned_links(inst.prefix))
    if state:
        links.add(state.bridge)
    for link in sorted(links):
        if link in network.link_names():
            network.delete_link(link)
            removed.append(f"link {link}")
    for mount in host.mounts_under(state_dir):
        if host.run(["umount", mount], check=False).returncode != 0:
            host.run(["umount", "-l", mount])
        removed.append(f"mount {mount}")
    if state_dir.exists():
        host.run(["rm", "-rf", "--one-file-system", str(state_dir)])
        removed.append(f"state {state_dir}")
    return removed


def _default_cgroup(inst: Instance) -> Path | None:
    try:
        return host.cgroup2_root() / inst.cgroup_name
    except SandboxError:
        return None
