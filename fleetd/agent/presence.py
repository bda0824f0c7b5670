"""Presence: ``machines/<id>`` under a lease that the agent keeps alive.

The lease id is saved in a file under /run/fleet so that a restarted fleetd
re-attaches to a lease that is still alive: the machine never disappears
from the registry and nothing it published is lost.  A machine id that is
already registered under another live lease is refused (two fleetds with one
machine id would fight over the same schedule).

``last_renewed`` is the clock time at which the last successful grant or
refresh was *sent*, so ``last_renewed + ttl`` is never later than the
lease's real deadline; fencing relies on that (``on_renewed`` is called after
each, to push systemd's fence back: fencetimer.py).

Keep-alive timing (``KeepAliveTiming``, all derived from the TTL): a refresh
every TTL/2, as CoreOS fleet did (its ``refreshInterval`` of 2).  Each
keep-alive costs etcd a few tenths of a millisecond of CPU, most of etcd's
load with many machines: TTL/2 sends a third fewer than TTL/3.  A refresh
that fails, or gets no answer within TTL/10, is retried at once (failures at
most every ``min(1 s, TTL/10)``), so the second half of the TTL leaves room
for several attempts before the fencing deadline (TTL minus a fifth:
fencing.py).

The record can change while the machine is registered (``update``: the
agent's connection to systemd came or went); ``publish`` writes each change
under the current lease, retrying until it is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from fleetd.errors import Conflict, LeaseExpired, RegistryError, RegistryUnavailable
from fleetd.model import Machine
from fleetd.registry.store import Store

log = logging.getLogger(__name__)

REFRESH_DIVISOR = 2
"""The lease is refreshed every TTL / REFRESH_DIVISOR (CoreOS fleet's refreshInterval)."""


@dataclass(frozen=True, slots=True)
class KeepAliveTiming:
    """When the lease is refreshed; ``for_ttl`` derives every value from the TTL.

    ``interval``: from one successful refresh (the time it was sent) to the next.
    ``attempt_timeout``: a refresh not answered by then is abandoned and retried.
    ``retry``: the least time between the starts of two attempts after a failure.
    """

    interval: float
    attempt_timeout: float
    retry: float

    @classmethod
    def for_ttl(cls, ttl: float) -> KeepAliveTiming:
        return cls(
            interval=ttl / REFRESH_DIVISOR, attempt_timeout=ttl / 10, retry=min(1.0, ttl / 10)
        )

    def next_attempt(self, *, now: float, last_renewed: float, started: float, ok: bool) -> float:
        """Seconds to wait before the next attempt; ``started``: when the last one began."""
        due = last_renewed + self.interval if ok else started + self.retry
        return max(0.0, due - now)


class Presence:
    def __init__(
        self,
        *,
        store: Store,
        machine: Machine,
        ttl: float,
        lease_file: str | Path,
        clock: Callable[[], float],
        on_lease: Callable[[int], None] = lambda lease: None,
        on_renewed: Callable[[], None] = lambda: None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.store = store
        self.registry = store.registry
        self.machine = machine
        self.ttl = ttl
        self.lease_file = Path(lease_file)
        self.clock = clock
        self.on_lease = on_lease
        self.on_renewed = on_renewed
        self._sleep = sleep
        self.lease = 0
        self.last_renewed = -math.inf
        self.registered = asyncio.Event()
        self._stopped = False
        self._changed = asyncio.Event()

    @property
    def timing(self) -> KeepAliveTiming:
        return KeepAliveTiming.for_ttl(self.ttl)

    def may_be_alive(self) -> bool:
        """True while etcd cannot have expired the lease: less than ``ttl`` seconds since
        the last successful refresh was sent (etcd counts from when it received it).  An
        answer "no such lease" before then comes from a member that does not know it."""
        return self.lease != 0 and self.clock() < self.last_renewed + self.ttl

    def valid_for(self, margin: float) -> bool:
        """True while the lease was renewed less than ``ttl - margin`` seconds ago."""
        return self.lease != 0 and self.clock() - self.last_renewed < self.ttl - margin

    # --- registration -----------------------------------------------------

    async def register(self) -> int:
        """Re-attach to the saved lease if it is alive, else grant a new one; write the machine.

        Raises Conflict if another live lease holds ``machines/<id>``.
        """
        sent = self.clock()
        lease = self._saved_lease()
        reattached = False
        if lease:
            try:
                await self.registry.refresh_lease(lease)
                reattached = True
            except LeaseExpired:
                lease = 0
        if not lease:
            lease = await self.registry.grant_lease(max(1, math.ceil(self.ttl)))
        try:
            await self.store.register_machine(self.machine, lease)
        except Conflict as exc:
            await self.registry.revoke_lease(lease)
            held = await self.registry.get(self.store.keys.machine(self.machine.id))
            saved = self._saved_lease()
            if held is not None and saved and held.lease == saved:
                # Our own lease holds it after all (etcd said it did not know it): try it
                # again soon rather than leave it unrefreshed for TTL/2.
                raise RegistryUnavailable(
                    f"machines/{self.machine.id} is held by this machine's lease {saved:x}, "
                    "which etcd did not know a moment ago"
                ) from exc
            raise
        self._save_lease(lease)
        changed = lease != self.lease
        self.lease, self.last_renewed = lease, sent
        self.registered.set()
        self.on_renewed()
        if changed:
            how = "re-attached" if reattached else "new lease"
            log.info("register machine=%s lease=%x reason=%r", self.machine.id, lease, how)
            self.on_lease(lease)
        return lease

    def _saved_lease(self) -> int:
        try:
            saved = json.loads(self.lease_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return 0
        if not isinstance(saved, dict) or saved.get("machine") != self.machine.id:
            return 0
        lease = saved.get("lease")
        return lease if isinstance(lease, int) else 0

    def _save_lease(self, lease: int) -> None:
        self.lease_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.lease_file.with_name(self.lease_file.name + ".tmp")
        tmp.write_text(json.dumps({"machine": self.machine.id, "lease": lease}), encoding="utf-8")
        tmp.replace(self.lease_file)

    def update(self, machine: Machine) -> None:
        """Make ``machine`` (this machine, changed) the record to register and publish it."""
        if machine != self.machine:
            self.machine = machine
            self._changed.set()

    async def publish(self) -> None:
        """Write each ``update`` to ``machines/<id>`` under the current lease.

        Waits while the machine is not registered (a registration writes the record
        itself; this writes it once more after).  A failed write (registry outage, or
        the lease changing meanwhile) is retried every ``timing.retry`` seconds.
        """
        while True:
            await self._changed.wait()
            await self.registered.wait()
            self._changed.clear()
            machine, lease = self.machine, self.lease
            try:
                await self.store.register_machine(machine, lease)
            except (RegistryError, Conflict) as exc:
                retry = self.timing.retry
                log.warning(
                    "publishing machine %s failed: %s; retrying in %.1fs", machine.id, exc, retry
                )
                self._changed.set()
                await self._sleep(retry)

    # --- keep-alive -------------------------------------------------------

    async def run(self) -> None:
        """Register, then refresh every TTL/2; re-register if the lease was lost.

        A refresh or registration that fails (registry outage, or no answer
        within ``timing.attempt_timeout``) is tried again ``timing.retry``
        seconds after the failed attempt began.  While another live lease
        holds ``machines/<id>`` (a duplicated machine id, or this machine's
        previous boot whose lease has not expired yet) the error is logged
        and registration retried every TTL/2.
        """
        while not self._stopped:
            timing, started = self.timing, self.clock()
            try:
                if self.lease == 0:
                    await self.register()
                else:
                    await self.refresh()
            except Conflict as exc:
                log.error("%s; retrying in %.0fs", exc, timing.interval)
                await self._sleep(timing.interval)
                continue
            except LeaseExpired as exc:
                if self.lease == 0:  # registering: the lease just granted is not known yet
                    log.warning("registration failed: %s", exc)
                    ok = False
                elif self.may_be_alive():
                    # etcd cannot have expired it yet: the member that answered does not
                    # know the lease (yet), e.g. a new etcd leader that has not applied
                    # its grant.  Re-registering would leave the old lease holding
                    # machines/<id> unrefreshed: keep refreshing this one.
                    log.warning("keep-alive: %s, which cannot have expired yet; retrying", exc)
                    ok = False
                else:
                    log.warning("lease %x expired; registering again", self.lease)
                    self.lease = 0
                    self.registered.clear()
                    continue
            except RegistryError as exc:
                log.warning("keep-alive failed: %s", exc)
                ok = False
            else:
                ok = True
            now = self.clock()
            await self._sleep(
                timing.next_attempt(now=now, last_renewed=self.last_renewed, started=started, ok=ok)
            )

    async def refresh(self) -> None:
        """One keep-alive of the lease, abandoned after ``timing.attempt_timeout`` seconds.

        Raises LeaseExpired if the lease is gone, RegistryUnavailable on no answer.
        """
        sent = self.clock()
        limit = self.timing.attempt_timeout
        try:
            async with asyncio.timeout(limit):
                await self.registry.refresh_lease(self.lease)
        except TimeoutError as exc:
            raise RegistryUnavailable(
                f"keep-alive of lease {self.lease:x}: no answer within {limit:.1f}s"
            ) from exc
        self.last_renewed = sent
        self.on_renewed()

    async def revoke(self) -> None:
        """Release the lease now: ``machines/<id>`` and every state vanish at once."""
        self._stopped = True
        self.registered.clear()
        with contextlib.suppress(OSError):
            self.lease_file.unlink()
        if self.lease:
            log.info(
                "revoke machine=%s lease=%x reason='machine is shutting down'",
                self.machine.id,
                self.lease,
            )
            await self.registry.revoke_lease(self.lease)
            self.lease = 0
