"""Desired state: this machine's ``schedule/<id>/`` (watched) and the unit bodies it names.

The agent watches only its own schedule prefix, never a shared one.  Unit
bodies come from ``units/<name>`` (or, for a hash that is not the unit's
text now, its kept versions ``versions/<name>/``) and are cached by hash: a
body is fetched once per hash, and bodies of files already on disk never need
a fetch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from fleetd.errors import FleetError, InvalidInput, RegistryError
from fleetd.healthcheck import HealthCheck
from fleetd.model import ScheduleEntry
from fleetd.registry.base import EventType
from fleetd.registry.store import Changes, Snapshot, Store
from fleetd.retry import Backoff
from fleetd.unitcheck import parse_unit
from fleetd.unitname import UnitName

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Body:
    """A unit file the agent can write, with what it needs to know about it."""

    hash: str
    text: str
    has_install: bool
    at_most_once: bool
    health: HealthCheck | None = None


def body_of(name: str, text: str) -> Body:
    """Parse ``text`` (the file of unit ``name``); raises InvalidInput if it is not valid."""
    _, unit, reqs = parse_unit(name, text)
    return Body(unit.hash, text, "Install" in unit.sections, reqs.at_most_once, reqs.health)


class Bodies:
    """Unit bodies by hash: from files on disk (``remember``) or ``units/<name>`` (``fetch``)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._by_hash: dict[str, Body] = {}

    def get(self, hash_: str) -> Body | None:
        return self._by_hash.get(hash_)

    def remember(self, name: str, text: str) -> Body | None:
        try:
            body = body_of(name, text)
        except InvalidInput as exc:
            log.warning("unit file %s is not valid: %s", name, exc)
            return None
        self._by_hash[body.hash] = body
        return body

    async def fetch(self, name: str, hash_: str) -> Body | None:
        """The body of ``name`` at ``hash_``: from ``units/<name>``, else from the unit's
        kept versions (a Global unit's machine a rolling update has not moved yet runs an
        older text than the unit's); None if neither has it."""
        found = self._by_hash.get(hash_)
        if found is not None:
            return found
        unit = await self.store.get_unit(name)
        text = unit.text if unit is not None and unit.hash == hash_ else None
        if text is None:
            kept = await self.store.list_versions(name)
            text = next((v.text for v in reversed(kept) if v.hash == hash_), None)
        if text is None:
            return None
        body = self.remember(name, text)
        if body is not None and body.hash != hash_:
            log.warning("unit %s: its text hashes to %s, not %s", name, body.hash, hash_)
            return None
        return body

    async def fetch_all(self, wanted: Iterable[tuple[str, str]]) -> set[str]:
        """Fetch the bodies of ``(name, hash)`` pairs, once per hash (instances of one
        template share it); returns the names whose body is not available."""
        by_hash: dict[str, list[str]] = {}
        for name, hash_ in wanted:
            by_hash.setdefault(hash_, []).append(name)

        async def one(hash_: str, names: list[str]) -> None:
            for name in names:
                if await self.fetch(name, hash_) is not None:
                    return

        await asyncio.gather(*(one(h, n) for h, n in by_hash.items() if h not in self._by_hash))
        return {n for h, names in by_hash.items() if h not in self._by_hash for n in names}

    def forget_except(self, hashes: set[str]) -> None:
        for hash_ in list(self._by_hash.keys() - hashes):
            del self._by_hash[hash_]


class ScheduleView:
    """This machine's schedule, kept current by a watch; ``on_change`` fires on every change."""

    def __init__(self, store: Store, machine: str, on_change: Callable[[], None]) -> None:
        self.store = store
        self.machine = machine
        self.prefix = store.keys.machine_schedule(machine)
        self.on_change = on_change
        self.entries: dict[str, ScheduleEntry] = {}
        self.revision = 0
        self.ready = asyncio.Event()

    async def refresh(self) -> None:
        """Re-read the whole prefix now (after fencing, to act on the newest schedule)."""
        items, revision = await self.store.registry.get_prefix(self.prefix)
        if revision >= self.revision:
            self._replace({kv.key: kv.value for kv in items}, revision)

    async def run(self) -> None:
        """Mirror the prefix forever; registry outages are retried with backoff."""
        backoff = Backoff("schedule watch", log)
        while True:
            try:
                async for item in self.store.mirror(self.prefix):
                    backoff.succeeded()
                    if isinstance(item, Snapshot):
                        self._replace({k: kv.value for k, kv in item.items.items()}, item.revision)
                    else:
                        self._apply(item)
            except RegistryError as exc:
                await backoff.failed(exc)

    def _decode(self, key: str, value: bytes) -> ScheduleEntry | None:
        try:
            entry = self.store.schedule_from(key, value)
            UnitName.parse(entry.name)  # it becomes a file name: never trust it blindly
            return entry
        except (FleetError, ValueError) as exc:
            log.error("ignoring schedule entry %s: %s", key, exc)
            return None

    def _replace(self, items: dict[str, bytes], revision: int) -> None:
        entries = {}
        for key, value in items.items():
            entry = self._decode(key, value)
            if entry is not None:
                entries[entry.name] = entry
        self.revision = revision
        if entries != self.entries or not self.ready.is_set():
            self.entries = entries
            self.ready.set()
            self.on_change()

    def _apply(self, changes: Changes) -> None:
        if changes.revision <= self.revision:
            return
        for event in changes.events:
            if event.mod_revision <= self.revision:
                continue
            name = event.key[len(self.prefix) :]
            if event.type is EventType.DELETE:
                self.entries.pop(name, None)
            else:
                entry = self._decode(event.key, event.value)
                if entry is not None:
                    self.entries[name] = entry
        self.revision = changes.revision
        self.on_change()
