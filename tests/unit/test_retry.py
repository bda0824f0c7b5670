"""The one backoff (delays, reset, what is retried and what is fatal) and the one poll
(reads, growing pauses, attempts, deadline), on injected time."""

from __future__ import annotations

import logging

import pytest

from fleetd.errors import Conflict, RegistryError, RegistryUnavailable
from fleetd.retry import Backoff, Poll, describe, retrying

log = logging.getLogger("test.retry")


class Sleeps:
    """An injected ``sleep`` that records what it was asked to wait and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def backoff(sleeps: Sleeps, **kwargs: object) -> Backoff:
    return Backoff("the thing", log, sleep=sleeps, **kwargs)  # type: ignore[arg-type]


async def test_delays_double_from_first_up_to_cap() -> None:
    sleeps = Sleeps()
    b = backoff(sleeps)
    for _ in range(9):
        await b.failed(RegistryError("down"))
    assert sleeps.waits == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]
    assert b.failures == 9


async def test_a_success_resets_the_delay_and_says_it_ended_failures() -> None:
    sleeps = Sleeps()
    b = backoff(sleeps, first=0.2, cap=1.0)
    assert b.succeeded() is False
    for _ in range(4):
        await b.failed(RegistryError("down"))
    assert b.succeeded() is True and b.succeeded() is False
    await b.failed(RegistryError("down again"))
    assert sleeps.waits == [0.2, 0.4, 0.8, 1.0, 0.2]


async def test_each_failure_is_logged_once_with_its_cause_and_the_next_delay(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="test.retry")
    b = backoff(Sleeps())
    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except OSError as os_error:
        error = RegistryUnavailable("etcd at 10.0.0.1:2379 is unreachable")
        error.__cause__ = os_error
    await b.failed(error)
    await b.failed(RegistryError("still down"))
    assert [r.getMessage() for r in caplog.records] == [
        "the thing: etcd at 10.0.0.1:2379 is unreachable "
        "(cause: ConnectionRefusedError: [Errno 111] Connection refused); retrying in 0.1s",
        "the thing: still down; retrying in 0.2s",
    ]
    assert all(r.levelno == logging.WARNING for r in caplog.records)


async def test_jitter_shortens_each_delay_by_at_most_its_fraction() -> None:
    sleeps = Sleeps()
    draws = iter([0.0, 0.5, 0.999])
    b = backoff(sleeps, jitter=0.5, rng=lambda: next(draws))
    for _ in range(3):
        await b.failed(RegistryError("down"))
    assert sleeps.waits == pytest.approx([0.1, 0.15, 0.4 * (1 - 0.4995)])


@pytest.mark.parametrize(
    "kwargs", [{"first": 0.0}, {"first": 2.0, "cap": 1.0}, {"jitter": 1.0}, {"jitter": -0.1}]
)
def test_nonsense_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff"):
        backoff(Sleeps(), **kwargs)


async def test_retrying_retries_what_it_is_told_to_until_a_result() -> None:
    sleeps = Sleeps()
    outcomes: list[Exception | str] = [
        RegistryUnavailable("a"),
        RegistryUnavailable("b"),
        "schema ok",
    ]

    async def attempt() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    b = backoff(sleeps, first=0.2)
    assert await retrying(attempt, b, RegistryError) == "schema ok"
    assert sleeps.waits == [0.2, 0.4] and b.failures == 0 and b.delay == 0.2


async def test_any_other_error_is_fatal_at_once() -> None:
    sleeps = Sleeps()
    calls = 0

    async def attempt() -> None:
        nonlocal calls
        calls += 1
        raise Conflict("not retryable")

    with pytest.raises(Conflict):
        await retrying(attempt, backoff(sleeps), RegistryError)
    assert calls == 1 and sleeps.waits == []


def test_describe_without_a_cause_is_the_message_or_the_type() -> None:
    assert describe(RegistryError("down")) == "down"
    assert describe(RegistryError()) == "RegistryError"


class Clock:
    """Injected time for a poll: ``sleep`` records the pause and moves ``now`` on by it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(round(seconds, 6))
        self.now += seconds


