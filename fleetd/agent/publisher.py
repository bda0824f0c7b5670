"""Publishes what systemd reports about managed units to ``states/<machine>/<name>``,
with each unit's health (from ``agent.health.HealthMonitor``).

Every key is written under the machine lease, so everything a dead machine
published disappears with it.  Changes are coalesced for ``coalesce``
seconds and written in one batch; only units whose published value would
change are written.  While changes keep coming (``BURST_BATCHES`` batches
written in the last ``BURST_WINDOW`` seconds, as when hundreds of units
start at once) they are coalesced for ``burst_coalesce`` instead: one
transaction per ~50 ms rather than one per unit, which costs the agent and
etcd a fraction of the CPU, while a lone unit's changes (``activating``, then
``active``) are still each published within ``coalesce``.

With a new lease (or after a registry outage) the whole set is written again
and keys of units no longer managed are removed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence

from fleetd.agent.units import UnitStatus
from fleetd.errors import RegistryError
from fleetd.model import UnitHealth, UnitState
from fleetd.registry.store import Store
from fleetd.retry import Backoff

log = logging.getLogger(__name__)

BURST_BATCHES = 3
BURST_WINDOW = 0.25


def coalesce_delay(recent: Sequence[float], now: float, quiet: float, busy: float) -> float:
    """How long to gather changes before the next batch: ``busy`` if the last
    ``BURST_BATCHES`` batches (their write times, oldest first) all fell within
    ``BURST_WINDOW`` seconds before ``now``, else ``quiet``."""
    if len(recent) >= BURST_BATCHES and now - recent[-BURST_BATCHES] < BURST_WINDOW:
        return busy
    return quiet


class Publisher:
    def __init__(
        self,
        *,
        store: Store,
        machine: str,
        wall: Callable[[], float],
        coalesce: float = 0.005,
        burst_coalesce: float = 0.05,
        on_recovered: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.machine = machine
        self.wall = wall
        self.coalesce = coalesce
        self.burst_coalesce = burst_coalesce
        self.batches = 0  # transactions written
        self._written: deque[float] = deque(maxlen=BURST_BATCHES)  # when the last ones were
        self.on_recovered = on_recovered
        self.lease = 0
        self.hashes: dict[str, str] = {}
        self.statuses: dict[str, UnitStatus] = {}
        self._since: dict[str, float] = {}
        self._health: dict[str, UnitHealth] = {}
        self._published: dict[str, UnitState] = {}
        self._dirty: set[str] = set()
        self._sweep = False
        self._stopped = False
        self._wake = asyncio.Event()
        self.flushed = asyncio.Event()  # set whenever nothing is left to write

    # --- inputs -----------------------------------------------------------

    def set_lease(self, lease: int) -> None:
        """A (new or re-attached) lease: write everything again, drop stale keys."""
        self.lease = lease
        self._published.clear()
        self._dirty |= self.hashes.keys()
        self._sweep = True
        self._poke()

    def managed(self, name: str, hash_: str) -> None:
        if self.hashes.get(name) != hash_:
            self.hashes[name] = hash_
            self._dirty.add(name)
            self._poke()

    def unmanaged(self, name: str) -> None:
        if self.hashes.pop(name, None) is not None or name in self._published:
            self.statuses.pop(name, None)
            self._since.pop(name, None)
            self._health.pop(name, None)
            self._dirty.add(name)
            self._poke()

    def status(self, status: UnitStatus) -> None:
        old = self.statuses.get(status.name)
        if old is None or old.active_state != status.active_state:
            self._since[status.name] = self.wall()
        self.statuses[status.name] = status
        self._dirty.add(status.name)
        self._poke()

    def health(self, name: str, health: UnitHealth) -> None:
        """The unit's health changed (``HealthMonitor``); ignored for units not managed."""
        if name in self.hashes and self._health.get(name) != health:
            self._health[name] = health
            self._dirty.add(name)
            self._poke()

    def stop(self) -> None:
        """Publish nothing more (the machine is shutting down)."""
        self._stopped = True
        self._poke()

    def _poke(self) -> None:
        self.flushed.clear()
        self._wake.set()

    # --- output -----------------------------------------------------------

    def _state(self, name: str) -> UnitState | None:
        hash_, status = self.hashes.get(name), self.statuses.get(name)
        if hash_ is None or status is None:
            return None
        health = self._health.get(name, UnitHealth())
        return UnitState(
            self.machine,
            name,
            hash_,
            status.load_state,
            status.active_state,
            status.sub_state,
            self._since.get(name, 0.0),
            health.health,
            health.message,
            health.since,
        )

    async def flush(self) -> None:
        """Write pending changes in one batch (RegistryError leaves them pending)."""
        if self._stopped or not self.lease:
            return
        dirty, self._dirty = self._dirty, set()
        puts: dict[str, UnitState] = {}
        removed: set[str] = set()
        try:
            if self._sweep:
                stored = await self.store.list_states(self.machine)
                removed |= {s.name for s in stored} - self.hashes.keys()
            for name in dirty:
                state = self._state(name)
                if state is None:
                    if name not in self.hashes:
                        removed.add(name)
                elif self._published.get(name) != state:
                    puts[name] = state
            if puts or removed:
                await self.store.put_states(
                    self.machine, list(puts.values()), self.lease, sorted(removed)
                )
                self.batches += 1
                self._written.append(asyncio.get_running_loop().time())
        except RegistryError:
            self._dirty |= dirty
            raise
        self._sweep = False
        self._published.update(puts)
        for name in removed:
            self._published.pop(name, None)
        if puts or removed:
            log.debug("published %d states, removed %d", len(puts), len(removed))

    def next_delay(self, now: float) -> float:
        """How long the next batch gathers changes (``now``: the event loop's time)."""
        return coalesce_delay(self._written, now, self.coalesce, self.burst_coalesce)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = Backoff("publishing states", log)
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._stopped:
                continue
            await asyncio.sleep(self.next_delay(loop.time()))
            try:
                await self.flush()
            except RegistryError as exc:
                await backoff.failed(exc)
                self._wake.set()
                continue
            if backoff.succeeded():
                self.on_recovered()
            if not self._dirty:
                self.flushed.set()
