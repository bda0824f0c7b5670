"""``maintenance_window``: when a machine's reboot requests may be served (pure).

Syntax: ``[DAYS] HH:MM DURATION``.  DAYS is a day (``Sun``), a list (``Sat,Sun``)
or a range (``Mon-Fri``) of English day names (three letters or whole,
any case); none means every day.  HH:MM is when the window opens, DURATION a
systemd time span (``2h``, ``1h 30min``, at most a week).  The window may run
past midnight: ``Sun 23:00 2h`` lasts until Monday 01:00.  Times are the
machine's local time: the agent sends its offset from UTC with its request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fleetd.errors import InvalidInput
from fleetd.timespan import parse_timespan

DAY = 86400
WEEK = 7 * DAY
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
FORM = "[DAYS] HH:MM DURATION, e.g. 'Sun 03:00 2h', 'Mon-Fri 22:30 1h 30min' or '04:00 1h'"


@dataclass(frozen=True, slots=True)
class Window:
    """``days``: weekdays it opens on (0 = Monday); ``start``: seconds after midnight;
    ``length``: seconds."""

    days: frozenset[int]
    start: int
    length: float
    text: str = ""

    def contains(self, local: float) -> bool:
        """Whether local time ``local`` (seconds since the epoch, shifted by the UTC
        offset) is within the window."""
        midnight = local - local % DAY
        weekday = (int(midnight // DAY) + 3) % 7  # 1970-01-01 was a Thursday
        back = 0
        while back * DAY <= self.length + self.start:
            opens = midnight - back * DAY + self.start
            if (weekday - back) % 7 in self.days and opens <= local < opens + self.length:
                return True
            back += 1
        return False

    def __str__(self) -> str:
        return self.text


def _day(word: str) -> int:
    low = word.lower()
    if low in _DAYS:
        return _DAYS.index(low)
    if low in _FULL:
        return _FULL.index(low)
    raise InvalidInput(f"{word!r} is not a day name (Mon, Tue, ... Sun)")


def _days(text: str) -> frozenset[int]:
    found: set[int] = set()
    for part in text.split(","):
        first, dash, last = part.partition("-")
        if not first or (dash and not last):
            raise InvalidInput(f"{text!r}: a day list is like 'Sat,Sun' or 'Mon-Fri'")
        a = _day(first)
        b = _day(last) if dash else a
        day = a
        found.add(day)
        while day != b:
            day = (day + 1) % 7
            found.add(day)
    return frozenset(found)


def parse_window(raw: str) -> Window:
    """Read a window (InvalidInput saying what is wrong and what is expected)."""
    words = raw.split()
    if not words:
        raise InvalidInput(f"an empty maintenance window; expected {FORM}")
    try:
        days = frozenset(range(7))
        if not _TIME.match(words[0]):
            days = _days(words[0])
            words = words[1:]
        if not words or not _TIME.match(words[0]):
            raise InvalidInput("the opening time HH:MM is missing")
        hours, minutes = (int(x) for x in words[0].split(":"))
        if len(words) < 2:
            raise InvalidInput("the duration is missing")
        length = parse_timespan(" ".join(words[1:]))
        if not 0 < length <= WEEK:
            raise InvalidInput("the duration must be more than 0 and at most a week")
    except InvalidInput as exc:
        raise InvalidInput(f"maintenance window {raw!r}: {exc}; expected {FORM}") from exc
    return Window(days, hours * 3600 + minutes * 60, length, " ".join(raw.split()))


def in_window(raw: str, wall: float, utc_offset: int) -> bool:
    """Whether wall time ``wall`` is within window ``raw`` ("" : always) of a machine
    ``utc_offset`` seconds east of UTC; a window that cannot be read never opens."""
    if not raw:
        return True
    try:
        window = parse_window(raw)
    except InvalidInput:
        return False
    return window.contains(wall + utc_offset)
