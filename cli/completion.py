"""Shell completion of unit and machine names, read from the cluster when it answers.

typer's ``--install-completion`` / ``--show-completion`` set the shell up; at
each <Tab> the shell runs fleetctl again, which calls these functions.  They
use the global options given so far (or the ``FLEETCTL_*`` environment), give
the cluster ``TIMEOUT`` seconds in all, and return nothing, quietly, when it
does not answer in time or at all (the shell then completes file names).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import typer

from .backend import Backend
from .options import DEFAULT_ENDPOINT, Driver, GlobalOptions

TIMEOUT = 1.0


def _options(ctx: typer.Context) -> GlobalOptions:
    params: dict[str, Any] = ctx.find_root().params
    defaults = GlobalOptions()
    return GlobalOptions(
        endpoint=params.get("endpoint") or DEFAULT_ENDPOINT,
        driver=Driver(params.get("driver") or Driver.API),
        etcd_endpoints=params.get("etcd_endpoints") or defaults.etcd_endpoints,
        etcd_key_prefix=params.get("etcd_key_prefix") or defaults.etcd_key_prefix,
        token=params.get("token") or None,
        request_timeout=TIMEOUT,
    )


def _ask(
    ctx: typer.Context, read: Callable[[Backend], Awaitable[list[tuple[str, str]]]]
) -> list[tuple[str, str]]:
    async def go() -> list[tuple[str, str]]:
        backend = _options(ctx).backend()
        try:
            return await asyncio.wait_for(read(backend), TIMEOUT)
        finally:
            await asyncio.wait_for(backend.close(), TIMEOUT)

    try:
        return asyncio.run(go())
    except Exception:  # any failure (unreachable, refused, timed out): no suggestions
        return []


def units(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """Unit names in the cluster that start with ``incomplete``."""

    async def read(backend: Backend) -> list[tuple[str, str]]:
        return [(u.name, u.currentState) for u in await backend.list_units()]

    return [(n, h) for n, h in _ask(ctx, read) if n.startswith(incomplete)]


def machines(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """Machine hostnames and ids that start with ``incomplete``."""

    async def read(backend: Backend) -> list[tuple[str, str]]:
        found = []
        for machine in await backend.list_machines():
            if machine.hostname:
                found.append((machine.hostname, f"{machine.id[:8]} {machine.primaryIP}"))
            found.append((machine.id, machine.hostname or machine.primaryIP))
        return found

    return [(n, h) for n, h in _ask(ctx, read) if n.startswith(incomplete)]