def poll(clock: Clock, **kwargs: object) -> Poll:
    return Poll(sleep=clock.sleep, clock=clock, **kwargs)  # type: ignore[arg-type]


async def test_poll_reads_at_once_then_after_pauses_doubling_to_the_cap() -> None:
    clock = Clock()
    reads: list[tuple[int, float]] = []
    async for attempt in poll(clock, first=0.1, cap=0.5):
        reads.append((attempt, clock.now))
        if attempt == 6:
            break  # the condition holds
    assert clock.waits == [0.1, 0.2, 0.4, 0.5, 0.5]
    assert [a for a, _ in reads] == [1, 2, 3, 4, 5, 6] and reads[0][1] == 1000.0


async def test_poll_ends_after_its_attempts_without_a_pause_after_the_last() -> None:
    clock = Clock()
    p = poll(clock, first=0.1, cap=0.5, attempts=3)
    assert [a async for a in p] == [1, 2, 3]
    assert clock.waits == [0.1, 0.2] and p.attempt == 3
    one = poll(clock, first=0.1, cap=0.5, attempts=1)
    assert [a async for a in one] == [1]


async def test_poll_ends_at_its_deadline_with_a_last_read_on_it() -> None:
    clock = Clock()
    reads: list[float] = []
    p = poll(clock, first=1.0, cap=4.0, deadline=6.0)
    async for _ in p:
        reads.append(clock.now - 1000.0)
    assert reads == [0.0, 1.0, 3.0, 6.0]  # the 4 s pause is cut to the 3 s left
    assert clock.waits == [1.0, 2.0, 3.0] and p.attempt == 4
    assert [a async for a in poll(clock, first=1.0, cap=1.0, deadline=0)] == [1]


async def test_poll_deadline_counts_from_the_first_read_and_slow_reads_use_it_up() -> None:
    clock = Clock()
    p = poll(clock, first=0.5, cap=0.5, deadline=2.0)
    clock.now += 100.0  # made long before it is used
    async for _ in p:
        clock.now += 0.7  # each read takes a while
    assert clock.waits == [0.5, 0.1] and p.attempt == 3


async def test_poll_attempts_and_deadline_whichever_comes_first() -> None:
    clock = Clock()
    assert [a async for a in poll(clock, first=1.0, cap=1.0, attempts=2, deadline=60)] == [1, 2]
    assert [a async for a in poll(clock, first=1.0, cap=1.0, attempts=99, deadline=2)] == [1, 2, 3]


async def test_poll_reset_pauses_first_again() -> None:
    clock = Clock()
    p = poll(clock, first=0.1, cap=0.8)
    async for attempt in p:
        if attempt == 4:
            p.reset()  # something changed
        if attempt == 6:
            break
    assert clock.waits == [0.1, 0.2, 0.4, 0.1, 0.2]


async def test_poll_shorten_caps_the_pauses_from_then_on_and_never_lengthens_them() -> None:
    clock = Clock()
    p = poll(clock, first=0.1, cap=0.8)
    async for attempt in p:
        if attempt == 4:
            p.shorten(0.05)  # the end is near
            p.shorten(0.5)  # a longer cap: no change
        if attempt == 5:
            p.reset()  # back to first, which is no longer than the cap
        if attempt == 7:
            break
    assert clock.waits == [0.1, 0.2, 0.4, 0.05, 0.05, 0.05]
    with pytest.raises(ValueError, match="poll"):
        p.shorten(0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"first": 0, "cap": 1},
        {"first": 2, "cap": 1},
        {"first": 0.1, "cap": 1, "attempts": -1},
        {"first": 0.1, "cap": 1, "deadline": -1},
    ],
)
def test_poll_refuses_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="poll"):
        poll(Clock(), **kwargs)
