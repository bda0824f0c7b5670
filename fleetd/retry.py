"""Growing delays: retrying what failed (``Backoff``) and polling until a condition holds
(``Poll``), each delay doubling from a first one up to a cap.

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

A wait for a condition (fleetctl's ``start`` until units run, ``drain``
until a machine is empty, following a rollout) reads, checks, pauses and
reads again: ``async for attempt in Poll(first=..., cap=...)`` runs its body
at once and then after each pause, and the body breaks out when the
condition holds.  The iteration ends by itself after ``attempts`` reads
(fleet's ``--block-attempts``; 0: no limit) or at ``deadline`` seconds after
the first read (None: none; the last pause is cut short so that the last
read falls on the deadline); ``reset`` brings the pause back to ``first``
(something changed: more may follow soon); ``shorten`` lowers the cap for the
rest of the wait (the condition is about to hold: it is seen sooner).  Time is
injected: ``sleep`` and ``clock`` (``time.monotonic``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
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


def doubled(delay: float, cap: float) -> float:
    """The delay after ``delay``: twice it, at most ``cap``."""
    return min(delay * 2, cap)


def _check(what: str, first: float, cap: float) -> None:
    if not 0 < first <= cap:
        raise ValueError(f"{what}: need 0 < first <= cap, got {first}, {cap}")


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
        _check("backoff", self.first, self.cap)
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError(f"backoff: jitter is a fraction in [0, 1), got {self.jitter}")
        self.delay = self.first

    async def failed(self, exc: BaseException) -> float:
        """Log ``exc`` with its cause and the next delay, sleep that delay, then double
        the delay (up to ``cap``).  Returns the time slept."""
        wait = self.delay * (1.0 - self.jitter * self.rng())
        self.failures += 1
        self.log.warning("%s: %s; retrying in %.1fs", self.what, describe(exc), wait)
        self.delay = doubled(self.delay, self.cap)
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


@dataclass
class Poll:
    """The reads of one wait for a condition (see the module's docstring); use it once.

    ``async for attempt in poll`` yields 1, 2, ... (``poll.attempt`` keeps the
    number of reads made, for the message of a wait that ran out)."""

    first: float
    cap: float
    attempts: int = 0
    """Reads at most (0: no limit)."""
    deadline: float | None = None
    """Seconds from the first read to the last (None: no deadline)."""
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    attempt: int = field(default=0, init=False)
    """Reads begun so far."""
    delay: float = field(init=False)
    """The pause before the next read (a last one before the deadline is shorter)."""
    _end: float | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        _check("poll", self.first, self.cap)
        if self.attempts < 0:
            raise ValueError(f"poll: attempts must be >= 0, got {self.attempts}")
        if self.deadline is not None and self.deadline < 0:
            raise ValueError(f"poll: deadline must be >= 0 seconds, got {self.deadline}")
        self.delay = self.first

    def reset(self) -> None:
        """Pause ``first`` next (and double from there): something changed."""
        self.delay = self.first

    def shorten(self, cap: float) -> None:
        """From now on pause at most ``cap`` (``first`` too, if longer): the condition
        is close.  A longer ``cap`` than the current one changes nothing."""
        _check("poll", cap, cap)
        self.cap = min(self.cap, cap)
        self.first = min(self.first, self.cap)
        self.delay = min(self.delay, self.cap)

    def __aiter__(self) -> Poll:
        return self

    async def __anext__(self) -> int:
        if self.attempt == 0:
            if self.deadline is not None:
                self._end = self.clock() + self.deadline
        else:
            if 0 < self.attempts <= self.attempt:
                raise StopAsyncIteration
            pause = self.delay
            if self._end is not None:
                left = self._end - self.clock()
                if left <= 0:
                    raise StopAsyncIteration
                pause = min(pause, left)
            await self.sleep(pause)
            self.delay = doubled(self.delay, self.cap)
        self.attempt += 1
        return self.attempt
