"""A cluster of real systemd machines on one host, in Linux namespaces (docs/sandbox.md).

``Sandbox.up(SandboxSpec(machines=3))`` boots m1..m3 (systemd as PID 1, own
network/PID/mount/UTS/cgroup namespaces, an overlay of the host's root),
etcd and fleetd; ``teardown()`` removes all of it.  ``fleetd sandbox ...``
(cli.py) is the command-line face of the same API.
"""

from fleetd.sandbox.cluster import Sandbox
from fleetd.sandbox.spec import SandboxSpec
from fleetd.sandbox.teardown import teardown
from fleetd.sandbox.wait import wait_for

__all__ = ["Sandbox", "SandboxSpec", "teardown", "wait_for"]
