"""Waiting for a condition with a deadline, for the browser drivers' tests
(fleetd/testing/browser.py, fleetd/testing/firefox.py): no sleeping as
synchronisation, and a timeout that names what was awaited."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    check: Callable[[], T | None],
    timeout: float,
    what: str,
    *,
    transient: tuple[type[BaseException], ...],
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
