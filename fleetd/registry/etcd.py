"""EtcdRegistry: the Registry protocol over etcd v3 (etcd3aio / grpc.aio).

Traps this module handles so nothing above it has to (DESIGN.md section 3):

* etcd3aio retries failed unary calls by itself; transactions are sent with
  ``max_attempts=1`` so a compare-and-swap is never applied twice.
* etcd3aio's own watch resumes after the last *header* revision it saw, which
  can skip events after a reconnect, and hangs after a compacted start
  revision.  Watches therefore run their own loop on the raw gRPC stream,
  resume after the last *event* revision delivered, and raise WatchCompacted.
* Every library error becomes a fleetd.errors type with the original kept as
  ``__cause__``: unreachable/timeouts -> RegistryUnavailable, unknown lease ->
  LeaseExpired, compacted revision -> WatchCompacted, oversized request ->
  InvalidInput, anything else -> RegistryError.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc
import grpc.aio
from etcd3aio import (
    EtcdConnectionError,
    EtcdError,
    EtcdPermissionDeniedError,
    EtcdTransientError,
    EtcdUnauthenticatedError,
    prefix_range_end,
)
from etcd3aio._protobuf import Compare as PbCompare
from etcd3aio._protobuf import WatchCreateRequest, WatchRequest, WatchStub
from etcd3aio.auth import AuthService
from etcd3aio.kv import KVService
from etcd3aio.lease import LeaseService

from fleetd.errors import (
    ConfigError,
    FleetError,
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

log = logging.getLogger(__name__)

T = TypeVar("T")

PAGE_SIZE = 1000
"""Keys per Range request in get_prefix (keeps every response far below gRPC limits)."""

_CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.lb_policy_name", "round_robin"),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    # Reconnect quickly after an etcd restart instead of gRPC's default 1 s .. 120 s.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2_000),
    ("grpc.max_receive_message_length", 256 * 1024 * 1024),
]
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


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """``http://host:port``, ``https://host:port`` or ``host:port`` -> (host, port)."""
    rest = endpoint.strip()
    for scheme in ("http://", "https://"):
        if rest.startswith(scheme):
            rest = rest[len(scheme) :]
    rest = rest.rstrip("/")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"etcd endpoint must look like http://host:port, got {endpoint!r}")
    return host.strip("[]"), int(port)


def translate(exc: BaseException, what: str) -> FleetError:
    """The fleetd error for a failure of ``what`` (raise it ``from exc``)."""
    if isinstance(exc, FleetError):
        return exc
    cause = exc.__cause__ if isinstance(exc, EtcdError) else exc
    if isinstance(cause, grpc.aio.AioRpcError):
        code, detail = cause.code(), cause.details() or ""
        if code is grpc.StatusCode.NOT_FOUND and "lease" in detail:
            return LeaseExpired(f"{what}: {detail}")
        if "compacted" in detail:
            return WatchCompacted(f"{what}: {detail}")
        if "too large" in detail:
            return InvalidInput(f"{what}: etcd refused the request: {detail}")
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return RegistryUnavailable(f"{what}: etcd unreachable: {code.name} {detail}")
    if isinstance(exc, EtcdConnectionError | EtcdTransientError | TimeoutError):
        return RegistryUnavailable(f"{what}: etcd unreachable: {exc or 'timed out'}")
    if isinstance(exc, grpc.aio.UsageError):
        return RegistryUnavailable(f"{what}: connection closed: {exc}")
    if isinstance(exc, EtcdUnauthenticatedError | EtcdPermissionDeniedError):
        return RegistryError(f"{what}: etcd refused access: {exc}")
    if isinstance(cause, grpc.aio.AioRpcError):
        return RegistryError(f"{what}: {cause.code().name} {cause.details()}")
    return RegistryError(f"{what}: {exc}")


