"""A fake of the machine actions of maintenance (fleetd/agent/hostactions.py) for the
in-process cluster: a reboot reboots the node (its fake systemd powers off and boots,
with a new boot id), at once or, while ``hold`` is set, once the test releases it
(it sees the machine mid-reboot); a command "runs" at once, its exit status chosen
by the test (``status``; by default 1 for ``false``, else 0), and is remembered in
``commands``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from fleetd.agent.hostactions import CommandResult
from fleetd.errors import NotFound

if TYPE_CHECKING:
    from fleetd.testing.cluster import Node


def _status(argv: Sequence[str]) -> int:
    return 1 if argv and argv[0].rsplit("/", 1)[-1] == "false" else 0


class FakeHostActions:
    def __init__(self, node: Node, status: Callable[[Sequence[str]], int] = _status) -> None:
        self.node = node
        self.status = status
        self.commands: list[tuple[str, ...]] = []
        self.reboots = 0
        self.hold: asyncio.Event | None = None
        self._results: dict[str, CommandResult] = {}

    async def reboot(self) -> None:
        self.reboots += 1
        self.node.cluster.spawn(f"reboot-{self.node.id}-{self.reboots}", self._reboot())

    async def _reboot(self) -> None:
        if self.hold is not None:
            await self.hold.wait()
        await self.node.reboot()

    async def start(self, unit: str, argv: Sequence[str]) -> None:
        self.commands.append(tuple(argv))
        status = self.status(argv)
        self._results[unit] = CommandResult(status, f"{argv[0]}: exit status {status}")

    async def result(self, unit: str) -> CommandResult | None:
        if unit not in self._results:
            raise NotFound(f"no command {unit}")
        return self._results[unit]

    async def clean(self, unit: str) -> None:
        self._results.pop(unit, None)
