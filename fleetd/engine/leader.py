"""Engine leader election: a lease plus a create-if-absent transaction on ``engine/leader``.

Followers hold no lease and write nothing: they watch the leader key and
campaign (grant a lease, create the key if absent) when it disappears, and
read it every three TTLs in case a watch event was missed.  The leader refreshes
its lease every TTL/3 and knows the latest time the lease can still be
alive: it was refreshed no earlier than the moment the last successful
refresh was *sent*, so it lives at least until ``sent + ttl``.  It stops
acting ``margin`` seconds before that unless a refresh succeeds meanwhile.
Given ``lease_registry`` (a connection of its own to the registry), the
leader refreshes from a thread (engine/keeper.py), so that a leader busy
computing on its event loop keeps its lease.
Writes are fenced by the election revision anyway (Store.write_fenced), so a
paused leader that wakes up late cannot write even before it notices.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from fleetd.engine.keeper import LeaseKeeper
from fleetd.errors import FleetError, LeaseExpired, RegistryError, RegistryUnavailable
from fleetd.registry.base import EventType, Registry
from fleetd.registry.store import Changes, Store
from fleetd.retry import Backoff

log = logging.getLogger(__name__)


class Leadership:
    """Campaigns for and keeps engine leadership; ``elected``/``deposed`` mirror the state."""

    def __init__(
        self,
        store: Store,
        machine_id: str,
        *,
        ttl: int,
        clock: Callable[[], float],
        margin: float | None = None,
        lease_registry: Callable[[], Registry] | None = None,
    ) -> None:
        """``lease_registry``: makes a new connection to the registry, for refreshing the
        lease from a thread of its own (None: from this event loop)."""
        if ttl < 2:
            raise ValueError(f"leader lease TTL must be at least 2 seconds, got {ttl}")
        self.store = store
        self.machine_id = machine_id
        self.ttl = ttl
        self.clock = clock
        self.margin = margin if margin is not None else ttl / 6
        self.revision: int | None = None  # the fence, while leading
        self.lease = 0
        self.elections = 0  # times this process became leader
        self.elected = asyncio.Event()
        self.deposed = asyncio.Event()
        self.deposed.set()
        self._refreshed_at = 0.0  # when the last successful refresh was sent
        self._vacant = asyncio.Event()
        self._lease_registry = lease_registry
        self._keeper: LeaseKeeper | None = None
        self._news = asyncio.Event()  # the keeper found the lease gone

    def leading(self) -> int | None:
        """The fence revision while we lead and our lease cannot have expired, else None."""
        if self.revision is None or self.clock() >= self._deadline():
            return None
        return self.revision

    def step_down(self, why: str) -> None:
        """Stop acting as leader (the key may still exist until the lease expires)."""
        if self.revision is None:
            return
        log.warning("engine: no longer leader (revision %d): %s", self.revision, why)
        self._keep(None)
        self.revision = None
        self.elected.clear()
        self.deposed.set()

    async def run(self) -> None:
        """Campaign and renew forever; on cancellation resign so another takes over at once."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._watch_leader_key(), name="engine-leader-watch")
                group.create_task(self._loop(), name="engine-leader-lease")
        finally:
            await asyncio.shield(self._resign())

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except RegistryError as exc:
                log.warning("engine: leader lease/campaign failed: %s", exc)
            if self.revision is not None and self.clock() >= self._deadline():
                self.step_down("lease could not be renewed in time")
            await self._pause()

    async def tick(self) -> None:
        """One step: a follower campaigns if the key is free, a leader renews its lease."""
        if self.revision is None:
            await self._campaign()
        else:
            await self._renew()

    async def _renew(self) -> None:
        keeper = self._keeper
        if keeper is not None:
            if keeper.expired:
                self.lease = 0
                self.step_down("the leader lease expired")
            elif not keeper.is_alive():  # it cannot end otherwise, but never go unrenewed
                self._keep(self.lease)
            return
        sent = self.clock()
        try:
            await self.store.registry.refresh_lease(self.lease)
        except LeaseExpired as exc:
            if self.clock() < self._refreshed_at + self.ttl:
                # A member that does not know the lease yet (a new etcd leader that has
                # not applied its grant): etcd cannot have expired it, keep it.
                raise RegistryUnavailable(f"{exc}, which cannot have expired yet") from exc
            self.lease = 0
            self.step_down("the leader lease expired")
            return
        self._refreshed_at = sent

    async def _campaign(self) -> None:
        self._vacant.clear()
        current = await self.store.current_leader()
        if current is not None and (current.machine, current.lease) != (
            self.machine_id,
            self.lease,
        ):
            return  # someone else leads: no lease, no write
        if self.lease == 0 or current is None:
            await self._drop_lease()
            sent = self.clock()
            self.lease = await self.store.registry.grant_lease(self.ttl)
            self._refreshed_at = sent
        else:
            await self._renew()  # our key survived a step-down: keep it if the lease lives
            if self.lease == 0:
                return
        revision = await self.store.campaign(self.machine_id, self.lease)
        if revision is None:
            await self._drop_lease()
            return
        self.revision = revision
        self._keep(self.lease)
        self.elections += 1
        log.info("engine: leader now (revision %d, lease %x)", revision, self.lease)
        self.deposed.clear()
        self.elected.set()

    async def _drop_lease(self) -> None:
        lease, self.lease = self.lease, 0
        if lease:
            await self.store.registry.revoke_lease(lease)

    async def _pause(self) -> None:
        """A leader sleeps TTL/3 (or to its acting deadline, or until its keeper found the
        lease gone); a follower until the key vanishes (the watch says so at once),
        looking anyway every 3 TTLs."""
        if self.revision is not None:
            delay = max(0.0, min(self.ttl / 3, self._deadline() - self.clock()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._news.wait()
            self._news.clear()
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(3 * self.ttl):
                await self._vacant.wait()

    def _deadline(self) -> float:
        refreshed = self._refreshed_at
        if self._keeper is not None:
            refreshed = max(refreshed, self._keeper.refreshed_at)
        return refreshed + self.ttl - self.margin

    def _keep(self, lease: int | None) -> None:
        """Stop the keeper of the last lease, if any; start one of ``lease`` if given (and
        a connection of its own can be made)."""
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            self._refreshed_at = max(self._refreshed_at, keeper.refreshed_at)
            keeper.stop()
        if lease is None or self._lease_registry is None:
            return
        loop = asyncio.get_running_loop()

        def expired() -> None:  # from the keeper's thread
            loop.call_soon_threadsafe(self._news.set)

        self._news.clear()
        self._keeper = LeaseKeeper(
            self._lease_registry,
            lease,
            ttl=self.ttl,
            clock=self.clock,
            refreshed_at=self._refreshed_at,
            on_expired=expired,
        )
        self._keeper.start()

    async def _watch_leader_key(self) -> None:
        backoff = Backoff("engine: leader watch", log)
        while True:
            try:
                async for item in self.store.mirror(self.store.keys.leader):
                    backoff.succeeded()
                    if isinstance(item, Changes):
                        gone = any(e.type is EventType.DELETE for e in item.events)
                    else:
                        gone = self.store.keys.leader not in item.items
                    if gone:
                        self._vacant.set()
            except RegistryError as exc:
                await backoff.failed(exc)

    async def _resign(self) -> None:
        revision, lease, keeper = self.revision, self.lease, self._keeper
        self.step_down("stopping")
        if keeper is not None:  # its connection closed before the loop ends
            await asyncio.to_thread(keeper.join, 2.0)
        if lease == 0:
            return
        try:
            async with asyncio.timeout(2):
                if revision is not None:
                    await self.store.resign(revision)
                await self.store.registry.revoke_lease(lease)
        except (FleetError, TimeoutError) as exc:
            log.warning("engine: could not resign (%s); the lease expires by itself", exc)
        self.lease = 0
