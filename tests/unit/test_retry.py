"""The one backoff: delays, reset, what is retried and what is fatal, on injected time."""

from __future__ import annotations

import logging

import pytest

from fleetd.errors import Conflict, RegistryError, RegistryUnavailable
from fleetd.retry import Backoff, describe, retrying

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
