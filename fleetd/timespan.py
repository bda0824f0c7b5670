"""systemd's time spans (``systemd.time(7)``): ``500ms``, ``5s``, ``1min 30s``, ``2h`` (pure).

A time span is one or more numbers, each followed by an optional unit; the
values add up (``1min 30s`` = 90 s, also written ``1min30s``).  A number
without a unit is in seconds.  Fractions are allowed (``1.5s``); negative
values are not.  The units, as systemd reads them (the first that matches is
taken, so ``ms`` is milliseconds and ``m`` minutes):

``usec us µs μs``, ``msec ms``, ``seconds second sec s``,
``minutes minute min m``, ``hours hour hr h``, ``days day d``,
``weeks week w``, ``months month M`` (30.44 days), ``years year y`` (365.25 days).
"""

from __future__ import annotations

import re

from fleetd.errors import InvalidInput

_MINUTE = 60.0
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR
# systemd's table (time-util.c), in its order: a longer name must come before its prefix.
_UNITS: tuple[tuple[str, float], ...] = (
    ("seconds", 1.0),
    ("second", 1.0),
    ("sec", 1.0),
    ("s", 1.0),
    ("minutes", _MINUTE),
    ("minute", _MINUTE),
    ("min", _MINUTE),
    ("months", 30.44 * _DAY),
    ("month", 30.44 * _DAY),
    ("M", 30.44 * _DAY),
    ("msec", 1e-3),
    ("ms", 1e-3),
    ("m", _MINUTE),
    ("hours", _HOUR),
    ("hour", _HOUR),
    ("hr", _HOUR),
    ("h", _HOUR),
    ("days", _DAY),
    ("day", _DAY),
    ("d", _DAY),
    ("weeks", 7 * _DAY),
    ("week", 7 * _DAY),
    ("w", 7 * _DAY),
    ("years", 365.25 * _DAY),
    ("year", 365.25 * _DAY),
    ("y", 365.25 * _DAY),
    ("usec", 1e-6),
    ("us", 1e-6),
    ("µs", 1e-6),
    ("μs", 1e-6),
)
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
HINT = "a time span such as 500ms, 5s, 1min 30s or 2h"


def parse_timespan(text: str) -> float:
    """Seconds in ``text``; raises InvalidInput saying what is wrong."""
    rest = text.strip()
    if not rest:
        raise InvalidInput(f"empty time span (expected {HINT})")
    total = 0.0
    while rest:
        number = _NUMBER.match(rest)
        if number is None:
            raise InvalidInput(f"not a time span: {text!r} (expected {HINT})")
        rest = rest[number.end() :].lstrip()
        factor = 1.0
        for unit, seconds in _UNITS:
            if rest.startswith(unit):
                factor = seconds
                rest = rest[len(unit) :].lstrip()
                break
        total += float(number.group()) * factor
    return total


def format_timespan(seconds: float) -> str:
    """A short systemd spelling of ``seconds`` (``500ms``, ``5s``, ``1min 30s``)."""
    if seconds < 1 and seconds != 0:
        return f"{seconds * 1000:g}ms"
    minutes, secs = divmod(seconds, 60)
    if not minutes:
        return f"{secs:g}s"
    hours, minutes = divmod(minutes, 60)
    parts = [f"{hours:g}h"] if hours else []
    if minutes:
        parts.append(f"{minutes:g}min")
    if secs:
        parts.append(f"{secs:g}s")
    return " ".join(parts)
