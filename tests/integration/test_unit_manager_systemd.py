"""The UnitManager contract (tests/unit_manager_contract.py) against real systemd.

``SystemdManager`` runs in the test process and connects to the system bus of
sandbox machine m2 through ``/proc/<its systemd>/root`` (machines share the
host's user namespace, so the bus accepts root from the host); unit files go
to a directory of this run inside the machine.  The same tests run against
``FakeSystemd`` in tests/component/test_unit_manager_contract.py.
"""

from __future__ import annotations

import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from unit_manager_contract import *  # noqa: F403 (the contract's tests)
from unit_manager_contract import Recorder

from fleetd.agent.systemd import SystemdManager
from fleetd.agent.units import UnitManager
from fleetd.errors import SystemdError
from fleetd.sandbox.cluster import Sandbox

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

MACHINE = "m2"


class SystemdBackend:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        pid = sandbox.machine(MACHINE).systemd_pid
        assert pid is not None
        self.host_root = Path(f"/proc/{pid}/root")
        self.bus = f"unix:path={self.host_root}/run/dbus/system_bus_socket"
        self.tag = uuid.uuid4().hex[:8]
        self.dir = f"/run/fleet-contract-{self.tag}"
        (self.host_root / self.dir.lstrip("/")).mkdir(parents=True)
        self.runtime_dir = self.host_root / "run/systemd/system"
        self.recorder = Recorder()
        self.seen = self.recorder.seen
        self.manager: UnitManager = self._manager(job_timeout=30.0)
        self.manager.subscribe(self.recorder.change, self.recorder.shutdown)
        self.names: list[str] = []
        self._counter = itertools.count()
        self._others: list[UnitManager] = []

    def _manager(self, job_timeout: float) -> SystemdManager:
        return SystemdManager(
            bus_address=self.bus,
            job_timeout=job_timeout,
            runtime_dir=self.runtime_dir,
            fence_name=f"fence-contract-{self.tag}",  # apart from the machine's fleetd
        )

    def name(self, stem: str, suffix: str = ".service") -> str:
        name = f"{stem}-{self.tag}-{next(self._counter)}{suffix}"
        self.names.append(name)
        return name

    def _host(self, name: str) -> Path:
        return self.host_root / self.dir.lstrip("/") / name

    def write(self, name: str, text: str) -> str:
        if name not in self.names:
            self.names.append(name)
        self._host(name).write_text(text)
        return f"{self.dir}/{name}"

    def remove(self, name: str) -> None:
        self._host(name).unlink()

    def runtime_link(self, relative: str) -> bool:
        return (self.runtime_dir / relative).is_symlink()

    async def systemctl(self, verb: str, name: str) -> None:
        proc = self.sandbox.exec(MACHINE, "systemctl", "--no-block", verb, name)
        assert proc.returncode == 0, proc.stderr

    async def new_manager(self, job_timeout: float) -> UnitManager:
        manager = self._manager(job_timeout)
        await manager.connect()
        self._others.append(manager)
        return manager

    async def close(self) -> None:
        """Stop and forget every unit of this run; leave the machine as it was."""
        for other in self._others:
            await other.close()
        manager = self._manager(job_timeout=30.0)
        await manager.connect()
        try:
            await manager.disarm_fence()
            names = [n for n in self.names if "." in n]
            for name in names:
                await manager.stop(name)
                with contextlib.suppress(SystemdError):  # a unit without [Install] or file
                    await manager.disable([name])
                await manager.reset_failed(name)
                manager.unlink(f"{self.dir}/{name}")
            self.sandbox.exec(MACHINE, "rm", "-rf", self.dir)
            await manager.reload()
        finally:
            await manager.close()
            await self.manager.close()


@pytest.fixture
async def backend(sandbox: Sandbox) -> AsyncIterator[SystemdBackend]:
    backend = SystemdBackend(sandbox)
    await backend.manager.connect()
    try:
        yield backend
    finally:
        await backend.close()
