"""fleetctl's global options (fleet's flags plus ours) and how a command gets its backend.

Every option can also come from ``FLEETCTL_<FLAG>`` in the environment
(``FLEETCTL_ENDPOINT``, ``FLEETCTL_TOKEN``, ...), as in fleet.  Global options
may be written before or after the command (``argv.reorder`` moves them).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

import typer

from fleetd.errors import ConfigError, FleetError
from fleetd.tls import TlsFiles

from .argv import redact, url_secrets
from .backend import ApiBackend, Backend, CliError, StoreBackend
from .table import printable

T = TypeVar("T")
DEFAULT_ENDPOINT = "unix:///var/run/fleet.sock"


class Driver(StrEnum):
    API = "api"
    ETCD = "etcd"


class Output(StrEnum):
    TABLE = "table"
    JSON = "json"


@dataclass(frozen=True)
class GlobalOptions:
    endpoint: str = DEFAULT_ENDPOINT
    driver: Driver = Driver.API
    etcd_endpoints: str = "http://127.0.0.1:2379"
    etcd_key_prefix: str = "/fleet/"
    token: str | None = None
    request_timeout: float = 30.0
    output: Output = Output.TABLE
    # TLS (fleet's --ca-file/--cert-file/--key-file): the https:// endpoint and,
    # with --driver etcd, etcd; etcd's own authentication.
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    etcd_username: str = ""
    etcd_password: str = ""
    etcd_server_name: str = ""

    @property
    def tls(self) -> TlsFiles:
        return TlsFiles(self.cert_file, self.key_file, self.ca_file)

    def backend(self) -> Backend:
        if self.driver is Driver.ETCD:
            from fleetd.registry.etcd import EtcdRegistry
            from fleetd.registry.keys import Keys
            from fleetd.registry.store import Store

            endpoints = [e.strip() for e in self.etcd_endpoints.split(",") if e.strip()]
            prefix = self.etcd_key_prefix
            if not prefix.endswith("/"):
                prefix += "/"
            try:
                keys = Keys(prefix)
            except ValueError as exc:
                raise CliError(f"--etcd-key-prefix: {exc}") from exc
            if bool(self.etcd_username) != bool(self.etcd_password):
                raise CliError("--etcd-username and --etcd-password must be given together")
            if bool(self.cert_file) != bool(self.key_file):
                raise CliError("--cert-file and --key-file must be given together")
            registry = EtcdRegistry(
                endpoints,
                ca_file=self.ca_file or None,
                cert_file=self.cert_file or None,
                key_file=self.key_file or None,
                username=self.etcd_username or None,
                password=self.etcd_password or None,
                tls_server_name=self.etcd_server_name or None,
                timeout=self.request_timeout,
            )
            return StoreBackend(Store(registry, keys))
        return ApiBackend(
            self.endpoint, token=self.token, timeout=self.request_timeout, tls=self.tls
        )


def options(ctx: typer.Context) -> GlobalOptions:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, GlobalOptions) else GlobalOptions()


def fail(message: str, opts: GlobalOptions | None = None) -> typer.Exit:
    """Print ``message`` on stderr (no secret in it) and return the exit to raise."""
    hidden = []
    if opts is not None:
        hidden = [
            opts.token or "",
            opts.etcd_password,
            *url_secrets(f"{opts.endpoint} {opts.etcd_endpoints}"),
        ]
    typer.echo(printable(redact(message, hidden), keep="\n\t"), err=True)
    return typer.Exit(1)


def run(ctx: typer.Context, work: Callable[[Backend], Awaitable[T]]) -> T:
    """Run ``work`` with a backend in a fresh event loop; user errors exit 1 with a message."""
    opts = options(ctx)

    async def go() -> T:
        backend = opts.backend()
        try:
            return await work(backend)
        finally:
            with contextlib.suppress(FleetError):
                await backend.close()

    try:
        return _run(go())
    except (FleetError, ConfigError) as exc:
        raise fail(str(exc) or type(exc).__name__, opts) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()
