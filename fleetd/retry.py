"""Retrying what failed: one backoff for every loop that must outlive an outage.

A long-running task (a registry mirror, the agent's pass, the engine's
reconcile loop, the connection to systemd) catches the errors it can outlive
and retries after a delay that starts at ``first`` and doubles up to ``cap``;
any other error is fatal and propagates to the task's supervisor.  Each failure
is logged once, on the caller's logger, with its cause and the delay before
the next attempt; a success resets the delay (``Backoff.succeeded`` says
whether it ended a run of failures).

Time is injected: ``sleep`` (``asyncio.sleep`` unless given) and, for jitter,
``rng`` (``random.random``).  Jitter is off unless asked for: with ``jitter=j`` each delay is
shortened by a random fraction of at most ``j``, so machines that lost etcd
together do not all come back in the same instant.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")

FIRST_DELAY = 0.1
MAX_DELAY = 5.0


def describe(exc: BaseException) -> str:
    """``exc`` in one line, followed by the error it was raised from, if any."""
    text = str(exc) or type(exc).__name__
    cause = exc.__cause__
    if cause is not None:
        lines = str(cause).strip().splitlines()
        reason = f": {lines[0]}" if lines else ""
        text += f" (cause: {type(cause).__name__}{reason})"
    return text


@dataclass
class Backoff:
    """The delays between the attempts of one retried thing (``what`` names it in logs)."""

    what: str
    log: logging.Logger
    first: float = FIRST_DELAY
    cap: float = MAX_DELAY
    jitter: float = 0.0
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep
    rng: Callable[[], float] = random.random
    failures: int = field(default=0, init=False)
    """Failures since the last success."""
    delay: float = field(init=False)
    """The delay after the next failure (before jitter)."""

    def __post_init__(self) -> None:
        if not 0 < self.first <= self.cap:
            raise ValueError(f"backoff: need 0 < first <= cap, got {self.first}, {self.cap}")
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError(f"backoff: jitter is a fraction in [0, 1), got {self.jitter}")
        self.delay = self.first

    async def failed(self, exc: BaseException) -> float:
        """Log ``exc`` with its cause and the next delay, sleep that delay, then double
        the delay (up to ``cap``).  Returns the time slept."""
        wait = self.delay * (1.0 - self.jitter * self.rng())
        self.failures += 1
        self.log.warning("%s: %s; retrying in %.1fs", self.what, describe(exc), wait)
        self.delay = min(self.delay * 2, self.cap)
        await self.sleep(wait)
        return wait

    def succeeded(self) -> bool:
        """Reset the delay; True if this success ended a run of failures."""
        recovered = self.failures > 0
        self.failures = 0
        self.delay = self.first
        return recovered


async def retrying(
    attempt: Callable[[], Awaitable[T]],
    backoff: Backoff,
    retry_on: type[BaseException] | tuple[type[BaseException], ...],
) -> T:
    """``await attempt()`` until it returns; errors of ``retry_on`` wait ``backoff``'s
    delay first, any other error propagates (fatal)."""
    while True:
        try:
            result = await attempt()
        except retry_on as exc:
            await backoff.failed(exc)
            continue
        backoff.succeeded()
        return result
