"""The gRPC connection to etcd and the translation of its errors (used by EtcdRegistry).

One channel serves every request; it is opened on first use inside the
running event loop and balances round-robin over the given endpoints.  With
a username the connection authenticates and re-authenticates once when a
request fails because the token expired.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Sequence
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
)
from etcd3aio._protobuf import WatchStub
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

T = TypeVar("T")

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


# How gRPC words a TLS failure: a refused handshake, or (TLS 1.3, etcd 3.4's Go) the
# server's alert about our certificate arriving after it, as data it cannot unwrap.
_TLS_FAILURES = ("handshake", "tsi_data_corrupted", "bad_certificate", "certificate_required")


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
        if "too large" in detail or "larger than max" in detail:
            return InvalidInput(f"{what}: etcd refused the request: {detail}")
        if any(word in detail.lower() for word in _TLS_FAILURES):
            # Still "unavailable" (retried), but say what to check: it is rarely the network.
            return RegistryUnavailable(
                f"{what}: TLS with etcd failed (check etcd_cafile, etcd_certfile, "
                f"etcd_keyfile and the endpoint's name): {detail}"
            )
        if "user name is empty" in detail:
            return RegistryError(
                f"{what}: etcd requires authentication (set etcd_username and etcd_password)"
            )
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


class EtcdConnection:
    """A lazily opened, optionally authenticated gRPC channel to an etcd cluster."""

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
        # https:// without etcd_cafile: TLS with the system's trusted CAs.
        self._tls = ca_file is not None or any(e.strip().startswith("https://") for e in endpoints)
        self._ca = _read(ca_file, "etcd_cafile")
        self._cert = _read(cert_file, "etcd_certfile")
        self._key = _read(key_file, "etcd_keyfile")
        self._tls_server_name = tls_server_name
        self.username = username
        self._password = password
        self.timeout = timeout
        self._channel: grpc.aio.Channel | None = None
        self._kv: KVService | None = None
        self._lease: LeaseService | None = None
        self._auth: AuthService | None = None
        self._watch: WatchStub | None = None
        self._token: str | None = None
        self._connecting = asyncio.Lock()

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

    async def connect(self) -> tuple[KVService, LeaseService, WatchStub]:
        async with self._connecting:
            if self._kv is None or self._lease is None or self._watch is None:
                target = await self._target()
                options = list(_CHANNEL_OPTIONS)
                if self._tls:
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
            if self.username is not None and self._token is None:
                # (Again, if an earlier attempt was refused: never send requests without it.)
                await self.authenticate()
            return self._kv, self._lease, self._watch

    async def authenticate(self) -> None:
        assert self._auth is not None and self.username is not None
        # Without the old token: etcd 3.4 refuses an Authenticate that carries an expired one.
        self._auth.set_token(None)
        try:
            response = await self._auth.authenticate(
                self.username, self._password or "", timeout=self.timeout
            )
        except (EtcdError, grpc.aio.AioRpcError, TimeoutError) as exc:
            raise translate(exc, f"authenticate as {self.username!r}") from exc
        self._token = response.token
        for service in (self._kv, self._lease, self._auth):
            if service is not None:
                service.set_token(self._token)

    async def call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run one request, re-authenticating once if the token expired."""
        await self.connect()
        for attempt in (1, 2):
            try:
                return await call()
            except (EtcdError, grpc.aio.AioRpcError, grpc.aio.UsageError, TimeoutError) as exc:
                expired = isinstance(exc, EtcdUnauthenticatedError) or (
                    isinstance(exc, grpc.aio.AioRpcError)
                    and exc.code() is grpc.StatusCode.UNAUTHENTICATED
                )
                if not expired or self.username is None or attempt == 2:
                    raise translate(exc, what) from exc
            # The token expired (etcd's simple tokens live 5 minutes by default).
            await self.authenticate()
        raise AssertionError("unreachable")

    def auth_service(self) -> AuthService:
        """etcd's Auth API (users, roles, enabling authentication); connect() first."""
        assert self._auth is not None, "not connected"
        return self._auth

    def services(self) -> tuple[KVService, LeaseService]:
        assert self._kv is not None and self._lease is not None, "not connected"
        return self._kv, self._lease

    def watch_metadata(self) -> tuple[tuple[str, str], ...]:
        # hasleader: a member cut off from the cluster ends the stream, so we move on.
        token = (("token", self._token),) if self._token else ()
        return (("hasleader", "true"), *token)

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        self._kv = self._lease = self._auth = None
        self._watch = None
        self._token = None
        if channel is not None:
            await channel.close()
