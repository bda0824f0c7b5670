"""Drive one agent (``python -m fleetd.agent``) inside a sandbox machine through the registry.

Each harness has its own key prefix, units directory and lease file, so it
never meets the machine's own fleetd (if any): it writes ``units/<name>`` and
``schedule/<machine>/<name>`` itself, as the engine would, and reads back
``states/`` and ``machines/``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from fleetd.model import DesiredState, ScheduleEntry, Unit, UnitState
from fleetd.registry.etcd import EtcdRegistry
from fleetd.registry.keys import Keys
from fleetd.registry.store import Store
from fleetd.sandbox.cluster import Sandbox
from fleetd.unitfile import UnitFile

T = TypeVar("T")


async def until(
    probe: Callable[[], Awaitable[T]], within: float, message: str, interval: float = 0.05
) -> T:
    """Await ``probe()`` until it returns something truthy; AssertionError at the deadline."""
    deadline = time.monotonic() + within
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message} (waited {within:g}s)")
        await asyncio.sleep(interval)


class AgentHarness:
    def __init__(self, sandbox: Sandbox, machine: str, ttl: float = 10.0) -> None:
        self.sandbox = sandbox
        self.name = machine
        self.machine_id = sandbox.machine(machine).machine_id
        self.tag = uuid.uuid4().hex[:8]
        self.keys = Keys(f"/agent-{self.tag}/")
        self.root = f"/run/fleet-agent-{self.tag}"
        self.units_directory = f"{self.root}/units"
        self.service = f"fleet-agent-{self.tag}.service"
        self.ttl = ttl
        self.registry = EtcdRegistry(sandbox.etcd_endpoints, timeout=5.0)
        self.store = Store(self.registry, self.keys)

    def unit(self, stem: str, suffix: str = ".service") -> str:
        """A unit name unique to this harness (runtime links are shared by the machine)."""
        return f"{stem}-{self.tag}{suffix}"

    # --- the agent process --------------------------------------------------

    def exec(self, *cmd: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return self.sandbox.exec(self.name, *cmd, timeout=timeout)

    def start(self) -> None:
        self.exec("systemctl", "reset-failed", self.service)
        proc = self.exec(
            "systemd-run",
            f"--unit={self.service}",
            "--property=After=dbus.service",
            f"--setenv=FLEETD_ETCD_KEY_PREFIX={self.keys.prefix}",
            f"--setenv=FLEETD_UNITS_DIRECTORY={self.units_directory}",
            f"--setenv=FLEETD_AGENT_TTL={self.ttl:g}s",
            sys.executable,
            "-m",
            "fleetd.agent",
            "--lease-file",
            f"{self.root}/lease",
        )
        assert proc.returncode == 0, proc.stderr

    def stop(self) -> None:
        self.exec("systemctl", "stop", self.service)

    def kill(self) -> None:
        self.exec("systemctl", "kill", "--signal=KILL", self.service)

    def log(self, current: bool = False) -> str:
        """The agent's log: every run, or only the ``current`` one."""
        match = [f"_SYSTEMD_UNIT={self.service}"]
        if current:
            invocation = self.show(self.service, "InvocationID")
            match = [f"_SYSTEMD_INVOCATION_ID={invocation}"]
        return self.exec("journalctl", "--no-pager", "-o", "cat", *match).stdout

    async def reattached(self) -> bool:
        """The current run re-attached to the lease it found (it did not grant a new one)."""
        return "reason='re-attached'" in self.log(current=True)

    def actions(self) -> list[str]:
        """The agent's ``verb unit=...`` log lines, in order."""
        verbs = ("stop unit=", "unload unit=", "load unit=", "start unit=", "reload reason=")
        return [
            line.split(": ", 1)[-1]
            for line in self.log().splitlines()
            if any(f": {v}" in line for v in verbs)
        ]

    # --- systemd inside the machine -----------------------------------------

    def show(self, unit: str, prop: str) -> str:
        return self.exec("systemctl", "show", "-p", prop, "--value", unit).stdout.strip()

    def active(self, unit: str) -> str:
        return self.show(unit, "ActiveState")

    def main_pid(self, unit: str) -> int:
        return int(self.show(unit, "MainPID") or 0)

    def file_exists(self, path: str) -> bool:
        return self.exec("test", "-e", path).returncode == 0

    # --- the registry (as the engine and API would write it) ----------------

    async def schedule(
        self, name: str, text: str, desired: DesiredState = DesiredState.LAUNCHED
    ) -> str:
        unit_file = UnitFile.from_text(text)
        await self.store.put_unit(Unit(name, unit_file.text, unit_file.hash, desired))
        op = self.store.schedule_op(ScheduleEntry(self.machine_id, name, unit_file.hash, desired))
        await self.registry.put(op.key, op.value)
        return unit_file.hash

    async def unschedule(self, name: str) -> None:
        await self.registry.delete(self.keys.scheduled(self.machine_id, name))

    async def states(self) -> dict[str, UnitState]:
        return {s.name: s for s in await self.store.list_states(self.machine_id)}

    async def state(self, name: str) -> UnitState | None:
        return (await self.states()).get(name)

    async def registered(self) -> bool:
        return await self.store.get_machine(self.machine_id) is not None

    async def close(self) -> None:
        """Unschedule everything, let the agent clean up, stop it, drop the keys."""
        try:
            if self.sandbox.running(self.name):
                await self.registry.delete(self.keys.machine_schedule(self.machine_id), prefix=True)
                if self.exec("systemctl", "is-active", self.service).stdout.strip() == "active":
                    await until(self._clean, 30, "agent did not unload its units")
                self.stop()
                self.exec("rm", "-rf", self.root)
            await self.registry.delete(self.keys.prefix, prefix=True)
        finally:
            await self.registry.close()

    async def _clean(self) -> bool:
        listing = self.exec("ls", "-A", self.units_directory).stdout.strip()
        return listing == "" and not await self.states()
