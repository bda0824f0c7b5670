"""EtcdRegistry: the Registry protocol over etcd v3 (etcd3aio / grpc.aio).

Traps this module handles so nothing above it has to (docs/dependencies.md):

* etcd3aio retries failed unary calls by itself; transactions are sent with
  ``max_attempts=1`` so a compare-and-swap is never applied twice.
* etcd3aio's own watch resumes after the last *header* revision it saw, which
  can skip events after a reconnect, and hangs after a compacted start
  revision.  Watches therefore run their own loop on the raw gRPC stream,
  resume after the last *event* revision delivered, and raise WatchCompacted.
* Every library error becomes a fleetd.errors type with the original kept as
  ``__cause__`` (etcd_connection.translate): unreachable/timeouts ->
  RegistryUnavailable, unknown lease -> LeaseExpired, compacted revision ->
  WatchCompacted, oversized request -> InvalidInput, else RegistryError.
* A transaction whose outcome is unknown (timeout, connection lost after
  sending) raises RegistryUnavailable; callers re-read before retrying.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
import grpc.aio
from etcd3aio import prefix_range_end
from etcd3aio._protobuf import Compare as PbCompare
from etcd3aio._protobuf import LeaseKeepAliveRequest, WatchCreateRequest, WatchRequest
from etcd3aio.kv import KVService

from fleetd.errors import (
    InvalidInput,
    LeaseExpired,
    RegistryError,
    RegistryUnavailable,
    WatchCompacted,
)
from fleetd.registry.base import (
    Compare,
    CompareTarget,
    EventType,
    KeyValue,
    Op,
    Put,
    TxnResult,
    WatchEvent,
)
from fleetd.registry.batching import chunk_ops
from fleetd.registry.etcd_connection import EtcdConnection, translate
from fleetd.retry import Backoff

log = logging.getLogger(__name__)

PAGE_SIZE = 1000
"""Keys per Range request in get_prefix (keeps every response far below gRPC limits)."""

_TARGETS = {
    CompareTarget.VALUE: (PbCompare.VALUE, "value"),
    CompareTarget.CREATE: (PbCompare.CREATE, "create_revision"),
    CompareTarget.MOD: (PbCompare.MOD, "mod_revision"),
    CompareTarget.VERSION: (PbCompare.VERSION, "version"),
    CompareTarget.LEASE: (PbCompare.LEASE, "lease"),
}
_PERMANENT_WATCH_CODES = (
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.OUT_OF_RANGE,
)


class EtcdRegistry:
    """``fleetd.registry.base.Registry`` backed by an etcd v3 cluster.

    The gRPC channel is opened on first use (inside the running event loop);
    ``endpoints`` may name several members, which are used round-robin.
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        tls_server_name: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        """Validates the arguments (ConfigError naming the option) and reads the TLS files;
        connects on first use."""
        self._conn = EtcdConnection(
            endpoints,
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            tls_server_name=tls_server_name,
            username=username,
            password=password,
            timeout=timeout,
        )
        self._timeout = timeout
        # One LeaseKeepAlive stream for every refresh: opening a stream per refresh is
        # most of what lease keep-alives cost etcd (benchmarks/scale_agents.py).
        # etcd answers on a stream in order; one request at a time here.
        self._keepalive: Any = None
        self._keepalive_lock = asyncio.Lock()

    # -- key-value -------------------------------------------------------------

    @staticmethod
    def _kv_of(kv: Any) -> KeyValue:
        return KeyValue(
            kv.key.decode(), bytes(kv.value), kv.create_revision, kv.mod_revision, kv.lease
        )

    async def get(self, key: str) -> KeyValue | None:
        async def call() -> KeyValue | None:
            response = await self._conn.services()[0].get(key, timeout=self._timeout)
            return self._kv_of(response.kvs[0]) if response.kvs else None

        return await self._conn.call(f"get {key}", call)

    async def get_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        end = prefix_range_end(prefix)

        async def call() -> tuple[list[KeyValue], int]:
            kv = self._conn.services()[0]
            items: list[KeyValue] = []
            start, revision = prefix.encode(), 0
            while True:
                response = await kv.get(
                    start, end, revision=revision, limit=PAGE_SIZE, timeout=self._timeout
                )
                revision = revision or response.header.revision
                items.extend(self._kv_of(item) for item in response.kvs)
                if not response.more or not response.kvs:
                    return items, revision
                start = response.kvs[-1].key + b"\0"

        for _ in range(3):
            try:
                return await self._conn.call(f"get prefix {prefix}", call)
            except WatchCompacted:
                # A compaction landed between two pages: read again at a newer revision.
                continue
        return await self._conn.call(f"get prefix {prefix}", call)

    async def put(self, key: str, value: bytes, lease: int = 0) -> int:
        async def call() -> int:
            response = await self._conn.services()[0].put(key, value, lease, timeout=self._timeout)
            return int(response.header.revision)

        return await self._conn.call(f"put {key}", call)

    async def delete(self, key: str, prefix: bool = False) -> int:
        async def call() -> int:
            end = prefix_range_end(key) if prefix else None
            response = await self._conn.services()[0].delete(key, end, timeout=self._timeout)
            return int(response.deleted)

        return await self._conn.call(f"delete {key}", call)

    # -- transactions ----------------------------------------------------------

    @staticmethod
    def _compare(compare: Compare) -> Any:
        target, field = _TARGETS[compare.target]
        value = compare.value
        if compare.target is CompareTarget.VALUE and not isinstance(value, bytes):
            raise TypeError(f"a value compare needs bytes, got {value!r}")
        if compare.target is not CompareTarget.VALUE and not isinstance(value, int):
            raise TypeError(f"a {compare.target} compare needs an int, got {value!r}")
        return PbCompare(
            result=PbCompare.EQUAL, target=target, key=compare.key.encode(), **{field: value}
        )

    @staticmethod
    def _op(op: Op) -> Any:
        if isinstance(op, Put):
            return KVService.txn_op_put(op.key, op.value, lease=op.lease)
        end = prefix_range_end(op.key) if op.prefix else None
        return KVService.txn_op_delete(op.key, range_end=end)

    async def txn(
        self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        pb_compares = [self._compare(c) for c in compares]
        pb_success = [self._op(o) for o in success]
        pb_failure = [self._op(o) for o in failure]

        async def call() -> TxnResult:
            response = await self._conn.services()[0].txn(
                pb_compares, pb_success, pb_failure, timeout=self._timeout, max_attempts=1
            )
            return TxnResult(bool(response.succeeded), int(response.header.revision))

        return await self._conn.call("transaction", call)

    async def batch(self, ops: Sequence[Op], guard: Sequence[Compare] = ()) -> TxnResult:
        if not ops:
            return await self.txn(guard, ())
        result = TxnResult(True, 0)
        for chunk in chunk_ops(ops):
            result = await self.txn(guard, chunk)
            if not result.succeeded:
                break
        return result

    # -- leases ----------------------------------------------------------------

    async def grant_lease(self, ttl: int) -> int:
        if ttl < 1:
            raise InvalidInput(f"lease TTL must be at least 1 second, got {ttl}")

        async def call() -> int:
            response = await self._conn.services()[1].grant(ttl, timeout=self._timeout)
            return int(response.ID)

        return await self._conn.call("grant lease", call)

    async def refresh_lease(self, lease: int) -> int:
        async def call() -> int:
            async with self._keepalive_lock:
                if self._keepalive is None or self._keepalive.done():
                    service = self._conn.services()[1]
                    self._keepalive = service._stub.LeaseKeepAlive(
                        metadata=service._metadata or None
                    )
                stream = self._keepalive
                try:
                    async with asyncio.timeout(self._timeout):
                        await stream.write(LeaseKeepAliveRequest(ID=lease))
                        response = await stream.read()
                except BaseException:
                    # An answer still in flight would be read as the next one's.
                    stream.cancel()
                    self._keepalive = None
                    raise
            if response is grpc.aio.EOF:
                self._keepalive = None
                raise RegistryUnavailable(f"keepalive of lease {lease:x}: stream ended")
            ttl = int(response.TTL)
            if ttl <= 0:
                raise LeaseExpired(f"lease {lease:x} does not exist (expired or revoked)")
            return ttl

        return await self._conn.call(f"refresh lease {lease:x}", call)

    async def lease_ttl(self, lease: int) -> int:
        async def call() -> int:
            response = await self._conn.services()[1].time_to_live(lease, timeout=self._timeout)
            return int(response.TTL)

        return await self._conn.call(f"lease {lease:x} ttl", call)

    async def revoke_lease(self, lease: int) -> None:
        async def call() -> None:
            await self._conn.services()[1].revoke(lease, timeout=self._timeout)

        with contextlib.suppress(LeaseExpired):  # already gone: nothing to revoke
            await self._conn.call(f"revoke lease {lease:x}", call)

    # -- watches ---------------------------------------------------------------

    def watch_prefix(self, prefix: str, start_revision: int) -> AsyncIterator[list[WatchEvent]]:
        return self._watch_loop(prefix, start_revision)

    async def _watch_loop(
        self, prefix: str, start_revision: int
    ) -> AsyncIterator[list[WatchEvent]]:
        key, end = prefix.encode(), prefix_range_end(prefix)
        next_revision = start_revision
        backoff = Backoff(f"watch {prefix}", log, first=0.1, cap=2.0)
        while True:
            stream = None
            broken: BaseException
            try:
                _, _, stub = await self._conn.connect()
                # Requests are written on the call (no request iterator): the request
                # side stays open with nothing left running when the call is cancelled.
                stream = stub.Watch(metadata=self._conn.watch_metadata())
                create = WatchCreateRequest(
                    key=key, range_end=end, start_revision=next_revision, progress_notify=True
                )
                await stream.write(WatchRequest(create_request=create))
                while (response := await stream.read()) is not grpc.aio.EOF:
                    if response.compact_revision:
                        raise WatchCompacted(
                            f"watch {prefix} from revision {next_revision}: compacted up to "
                            f"revision {response.compact_revision}"
                        )
                    if response.canceled:
                        raise RegistryError(f"watch {prefix} canceled: {response.cancel_reason}")
                    backoff.succeeded()
                    if response.events:
                        batch = [self._event(e) for e in response.events]
                        next_revision = batch[-1].mod_revision + 1
                        yield batch
                    elif response.created:
                        # Watching "from now": pin now, so a resume misses nothing.
                        next_revision = next_revision or response.header.revision + 1
                    elif response.header.revision >= next_revision:
                        # Progress notification: everything up to here was delivered.
                        next_revision = response.header.revision + 1
                broken = RegistryUnavailable("stream ended")
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                if code is grpc.StatusCode.UNAUTHENTICATED and self._conn.username is not None:
                    await self._conn.authenticate()
                elif code in _PERMANENT_WATCH_CODES or code is grpc.StatusCode.UNAUTHENTICATED:
                    raise translate(exc, f"watch {prefix}") from exc
                broken = RegistryUnavailable(f"{code.name} {exc.details() or ''}".rstrip())
            except RegistryUnavailable as exc:
                broken = exc
            finally:
                if stream is not None:
                    stream.cancel()
            backoff.what = f"watch {prefix} (resuming at revision {next_revision})"
            await backoff.failed(broken)

    @staticmethod
    def _event(event: Any) -> WatchEvent:
        kind = EventType.DELETE if event.type == 1 else EventType.PUT
        kv = event.kv
        return WatchEvent(
            kind, kv.key.decode(), bytes(kv.value), kv.mod_revision, kv.create_revision
        )

    # -- maintenance -----------------------------------------------------------

    async def compact(self, revision: int) -> None:
        async def call() -> None:
            await self._conn.services()[0].compact(revision, physical=True, timeout=self._timeout)

        with contextlib.suppress(WatchCompacted):  # already compacted at or beyond it
            await self._conn.call(f"compact at {revision}", call)

    async def close(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        await self._conn.close()
