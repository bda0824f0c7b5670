"""Integration fixtures: a session-wide sandbox of 3 real systemd machines.

Tests marked ``integration`` are skipped only when the host cannot run a
sandbox at all (not Linux, not root).  The sandbox is torn down at the end
of the session, also when tests fail, on Ctrl-C (pytest finalizers), on
SIGTERM (turned into KeyboardInterrupt) and, as a last resort, at exit.

Helpers: ``sandbox.exec(machine, *cmd)`` (a ``fleetd.sandbox.Sandbox``) and
the ``wait_for`` fixture (``wait_for(predicate, timeout, message)``).
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import pytest

from fleetd.sandbox import network
from fleetd.sandbox.cluster import Sandbox, teardown
from fleetd.sandbox.spec import SandboxSpec
from fleetd.sandbox.state import Instance, instance
from fleetd.sandbox.wait import wait_for as _wait_for

# m1..m3, each running fleetd (registered in etcd), etcd on the host bridge.
SESSION_SPEC = SandboxSpec(machines=3)


def _skip_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return "integration tests need Linux (namespaces + systemd)"
    if os.geteuid() != 0:
        return "integration tests need root (the sandbox creates namespaces and mounts)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _skip_reason()
    if reason is None:
        return
    for item in items:
        if item.get_closest_marker("integration"):
            item.add_marker(pytest.mark.skip(reason=reason))


class SessionSandbox:
    """Brings the session's sandbox up on demand; knows whether this process created it."""

    def __init__(self) -> None:
        self.ours = False
        self.up_seconds = 0.0
        self.host_before: dict[str, list[str]] | None = None

    def ensure_up(self) -> Sandbox:
        if self.ours:
            return Sandbox()
        if self.host_before is None:
            self.host_before = host_snapshot()
        started = time.monotonic()
        sandbox = Sandbox.up(SESSION_SPEC, timeout=120)
        self.up_seconds = time.monotonic() - started
        self.ours = True
        return sandbox

    @staticmethod
    def snapshot() -> dict[str, list[str]]:
        return host_snapshot()

    def down(self) -> None:
        if self.ours:
            self.ours = False
            teardown()


# Objects of any sandbox: names like fleetd-m1, fleetdx-br0, paths /run/fleetd-sandbox-x/...
_ANY_SANDBOX = re.compile(r"fleetd[a-z0-9]{0,4}-(m\d+|br0)\b|/run/fleetd-sandbox")


def host_snapshot() -> dict[str, list[str]]:
    """What `down` must restore exactly: network namespaces, links, mounts.

    Other sandboxes that come and go meanwhile on a shared host (another
    ``$FLEETD_SANDBOX``) are left out, as is this session's while it runs.
    """
    ours = instance()

    def keep(item: str) -> bool:
        return not _ANY_SANDBOX.search(item) or (
            ours.prefix in item or str(ours.state_dir) + "/" in item
        )

    mounts = [
        " ".join(line.split()[:3]) for line in Path("/proc/self/mounts").read_text().splitlines()
    ]
    return {
        "netns": sorted(filter(keep, network.netns_names())),
        "links": sorted(filter(keep, network.link_names())),
        "mounts": sorted(filter(keep, mounts)),
    }


_session = SessionSandbox()
atexit.register(_session.down)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def session_sandbox() -> Iterator[SessionSandbox]:
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield _session
    finally:
        try:
            _session.down()
        finally:
            signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="session")
def sandbox(session_sandbox: SessionSandbox) -> Sandbox:
    """A running 3-machine sandbox (m1..m3), shared by the whole session."""
    sb = session_sandbox.ensure_up()
    print(f"\nsandbox up --machines 3 took {session_sandbox.up_seconds:.1f}s")
    return sb


@pytest.fixture
def wait_for() -> Callable[[Callable[[], object], float, str], object]:
    """``wait_for(predicate, timeout, message)``: poll; TimeoutError at the deadline."""
    return _wait_for


@pytest.fixture
def sandbox_instance() -> Instance:
    """Which sandbox the session uses: ``$FLEETD_SANDBOX`` (e.g. to keep clear of another
    one on a shared host), else the default one."""
    return instance()


@pytest.fixture
def state_dir(sandbox_instance: Instance) -> Path:
    return sandbox_instance.state_dir
