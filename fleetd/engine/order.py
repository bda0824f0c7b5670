"""The order a scheduling pass visits units in: by name, MachineOf peers first (pure)."""

from __future__ import annotations

from collections.abc import Mapping

from fleetd.requirements import Requirements


def peer_order(jobs: Mapping[str, Requirements]) -> tuple[list[str], dict[str, str]]:
    """All job names, each after the peers it must run with, otherwise sorted by name.

    Returns the order and, for units caught in a MachineOf cycle, the reason
    they cannot be placed ("MachineOf cycle: a.service -> b.service -> a.service").
    Peers that are not jobs are ignored here (the unit is then unplaceable).
    """
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = being visited, 2 = done
    cycles: dict[str, str] = {}
    for root in sorted(jobs):
        if root in state:
            continue
        if not jobs[root].machine_of:  # the common case needs no search
            state[root] = 2
            order.append(root)
            continue
        # Iterative DFS: (name, index of the next peer to visit).
        stack: list[tuple[str, int]] = [(root, 0)]
        state[root] = 1
        while stack:
            name, i = stack[-1]
            peers = [p for p in sorted(jobs[name].machine_of) if p in jobs]
            if i < len(peers):
                stack[-1] = (name, i + 1)
                peer = peers[i]
                if peer not in state:
                    state[peer] = 1
                    stack.append((peer, 0))
                elif state[peer] == 1:
                    path = [n for n, _ in stack]
                    loop = [*path[path.index(peer) :], peer]
                    text = "MachineOf cycle: " + " -> ".join(loop)
                    for member in loop:
                        cycles.setdefault(member, text)
                continue
            stack.pop()
            state[name] = 2
            order.append(name)
    return order, cycles
