"""Deciding a unit's health from its checks' results and its grace period (pure).

The rules (``Health`` in ``fleetd.model`` says what each value means):

- a unit that is not active is ``unknown``, with no message;
- an active unit without a health check is ``healthy``;
- an active unit with a check is ``unknown`` until its first result; a passed
  check makes it ``healthy``; a failed one makes it ``unhealthy`` with the
  check's message, unless it came within the grace period (``HealthCheckGrace=``
  after the unit became active): then the health stays what it was and only
  the message of a unit not yet healthy is updated (``unknown``, with why).

``since`` is the wall time at which the health took its current value and is
kept while the value stays (a new failure message does not move it).
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetd.model import Health, UnitHealth

MAX_MESSAGE = 200


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One run of a check: ``ok``, or why not (a short line)."""

    ok: bool
    message: str = ""


def inactive(previous: UnitHealth, wall: float) -> UnitHealth:
    """The health of a unit that is not (or no longer) active."""
    return _moved(previous, Health.UNKNOWN, "", wall)


def unchecked(previous: UnitHealth, wall: float) -> UnitHealth:
    """The health of an active unit without a check."""
    return _moved(previous, Health.HEALTHY, "", wall)


def judge(previous: UnitHealth, result: CheckResult, *, in_grace: bool, wall: float) -> UnitHealth:
    """The health after ``result``; ``in_grace``: the check ran within the grace period."""
    if result.ok:
        return _moved(previous, Health.HEALTHY, "", wall)
    message = short(result.message) or "check failed"
    if not in_grace:
        return _moved(previous, Health.UNHEALTHY, message, wall)
    if previous.health is Health.HEALTHY:
        return previous
    return _moved(previous, previous.health, message, wall)


def in_grace(checked_at: float, active_since: float, grace: float) -> bool:
    """Whether a check at ``checked_at`` falls within ``grace`` seconds of activation
    (both times on one monotonic clock)."""
    return checked_at - active_since < grace


def short(message: str) -> str:
    """One line of at most MAX_MESSAGE characters (the registry keeps it for every unit)."""
    line = " ".join(message.split())
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 1] + "…"


def _moved(previous: UnitHealth, health: Health, message: str, wall: float) -> UnitHealth:
    if previous.health is health:
        if previous.message == message:
            return previous
        return UnitHealth(health, message, previous.since)
    return UnitHealth(health, message, wall)