def _read(path: str | None, option: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{option}: cannot read {path}: {exc.strerror}") from exc


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
        if not endpoints:
            raise ConfigError("etcd_endpoints: at least one endpoint is needed")
        if (cert_file is None) != (key_file is None):
            raise ConfigError("etcd_certfile and etcd_keyfile must be given together")
        if cert_file is not None and ca_file is None:
            raise ConfigError("etcd_cafile is needed when a client certificate is given")
        if (username is None) != (password is None):
            raise ConfigError("etcd_username and etcd_password must be given together")
        if timeout <= 0:
            raise ConfigError(f"etcd request timeout must be positive, got {timeout}")
        self._endpoints = [parse_endpoint(e) for e in endpoints]
        self._ca = _read(ca_file, "etcd_cafile")
        self._cert = _read(cert_file, "etcd_certfile")
        self._key = _read(key_file, "etcd_keyfile")
        self._tls_server_name = tls_server_name
        self._username = username
        self._password = password
        self._timeout = timeout
        self._channel: grpc.aio.Channel | None = None
        self._kv: KVService | None = None
        self._lease: LeaseService | None = None
        self._auth: AuthService | None = None
        self._watch: WatchStub | None = None
        self._token: str | None = None
        self._connecting = asyncio.Lock()

    # -- connection ------------------------------------------------------------

    async def _target(self) -> str:
        loop = asyncio.get_running_loop()
        addresses: list[str] = []
        for host, port in self._endpoints:
            try:
                infos = await loop.getaddrinfo(host, port, family=socket.AF_INET)
            except OSError as exc:
                raise RegistryUnavailable(f"cannot resolve etcd host {host!r}: {exc}") from exc
            addresses.extend(f"{info[4][0]}:{port}" for info in infos[:1])
        return "ipv4:" + ",".join(addresses)

    async def _connect(self) -> tuple[KVService, LeaseService, WatchStub]:
        async with self._connecting:
            if self._kv is None or self._lease is None or self._watch is None:
                target = await self._target()
                options = list(_CHANNEL_OPTIONS)
                if self._ca is not None:
                    if self._tls_server_name:
                        options.append(("grpc.ssl_target_name_override", self._tls_server_name))
                    credentials = grpc.ssl_channel_credentials(self._ca, self._key, self._cert)
                    channel = grpc.aio.secure_channel(target, credentials, options=options)
                else:
                    channel = grpc.aio.insecure_channel(target, options=options)
                self._channel = channel
                self._kv = KVService(channel)
                self._lease = LeaseService(channel)
                self._auth = AuthService(channel)
                self._watch = WatchStub(channel)
                if self._username is not None:
                    await self._authenticate()
            return self._kv, self._lease, self._watch

    async def _authenticate(self) -> None:
        assert self._auth is not None and self._username is not None
        try:
            response = await self._auth.authenticate(
                self._username, self._password or "", timeout=self._timeout
            )
        except (EtcdError, grpc.aio.AioRpcError, TimeoutError) as exc:
            raise translate(exc, f"authenticate as {self._username!r}") from exc
        self._token = response.token
        for service in (self._kv, self._lease, self._auth):
            if service is not None:
                service.set_token(self._token)

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run one request, re-authenticating once if the token expired."""
        await self._connect()
        for attempt in (1, 2):
            try:
                return await call()
            except EtcdUnauthenticatedError as exc:
                if self._username is None or attempt == 2:
                    raise translate(exc, what) from exc
                await self._authenticate()
            except (EtcdError, grpc.aio.AioRpcError, grpc.aio.UsageError, TimeoutError) as exc:
                raise translate(exc, what) from exc
        raise AssertionError("unreachable")

    def _services(self) -> tuple[KVService, LeaseService]:
        assert self._kv is not None and self._lease is not None, "not connected"
        return self._kv, self._lease

    # -- key-value -------------------------------------------------------------

    @staticmethod
    def _kv_of(kv: Any) -> KeyValue:
        return KeyValue(
            kv.key.decode(), bytes(kv.value), kv.create_revision, kv.mod_revision, kv.lease
        )

    async def get(self, key: str) -> KeyValue | None:
        async def call() -> KeyValue | None:
            response = await self._services()[0].get(key, timeout=self._timeout)
            return self._kv_of(response.kvs[0]) if response.kvs else None

        return await self._call(f"get {key}", call)

    async def get_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        end = prefix_range_end(prefix)

        async def call() -> tuple[list[KeyValue], int]:
            kv = self._services()[0]
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
                return await self._call(f"get prefix {prefix}", call)
            except WatchCompacted:
                # A compaction landed between two pages: read again at a newer revision.
                continue
        return await self._call(f"get prefix {prefix}", call)

    async def put(self, key: str, value: bytes, lease: int = 0) -> int:
        async def call() -> int:
            response = await self._services()[0].put(key, value, lease, timeout=self._timeout)
            return int(response.header.revision)

        return await self._call(f"put {key}", call)

    async def delete(self, key: str, prefix: bool = False) -> int:
        async def call() -> int:
            end = prefix_range_end(key) if prefix else None
            response = await self._services()[0].delete(key, end, timeout=self._timeout)
            return int(response.deleted)

        return await self._call(f"delete {key}", call)

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
            response = await self._services()[0].txn(
                pb_compares, pb_success, pb_failure, timeout=self._timeout, max_attempts=1
            )
            return TxnResult(bool(response.succeeded), int(response.header.revision))

        return await self._call("transaction", call)

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
            response = await self._services()[1].grant(ttl, timeout=self._timeout)
            return int(response.ID)

        return await self._call("grant lease", call)

    async def refresh_lease(self, lease: int) -> int:
        async def call() -> int:
            stream = self._services()[1].keep_alive(lease)
            try:
                async with asyncio.timeout(self._timeout):
                    async for response in stream:
                        ttl = int(response.TTL)
                        break
                    else:
                        raise RegistryUnavailable(f"keepalive of lease {lease:x}: no response")
            finally:
                stream.cancel()
            if ttl <= 0:
                raise LeaseExpired(f"lease {lease:x} does not exist (expired or revoked)")
            return ttl

        return await self._call(f"refresh lease {lease:x}", call)

    async def lease_ttl(self, lease: int) -> int:
        async def call() -> int:
            response = await self._services()[1].time_to_live(lease, timeout=self._timeout)
            return int(response.TTL)

        return await self._call(f"lease {lease:x} ttl", call)

    async def revoke_lease(self, lease: int) -> None:
        async def call() -> None:
            await self._services()[1].revoke(lease, timeout=self._timeout)

        with contextlib.suppress(LeaseExpired):  # already gone: nothing to revoke
            await self._call(f"revoke lease {lease:x}", call)

    # -- watches ---------------------------------------------------------------

    def _watch_metadata(self) -> tuple[tuple[str, str], ...]:
        # hasleader: a member cut off from the cluster ends the stream, so we move on.
        token = (("token", self._token),) if self._token else ()
        return (("hasleader", "true"), *token)

    def watch_prefix(self, prefix: str, start_revision: int) -> AsyncIterator[list[WatchEvent]]:
        return self._watch_loop(prefix, start_revision)

    async def _watch_loop(
        self, prefix: str, start_revision: int
    ) -> AsyncIterator[list[WatchEvent]]:
        key, end = prefix.encode(), prefix_range_end(prefix)
        next_revision = start_revision
        backoff = 0.1
        while True:
            _, _, stub = await self._connect()
            create = WatchCreateRequest(
                key=key, range_end=end, start_revision=next_revision, progress_notify=True
            )

            async def requests(request: Any = create) -> AsyncIterator[Any]:
                yield WatchRequest(create_request=request)
                await asyncio.Event().wait()

            stream = stub.Watch(requests(), metadata=self._watch_metadata())
            try:
                async for response in stream:
                    if response.compact_revision:
                        raise WatchCompacted(
                            f"watch {prefix} from revision {next_revision}: compacted up to "
                            f"revision {response.compact_revision}"
                        )
                    if response.canceled:
                        raise RegistryError(f"watch {prefix} canceled: {response.cancel_reason}")
                    backoff = 0.1
                    if response.events:
                        batch = [self._event(e) for e in response.events]
                        next_revision = batch[-1].mod_revision + 1
                        yield batch
                    elif not response.created and response.header.revision >= next_revision:
                        # Progress notification: everything up to here was delivered.
                        next_revision = response.header.revision + 1
                log.info("watch %s: stream ended, resuming at revision %d", prefix, next_revision)
            except grpc.aio.AioRpcError as exc:
                if exc.code() is grpc.StatusCode.UNAUTHENTICATED and self._username is not None:
                    await self._authenticate()
                elif exc.code() in _PERMANENT_WATCH_CODES:
                    raise translate(exc, f"watch {prefix}") from exc
                else:
                    log.warning(
                        "watch %s: %s, resuming at revision %d in %.1fs",
                        prefix,
                        exc.code().name,
                        next_revision,
                        backoff,
                    )
            finally:
                stream.cancel()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

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
            await self._services()[0].compact(revision, physical=True, timeout=self._timeout)

        with contextlib.suppress(WatchCompacted):  # already compacted at or beyond it
            await self._call(f"compact at {revision}", call)

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        self._kv = self._lease = self._auth = None
        self._watch = None
        if channel is not None:
            await channel.close()
