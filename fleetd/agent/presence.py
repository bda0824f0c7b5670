"""Presence: ``machines/<id>`` under a lease that the agent keeps alive.

The lease id is saved in a file under /run/fleet so that a restarted fleetd
re-attaches to a lease that is still alive: the machine never disappears
from the registry and nothing it published is lost.  A machine id that is
already registered under another live lease is refused (two fleetds with one
machine id would fight over the same schedule).

``last_renewed`` is the clock time at which the last successful grant or
refresh was *sent*, so ``last_renewed + ttl`` is never later than the
lease's real deadline; fencing relies on that.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Callable
from pathlib import Path

from fleetd.errors import Conflict, LeaseExpired, RegistryError
from fleetd.model import Machine
from fleetd.registry.store import Store

log = logging.getLogger(__name__)


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
    ) -> None:
        self.store = store
        self.registry = store.registry
        self.machine = machine
        self.ttl = ttl
        self.lease_file = Path(lease_file)
        self.clock = clock
        self.on_lease = on_lease
        self.lease = 0
        self.last_renewed = -math.inf
        self.registered = asyncio.Event()
        self._stopped = False

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
        except Conflict:
            await self.registry.revoke_lease(lease)
            raise
        self._save_lease(lease)
        changed = lease != self.lease
        self.lease, self.last_renewed = lease, sent
        self.registered.set()
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

    # --- keep-alive -------------------------------------------------------

    async def run(self) -> None:
        """Register, then refresh every TTL/3; re-register if the lease was lost.

        Registry outages are retried every ``min(1, TTL/10)`` seconds.  While
        another live lease holds ``machines/<id>`` (a duplicated machine id,
        or this machine's previous boot whose lease has not expired yet) the
        error is logged and registration retried every TTL/3.
        """
        retry = min(1.0, self.ttl / 10)
        while not self._stopped:
            try:
                if self.lease == 0:
                    await self.register()
                else:
                    sent = self.clock()
                    await self.registry.refresh_lease(self.lease)
                    self.last_renewed = sent
            except Conflict as exc:
                log.error("%s; retrying in %.0fs", exc, self.ttl / 3)
                await asyncio.sleep(self.ttl / 3)
                continue
            except LeaseExpired:
                log.warning("lease %x expired; registering again", self.lease)
                self.lease = 0
                self.registered.clear()
                continue
            except RegistryError as exc:
                log.warning("keep-alive failed: %s", exc)
                await asyncio.sleep(retry)
                continue
            await asyncio.sleep(self.ttl / 3)

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
