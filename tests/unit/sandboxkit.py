"""A sandbox's recorded state (``fleetd/sandbox/state.py``), for the tests of what reads
and writes it."""

from __future__ import annotations

from typing import Any

from fleetd.sandbox.state import SandboxState


def recorded(**fields: Any) -> SandboxState:
    """A one-member sandbox's state, with ``fields`` (binds, machines...) set."""
    base: dict[str, Any] = {
        "subnet": "10.87.0.0/24",
        "bridge": "br",
        "bridge_ip": "10.87.0.1",
        "etcd_endpoints": ("http://10.87.0.1:2379",),
        "etcd_members": 1,
        "cgroup": "/sys/fs/cgroup/x",
        "disks": "/run/x/disks",
        "token": None,
        "fleetd": True,
    }
    return SandboxState(**(base | fields))
