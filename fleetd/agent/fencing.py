"""Fencing of ``AtMostOnce`` units during a partition.

When the machine lease has not been renewed for ``TTL - margin`` seconds the
agent must assume that the engine will soon declare the machine lost and
start its units elsewhere, so ``AtMostOnce`` units are stopped (the engine
waits the lease TTL plus a grace period before moving them).  ``last_renewed``
is when the last successful refresh was *sent*, so the fence engages at least
``margin`` seconds before the lease can expire, whatever the refresh interval.
The margin must leave room after the regular refresh (TTL/2, presence.py)
for its retries: a healthy machine never fences.  The fence lifts
only when the registration is valid again *and* the schedule was re-read
after that, so a unit moved away meanwhile is not started again here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from fleetd.agent.desired import ScheduleView
from fleetd.agent.presence import Presence
from fleetd.errors import InvalidInput, RegistryError

log = logging.getLogger(__name__)


def default_margin(ttl: float) -> float:
    """A fifth of the TTL, at least one second, but at most a quarter of it.

    The fence then engages at ``TTL - margin`` >= 3/4 TTL after the last refresh
    was sent: at least a quarter of the TTL after the next regular refresh
    (TTL/2) was due, room for its retries (at 30 s: 9 s; at 10 s: 3 s).
    """
    return min(max(1.0, ttl / 5), ttl / 4)


class Fence:
    def __init__(
        self,
        *,
        presence: Presence,
        schedule: ScheduleView,
        margin: float,
        on_change: Callable[[], None],
        max_sleep: float = 1.0,
    ) -> None:
        room = presence.ttl - presence.timing.interval
        if not 0 < margin < room:
            raise InvalidInput(
                f"fencing margin must be above 0 and below {room:g}s (TTL {presence.ttl:g}s "
                f"minus the refresh interval), got {margin:g}s"
            )
        self.presence = presence
        self.schedule = schedule
        self.margin = margin
        self.on_change = on_change
        self.max_sleep = max_sleep
        self.fenced = False

    def is_fenced(self) -> bool:
        return self.fenced

    async def check(self) -> None:
        """Update ``fenced`` once (calls ``on_change`` when it flips)."""
        valid = self.presence.valid_for(self.margin)
        if not self.fenced and not valid and self.presence.last_renewed > float("-inf"):
            age = self.presence.clock() - self.presence.last_renewed
            self.fenced = True
            log.warning(
                "fence units=AtMostOnce reason='lease not renewed for %.1fs (ttl %.0fs)'",
                age,
                self.presence.ttl,
            )
            self.on_change()
        elif self.fenced and valid:
            try:
                await self.schedule.refresh()
            except RegistryError as exc:
                log.warning("fence: cannot re-read the schedule yet: %s", exc)
                return
            self.fenced = False
            log.info("unfence units=AtMostOnce reason='registration valid again'")
            self.on_change()

    async def run(self) -> None:
        while True:
            await self.check()
            p = self.presence
            until = p.last_renewed + p.ttl - self.margin - p.clock()
            await asyncio.sleep(min(self.max_sleep, max(0.05, until)))
