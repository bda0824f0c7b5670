"""Waiting for a condition with a deadline, for tests: no sleeping as
synchronisation, and a timeout that names what was awaited.  ``wait_until`` blocks
(the browser drivers, fleetctl run in a test's thread); ``until`` is its
coroutine, for tests on an event loop."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    check: Callable[[], T | None],
    timeout: float,
    what: str,
    *,
    transient: tuple[type[BaseException], ...] = (),
    interval: float = 0.05,
) -> T:
    """Poll ``check`` until it answers something true; AssertionError naming ``what``
    at the deadline.  An exception of ``transient`` while polling (say, a page element
    drawn again) counts as not yet, and the last one is named at the deadline."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except transient as exc:
            last = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last})" if last else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}{detail}")
        time.sleep(interval)


async def until(
    check: Callable[[], T | Awaitable[T | None] | None],
    what: str,
    within: float = 5.0,
    *,
    interval: float = 0.005,
) -> T:
    """Call ``check`` (a predicate, or a coroutine function such as a registry read)
    until it answers something true and return that; AssertionError naming ``what``
    after ``within`` seconds of the loop's clock."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"not reached within {within:g}s: {what}")
        await asyncio.sleep(interval)
