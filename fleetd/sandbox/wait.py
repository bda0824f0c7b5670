"""Polling with a deadline: the one way tests and benchmarks wait for the sandbox."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(
    predicate: Callable[[], object],
    timeout: float,
    message: str,
    interval: float = 0.05,
) -> object:
    """Call ``predicate`` until it returns something truthy (returned); TimeoutError otherwise.

    Exceptions from ``predicate`` propagate: a check that cannot be made is a failure,
    not a "not yet".
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{message} (waited {timeout:g}s)")
        time.sleep(interval)
