"""The UnitManager contract (tests/unit_manager_contract.py) against ``FakeSystemd``.

The same tests run against real systemd in a sandbox machine:
tests/integration/test_unit_manager_systemd.py.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from unit_manager_contract import *  # noqa: F403 (the contract's tests)
from unit_manager_contract import Recorder

from fleetd.agent.fakebus import FakeConnection
from fleetd.agent.fakesystemd import FakeSystemd
from fleetd.agent.units import UnitManager

_names = itertools.count()


class FakeBackend:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = root / "units"
        self.files.mkdir(parents=True)
        self.recorder = Recorder()
        self.seen = self.recorder.seen
        self.fake = FakeSystemd(root / "machine")
        self.connection = FakeConnection(self.fake, job_timeout=5.0)
        self.connection.subscribe(self.recorder.change, self.recorder.shutdown)
        self.manager: UnitManager = self.connection

    def name(self, stem: str, suffix: str = ".service") -> str:
        return f"{stem}-{next(_names)}{suffix}"

    def write(self, name: str, text: str) -> str:
        path = self.files / name
        path.write_text(text)
        return str(path)

    def remove(self, name: str) -> None:
        (self.files / name).unlink()

    def runtime_link(self, relative: str) -> bool:
        return (self.fake.runtime_dir / relative).is_symlink()

    async def systemctl(self, verb: str, name: str) -> None:
        self.fake.systemctl(verb, name)

    async def new_manager(self, job_timeout: float) -> UnitManager:
        manager = FakeConnection(self.fake, job_timeout=job_timeout)
        await manager.connect()
        return manager


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[FakeBackend]:
    backend = FakeBackend(tmp_path)
    await backend.connection.connect()
    yield backend
    await backend.connection.close()
