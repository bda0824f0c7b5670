"""Cluster-wide counts for ``/metrics`` without a registry read per scrape.

Where this process's engine leads, its model holds the whole cluster already
(kept current by its watches): the counts come from there, at no registry
cost.  Elsewhere (another machine leads, or no engine runs here) one read of
units, schedule, machines, flags and placement reasons is kept for ``ttl``
seconds, and concurrent scrapes share one read; so a fleetd costs the registry
at most one such read per ``ttl`` however often, and by however many
scrapers, it is scraped.  Unit states (written by every agent) are not
counted here: each agent shows its own (``fleetd_agent_units``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from fleetd.registry.store import Store

from .collectors import ClusterCounts, EngineView
from .service import queries

CLUSTER_TTL = 10.0
"""Seconds a registry read of the cluster serves scrapes (where the engine does not lead)."""


class Census:
    def __init__(
        self,
        store: Store,
        *,
        engine: EngineView | None = None,
        ttl: float = CLUSTER_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl < 0:
            raise ValueError("the cluster counts' ttl must not be negative")
        self.store = store
        self.engine = engine
        self.ttl = ttl
        self.clock = clock
        self._kept: ClusterCounts | None = None
        self._until = float("-inf")
        self._lock = asyncio.Lock()

    async def counts(self, *, may_read: bool = True) -> ClusterCounts | None:
        """The counts from the engine's model, from a read younger than ``ttl``, or read
        now (raises FleetError if that fails); None if a read is due but not ``may_read``
        (the registry just did not answer)."""
        if self.engine is not None and (found := self.engine.cluster()) is not None:
            return found
        if self._fresh():
            return self._kept
        if not may_read:
            return None
        async with self._lock:  # one read for the scrapes that wait here
            if not self._fresh():
                self._kept = await self._read()
                self._until = self.clock() + self.ttl
            return self._kept

    def _fresh(self) -> bool:
        return self._kept is not None and self.clock() < self._until

    async def _read(self) -> ClusterCounts:
        snap = await queries.snapshot(
            self.store, units=True, schedule=True, machines=True, flags=True, placements=True
        )
        return ClusterCounts.count(
            desired=(u.desired for u in snap.units),
            machines=snap.machines,
            flags=snap.flags.values(),
            unplaceable=len(snap.placements),
            scheduled=len(snap.schedule),
        )
