"""``systemctl status`` and ``journalctl -u`` of a ``FakeSystemd`` machine, for the API
(``fleetd.api.service.inspector.UnitInspector``): exit codes and text shaped like systemctl's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fleetd.agent.fakesystemd import FakeSystemd

FOLLOW_POLL = 0.02


class FakeInspector:
    def __init__(self, systemd: FakeSystemd) -> None:
        self.systemd = systemd

    async def status(self, name: str) -> tuple[int, str]:
        """``(0 active | 3 not active | 4 no such unit, text)``, as systemctl answers."""
        unit = self.systemd.unit(name)
        if unit is None:
            return 4, f"Unit {name} could not be found.\n"
        lines = [
            f"● {name} - {unit.description}",
            f"     Loaded: {unit.load_state}",
            f"     Active: {unit.active_state} ({unit.sub_state})",
        ]
        if unit.main_pid:
            lines.append(f"   Main PID: {unit.main_pid}")
        lines += ["", *unit.journal[-10:]]
        return (0 if unit.active_state == "active" else 3), "\n".join(lines) + "\n"

    async def journal(
        self, name: str, lines: int, follow: bool, output: str = "short"
    ) -> AsyncIterator[bytes]:
        """The unit's messages; the fake journal has only messages, so every ``output``
        mode prints them as ``cat`` would."""
        unit = self.systemd.unit(name)
        journal = unit.journal if unit is not None else []
        sent = max(0, len(journal) - lines)
        while True:
            for line in journal[sent:]:
                yield f"{line}\n".encode()
            sent = len(journal)
            if not follow:
                return
            await asyncio.sleep(FOLLOW_POLL)  # journalctl --follow waits for new entries
