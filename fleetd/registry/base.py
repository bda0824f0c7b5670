"""The registry contract: a small key-value protocol implemented by etcd and an in-memory fake.

Everything above it (typed store, engine, agent, API) is written against this
protocol only.  Semantics follow etcd v3: every write bumps one global
revision; keys carry create/mod revisions; leases own keys and delete them
when they expire; transactions compare and then apply a list of operations
atomically.  One contract test suite (tests/component/test_registry_contract.py)
runs against both implementations.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

MAX_TXN_OPS = 128
"""etcd refuses transactions with more operations than this (--max-txn-ops default)."""


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int = 0


class EventType(StrEnum):
    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: EventType
    key: str
    value: bytes  # empty for DELETE
    mod_revision: int
    create_revision: int = 0


class CompareTarget(StrEnum):
    VALUE = "value"
    CREATE = "create"  # create_revision; 0 means "key absent"
    MOD = "mod"  # mod_revision
    VERSION = "version"  # 0 means "key absent"
    LEASE = "lease"


@dataclass(frozen=True, slots=True)
class Compare:
    """``target(key) == value`` (only equality: it is all fencing and CAS need)."""

    key: str
    target: CompareTarget
    value: int | bytes

    @staticmethod
    def absent(key: str) -> Compare:
        return Compare(key, CompareTarget.CREATE, 0)


@dataclass(frozen=True, slots=True)
class Put:
    key: str
    value: bytes
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Delete:
    key: str
    prefix: bool = False


Op = Put | Delete


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    revision: int


class Registry(Protocol):
    """Raw key-value access; keys are full keys including the cluster prefix."""

    async def get(self, key: str) -> KeyValue | None: ...

    async def get_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        """All keys under ``prefix`` sorted by key, plus the revision they were read at."""
        ...

    async def put(self, key: str, value: bytes, lease: int = 0) -> int:
        """Unconditional write; returns the new revision."""
        ...

    async def delete(self, key: str, prefix: bool = False) -> int:
        """Returns the number of keys deleted."""
        ...

    async def txn(
        self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        """One atomic transaction; never retried by the client (safe for CAS)."""
        ...

    async def batch(self, ops: Sequence[Op], guard: Sequence[Compare] = ()) -> TxnResult:
        """Apply ``ops`` in transactions of at most MAX_TXN_OPS, each guarded by ``guard``.

        Stops at the first transaction whose guard fails and returns
        ``succeeded=False`` (earlier chunks stay applied).
        """
        ...

    async def grant_lease(self, ttl: int) -> int: ...

    async def refresh_lease(self, lease: int) -> int:
        """Keep a lease alive once; returns its TTL; raises LeaseExpired if it is gone."""
        ...

    async def lease_ttl(self, lease: int) -> int:
        """Remaining seconds of a lease, or -1 if it does not exist."""
        ...

    async def revoke_lease(self, lease: int) -> None:
        """Revoke a lease, deleting its keys (no error if it is already gone)."""
        ...

    def watch_prefix(self, prefix: str, start_revision: int) -> AsyncIterator[list[WatchEvent]]:
        """Changes under ``prefix`` from ``start_revision`` on, in revision order, batched.

        Survives reconnects (resumes after the last revision seen).  Raises
        WatchCompacted when ``start_revision`` (or the resume point) was
        compacted: the caller must re-read with get_prefix and watch again.
        """
        ...

    async def compact(self, revision: int) -> None: ...

    async def close(self) -> None: ...
