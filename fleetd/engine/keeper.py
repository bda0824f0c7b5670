"""The leader lease's keep-alive, from a thread of its own.

A leader's event loop can be busy for seconds: the first read of 100,000
units, a full pass, its writes.  Were the lease refreshed from that loop, a
leader busy computing would lose its lease, and each new term would start
the same work over.  A ``LeaseKeeper`` refreshes one lease from a thread
with its own event loop and its own registry connection (``connect``), so
the refreshes go on whatever the engine's loop does: Python hands the GIL to
a waiting thread every few milliseconds (``sys.getswitchinterval``).

It refreshes every ``ttl / 3`` (a failed refresh is retried after a second)
and keeps ``refreshed_at``: when the last successful refresh was *sent*, so
the lease lives at least until ``refreshed_at + ttl``.  When the registry
says the lease is gone and it can have expired, it sets ``expired`` and calls
``on_expired`` (from its thread: the caller hands it to its own loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable

from fleetd.errors import LeaseExpired, RegistryError
from fleetd.registry.base import Registry

log = logging.getLogger(__name__)

RETRY = 1.0
"""Seconds between refreshes after a failed one (at most ``ttl / 3``)."""


class LeaseKeeper:
    """Refreshes ``lease`` from its own thread until ``stop()`` or until the lease is gone."""

    def __init__(
        self,
        connect: Callable[[], Registry],
        lease: int,
        *,
        ttl: int,
        clock: Callable[[], float],
        refreshed_at: float,
        on_expired: Callable[[], None],
    ) -> None:
        self.lease = lease
        self.ttl = ttl
        self.expired = False
        self._connect = connect
        self._clock = clock
        self._on_expired = on_expired
        self._refreshed_at = refreshed_at
        self._lock = threading.Lock()  # a stopped keeper records nothing more
        self._stopped = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(
            target=self._main, name=f"lease-keeper-{lease:x}", daemon=True
        )

    @property
    def refreshed_at(self) -> float:
        """When the last successful refresh was sent (the lease lives until + ttl)."""
        return self._refreshed_at

    def is_alive(self) -> bool:
        """Whether its thread still refreshes (it ends when stopped or the lease is gone)."""
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop refreshing at once (a refresh in flight is abandoned, and not recorded)."""
        with self._lock:
            self._stopped.set()
            loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # its loop has just closed
                loop.call_soon_threadsafe(task.cancel)

    def join(self, timeout: float) -> None:
        """Wait (blocking) until its thread ended, at most ``timeout`` seconds."""
        if self._thread.ident is not None:
            self._thread.join(timeout)

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        with self._lock:
            if self._stopped.is_set():
                return
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.current_task()
        registry = self._connect()
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh_until_gone(registry)
        finally:
            with contextlib.suppress(RegistryError):
                await registry.close()

    async def _refresh_until_gone(self, registry: Registry) -> None:
        while not self._stopped.is_set():
            sent = self._clock()
            pause = min(self.ttl / 3, RETRY)
            try:
                await registry.refresh_lease(self.lease)
            except LeaseExpired as exc:
                if self._clock() >= self._refreshed_at + self.ttl:
                    self._gone(exc)
                    return
                # A member that does not know the lease yet (a new etcd leader that has
                # not applied its grant): etcd cannot have expired it, keep it.
                log.warning("engine: %s, which cannot have expired yet", exc)
            except RegistryError as exc:
                log.warning("engine: leader lease refresh failed: %s", exc)
            else:
                with self._lock:
                    if self._stopped.is_set():
                        return
                    self._refreshed_at = sent
                pause = self.ttl / 3
            await asyncio.sleep(pause)

    def _gone(self, exc: LeaseExpired) -> None:
        with self._lock:
            if self._stopped.is_set():
                return
            self.expired = True
        log.warning("engine: leader lease %x is gone: %s", self.lease, exc)
        with contextlib.suppress(RuntimeError):  # the engine's loop closed meanwhile
            self._on_expired()
