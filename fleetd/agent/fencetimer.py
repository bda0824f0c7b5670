"""systemd's own fence: this machine's ``AtMostOnce`` units stop at the fencing deadline
even when fleetd cannot stop them (killed and slow to come back, paused, hung).

The deadline is the in-process fence's (fencing.py): ``last_renewed + TTL -
margin``, on the agent's clock.  After each successful keep-alive, and when the
set of ``AtMostOnce`` units whose files are here changes, the agent re-arms the
fence (``UnitManager.arm_fence``) with the time left until that deadline; from
then on systemd counts it on its own monotonic clock, so the agent's clock
(injected) and systemd's need only run at the same rate.  A healthy agent
pushes the deadline back every TTL/2 and the fence never fires; a dead one
leaves it armed, and systemd stops the units at the moment the agent would have,
before the engine may start them elsewhere (lease TTL plus its grace).

Nothing is armed or disarmed before this process has registered (re-attached to
its saved lease or got a new one) and adopted the unit files it found: until
then a fence left by a dead fleetd stays as it was.  A stopping fleetd leaves
the fence armed (with nobody renewing the lease, firing is right).  A reboot
starts with none (transient units live in /run).  With no ``AtMostOnce`` unit
here the fence is disarmed.

``cover`` is awaited before the agent starts units: it re-arms first if an
``AtMostOnce`` unit here is not in the armed fence, so none runs unfenced.

A deadline that passed before the fence was replaced (fleetd paused, systemd
out of reach or slow: the old timer is stopped only after the new one started)
may have stopped the units although the lease survived: ``on_lapsed`` gets
every ``AtMostOnce`` unit here, so the agent starts them again if they are
still scheduled here.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Iterable

from fleetd.agent.presence import Presence
from fleetd.agent.units import UnitManager
from fleetd.errors import SystemdError

log = logging.getLogger(__name__)


class FenceTimer:
    def __init__(
        self,
        *,
        manager: UnitManager,
        presence: Presence,
        margin: float,
        units: Callable[[], frozenset[str]],
        on_lapsed: Callable[[frozenset[str]], None] = lambda names: None,
        max_sleep: float = 1.0,
    ) -> None:
        """``units``: the ``AtMostOnce`` units whose files are here now."""
        self.manager = manager
        self.presence = presence
        self.margin = margin
        self.units = units
        self.on_lapsed = on_lapsed
        self.max_sleep = max_sleep
        self.armed: frozenset[str] | None = None  # None: nothing done since this process began
        self.deadline = math.inf  # when the fence this process armed fires (agent's clock)
        self.arms = 0
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    def trigger(self) -> None:
        """Re-arm soon (a keep-alive succeeded, the units here changed)."""
        self._wake.set()

    def target(self) -> float:
        """The fencing deadline now: the in-process fence's."""
        p = self.presence
        return p.last_renewed + p.ttl - self.margin

    async def sync(self) -> None:
        """Arm the fence for the units here at ``target()``, or disarm it if there are none.

        Does nothing before the first registration, or while the lease is not known to
        be alive (the fence armed before fires at its deadline).  Raises SystemdError.
        """
        async with self._lock:
            p = self.presence
            if not p.registered.is_set() or p.lease == 0 or not self.manager.connected:
                return
            before = self.deadline
            try:
                names, target = self.units(), self.target()
                if not names:
                    if self.armed != frozenset():
                        await self.manager.disarm_fence()
                        self.armed, self.deadline = frozenset(), math.inf
                elif target > p.clock() and (names != self.armed or target != self.deadline):
                    await self.manager.arm_fence(sorted(names), target - p.clock())
                    self.armed, self.deadline = names, target
                    self.arms += 1
            finally:
                # The fence in force until ``before`` was replaced only now, or not at all:
                # if that is past its deadline, it may have fired.
                if p.clock() >= before:
                    self._lapsed()
                    if self.deadline == before:  # not replaced: it is gone now
                        self.armed, self.deadline = frozenset(), math.inf

    def _lapsed(self) -> None:
        names = self.units() | (self.armed or frozenset())
        log.warning(
            "fence units=%d reason='deadline passed before it was pushed back: "
            "systemd may have stopped them'",
            len(names),
        )
        self.on_lapsed(names)

    async def cover(self, starting: Iterable[str]) -> None:
        """Before ``starting`` start: make sure the ``AtMostOnce`` units among them are in
        the armed fence.  Raises SystemdError if they cannot be (the start is retried)."""
        needed = self.units() & set(starting)
        if needed and not (self.armed and needed <= self.armed and self.deadline > self._now()):
            await self.sync()
            if not (self.armed and needed <= self.armed):
                raise SystemdError(
                    f"cannot arm systemd's fence for {len(needed)} AtMostOnce units yet"
                )

    def _now(self) -> float:
        return self.presence.clock()

    async def run(self) -> None:
        """Sync after every trigger and at least every ``max_sleep`` seconds."""
        while True:
            try:
                await self.sync()
            except SystemdError as exc:
                log.warning("arming systemd's fence failed: %s; retrying", exc)
            try:
                async with asyncio.timeout(self.max_sleep):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
