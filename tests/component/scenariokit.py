"""Helpers of the scenario tests on the in-process cluster (fleetd/testing/cluster.py):
a unit file with [X-Fleet] keys, and a probe sampled while a block runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

SERVICE = "[Service]\nExecStart=/bin/sleep 1000\n"


def unit(**fleet: str) -> str:
    lines = [SERVICE.rstrip("\n")]
    if fleet:
        lines.append("[X-Fleet]")
        lines += [f"{k}={v}" for k, v in fleet.items()]
    return "\n".join(lines) + "\n"


@contextlib.asynccontextmanager
async def sampling(probe: Callable[[], None]) -> AsyncIterator[None]:
    """Run ``probe`` (which asserts) every 2 ms until the block ends; re-raise its first
    failure at the end of the block."""
    failures: list[BaseException] = []

    async def loop() -> None:
        while True:
            try:
                probe()
            except AssertionError as exc:
                failures.append(exc)
                return
            await asyncio.sleep(0.002)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if failures:
        raise failures[0]
