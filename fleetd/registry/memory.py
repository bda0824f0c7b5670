"""MemoryRegistry: an in-memory Registry with etcd's semantics, for pure and component tests.

It keeps what the contract promises and nothing more: one global revision
(starting at 1, bumped only by writes that change something), create/mod
revisions and versions per key, leases whose TTL runs on an injected clock,
atomic compare-and-apply transactions with etcd's validation (op and compare count,
duplicate keys, request size, unknown lease), watches fed from a history that
``compact`` truncates, and fault injection (``set_available``).

Leases expire when any operation runs (or ``expire_leases`` is called) after
the clock passed their deadline; a test advances its fake clock and then
calls ``expire_leases()`` to see the effect at once.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from fleetd.errors import (
    InvalidInput,
    LeaseExpired,
    RegistryError,
    RegistryUnavailable,
    WatchCompacted,
)
from fleetd.registry.base import (
    MAX_TXN_OPS,
    Compare,
    CompareTarget,
    Delete,
    EventType,
    KeyValue,
    Op,
    Put,
    TxnResult,
    WatchEvent,
)
from fleetd.registry.batching import MAX_REQUEST_BYTES, chunk_ops, duplicate_key, op_size


@dataclass(slots=True)
class _Entry:
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int


@dataclass(slots=True)
class _Lease:
    ttl: int
    deadline: float
    keys: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Watcher:
    prefix: str
    start: int
    queue: asyncio.Queue[list[WatchEvent] | BaseException]


class MemoryRegistry:
    """In-memory implementation of ``fleetd.registry.base.Registry``."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_history: int | None = None
    ) -> None:
        """``clock`` returns monotonic seconds; ``max_history`` bounds the event
        history kept for watches (older events are compacted away)."""
        self._clock = clock
        self._max_history = max_history
        self._kvs: dict[str, _Entry] = {}
        self._revision = 1
        self._compacted = 0
        self._history: list[WatchEvent] = []
        self._leases: dict[int, _Lease] = {}
        self._lease_ids = itertools.count(0x6A00_0000_0001)
        self._watchers: list[_Watcher] = []
        self._up = asyncio.Event()
        self._up.set()
        self._closed = False

    # -- test controls -------------------------------------------------------

    @property
    def revision(self) -> int:
        return self._revision

    def set_available(self, available: bool) -> None:
        """Simulate losing (False) or regaining (True) the connection to etcd.

        While unavailable every call raises RegistryUnavailable; open watches
        stay open and deliver what happened meanwhile once it is back, as a
        resumed etcd watch does.
        """
        if available:
            self._up.set()
        else:
            self._up.clear()

    def expire_leases(self) -> int:
        """Expire every lease whose deadline has passed; returns how many expired."""
        now = self._clock()
        due = sorted(
            (lease.deadline, lease_id)
            for lease_id, lease in self._leases.items()
            if lease.deadline <= now
        )
        for _, lease_id in due:
            self._revoke(lease_id)
        return len(due)

    # -- Registry ------------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        self._enter()
        entry = self._kvs.get(key)
        return None if entry is None else self._kv(key, entry)

    async def get_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        self._enter()
        keys = sorted(k for k in self._kvs if k.startswith(prefix))
        items = [self._kv(k, self._kvs[k]) for k in keys]
        return items, self._revision

    async def put(self, key: str, value: bytes, lease: int = 0) -> int:
        return (await self.txn((), [Put(key, value, lease)])).revision

    async def delete(self, key: str, prefix: bool = False) -> int:
        self._enter()
        count = len(self._matching(Delete(key, prefix)))
        await self.txn((), [Delete(key, prefix)])
        return count

    async def txn(
        self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        self._enter()
        if len(compares) > MAX_TXN_OPS:
            # etcd counts compares against --max-txn-ops as well as each branch's ops.
            raise RegistryError(
                f"too many compares in one transaction: {len(compares)} > {MAX_TXN_OPS}"
            )
        succeeded = all(self._holds(c) for c in compares)
        ops = success if succeeded else failure
        self._validate(ops)
        self._apply(ops)
        return TxnResult(succeeded, self._revision)

    async def batch(self, ops: Sequence[Op], guard: Sequence[Compare] = ()) -> TxnResult:
        if not ops:
            return await self.txn(guard, ())
        result = TxnResult(True, self._revision)
        for chunk in chunk_ops(ops):
            result = await self.txn(guard, chunk)
            if not result.succeeded:
                break
        return result

    async def grant_lease(self, ttl: int) -> int:
        self._enter()
        if ttl < 1:
            raise InvalidInput(f"lease TTL must be at least 1 second, got {ttl}")
        lease_id = next(self._lease_ids)
        self._leases[lease_id] = _Lease(ttl, self._clock() + ttl)
        return lease_id

    async def refresh_lease(self, lease: int) -> int:
        self._enter()
        found = self._leases.get(lease)
        if found is None:
            raise LeaseExpired(f"lease {lease:x} does not exist (expired or revoked)")
        found.deadline = self._clock() + found.ttl
        return found.ttl

    async def lease_ttl(self, lease: int) -> int:
        self._enter()
        found = self._leases.get(lease)
        if found is None:
            return -1
        return max(0, int(found.deadline - self._clock()))

    async def revoke_lease(self, lease: int) -> None:
        self._enter()
        if lease in self._leases:
            self._revoke(lease)

    def watch_prefix(self, prefix: str, start_revision: int) -> AsyncIterator[list[WatchEvent]]:
        return self._watch(prefix, start_revision)

    async def compact(self, revision: int) -> None:
        self._enter()
        if revision > self._revision:
            raise RegistryError(
                f"cannot compact at revision {revision}: current revision is {self._revision}"
            )
        self._compact(revision)

    async def close(self) -> None:
        self._closed = True
        for watcher in self._watchers:
            watcher.queue.put_nowait(RegistryUnavailable("registry closed"))

    # -- internals -----------------------------------------------------------

    def _enter(self) -> None:
        if self._closed:
            raise RegistryUnavailable("registry closed")
        if not self._up.is_set():
            raise RegistryUnavailable("registry unavailable (simulated)")
        self.expire_leases()

    @staticmethod
    def _kv(key: str, entry: _Entry) -> KeyValue:
        return KeyValue(key, entry.value, entry.create_revision, entry.mod_revision, entry.lease)

    def _matching(self, op: Delete) -> list[str]:
        if op.prefix:
            return sorted(k for k in self._kvs if k.startswith(op.key))
        return [op.key] if op.key in self._kvs else []

    def _holds(self, compare: Compare) -> bool:
        entry = self._kvs.get(compare.key)
        if compare.target is CompareTarget.VALUE:
            return entry is not None and entry.value == compare.value
        actual = 0
        if entry is not None:
            actual = {
                CompareTarget.CREATE: entry.create_revision,
                CompareTarget.MOD: entry.mod_revision,
                CompareTarget.VERSION: entry.version,
                CompareTarget.LEASE: entry.lease,
            }[compare.target]
        return actual == compare.value

    def _validate(self, ops: Sequence[Op]) -> None:
        if len(ops) > MAX_TXN_OPS:
            raise RegistryError(
                f"too many operations in one transaction: {len(ops)} > {MAX_TXN_OPS}"
            )
        size = sum(op_size(op) for op in ops)
        if size > MAX_REQUEST_BYTES:
            raise InvalidInput(
                f"request is too large: {size} bytes > etcd's limit of {MAX_REQUEST_BYTES}"
            )
        duplicate = duplicate_key(ops)
        if duplicate is not None:
            raise RegistryError(f"duplicate key given in one transaction: {duplicate!r}")
        for op in ops:
            if isinstance(op, Put) and op.lease and op.lease not in self._leases:
                raise LeaseExpired(f"lease {op.lease:x} does not exist (expired or revoked)")

    def _apply(self, ops: Sequence[Op]) -> None:
        revision = self._revision + 1
        events: list[WatchEvent] = []
        for op in ops:
            if isinstance(op, Put):
                events.append(self._put(op, revision))
            else:
                events.extend(self._delete(key, revision) for key in self._matching(op))
        if events:
            self._revision = revision
            self._publish(events)

    def _put(self, op: Put, revision: int) -> WatchEvent:
        old = self._kvs.get(op.key)
        if old is not None and old.lease and old.lease in self._leases:
            self._leases[old.lease].keys.discard(op.key)
        create = old.create_revision if old else revision
        version = old.version + 1 if old else 1
        self._kvs[op.key] = _Entry(op.value, create, revision, version, op.lease)
        if op.lease:
            self._leases[op.lease].keys.add(op.key)
        return WatchEvent(EventType.PUT, op.key, op.value, revision, create)

    def _delete(self, key: str, revision: int) -> WatchEvent:
        old = self._kvs.pop(key)
        if old.lease and old.lease in self._leases:
            self._leases[old.lease].keys.discard(key)
        return WatchEvent(EventType.DELETE, key, b"", revision, 0)

    def _revoke(self, lease_id: int) -> None:
        lease = self._leases.pop(lease_id)
        revision = self._revision + 1
        events = [self._delete(key, revision) for key in sorted(lease.keys) if key in self._kvs]
        if events:
            self._revision = revision
            self._publish(events)

    def _publish(self, events: list[WatchEvent]) -> None:
        self._history.extend(events)
        if self._max_history is not None and len(self._history) > self._max_history:
            self._compact(self._history[-self._max_history].mod_revision)
        for watcher in self._watchers:
            mine = [
                e
                for e in events
                if e.key.startswith(watcher.prefix) and e.mod_revision >= watcher.start
            ]
            if mine:
                watcher.queue.put_nowait(mine)

    def _compact(self, revision: int) -> None:
        if revision <= self._compacted:
            return
        self._compacted = revision
        self._history = [e for e in self._history if e.mod_revision >= revision]

    async def _watch(self, prefix: str, start_revision: int) -> AsyncIterator[list[WatchEvent]]:
        if self._closed:
            raise RegistryUnavailable("registry closed")
        start = start_revision or self._revision + 1
        if start < self._compacted:
            raise WatchCompacted(
                f"cannot watch {prefix!r} from revision {start}: "
                f"compacted up to revision {self._compacted}"
            )
        watcher = _Watcher(prefix, start, asyncio.Queue())
        backlog = [e for e in self._history if e.mod_revision >= start and e.key.startswith(prefix)]
        if backlog:
            watcher.queue.put_nowait(backlog)
        self._watchers.append(watcher)
        try:
            while True:
                item = await watcher.queue.get()
                if isinstance(item, BaseException):
                    raise item
                await self._up.wait()
                yield item
        finally:
            self._watchers.remove(watcher)
