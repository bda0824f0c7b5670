"""Machines that vanish on the in-process cluster, for the mass-loss guard's scenarios
(test_guard_scenarios.py, test_cluster_settings.py)."""

from __future__ import annotations

from fleetd.testing.cluster import Cluster, Node

SERVICE = "[Unit]\nDescription=web\n\n[Service]\nExecStart=/bin/sleep 1000\n"


async def one_unit_per_machine(c: Cluster) -> dict[str, str]:
    """unit -> machine, one unit on each machine (spread over the machines by Conflicts)."""
    text = SERVICE + "\n[X-Fleet]\nConflicts=web@*\n"
    names = [f"web@{i}.service" for i in range(len(c.nodes))]
    for name in names:
        await c.submit(name, text)
    await c.wait_for(lambda: all(len(c.running(n)) == 1 for n in names), "one unit per machine")
    return {n: c.running(n)[0] for n in names}


async def vanish(*nodes: Node) -> None:
    """fleetd stops and the lease runs out on each of ``nodes`` at the same moment: the
    machines are absent, their units still run."""
    leases = [node.agent.presence.lease if node.agent is not None else 0 for node in nodes]
    for node in nodes:
        await node.stop()
    for node, lease in zip(nodes, leases, strict=True):
        await node.cluster.registry.revoke_lease(lease)
