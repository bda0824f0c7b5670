"""Unit versions: every text a unit name has had, numbered (pure).

A unit's file text is kept as a numbered version each time it changes, with
its hash, the time and who wrote it (``versions/<name>/<n>``).  The newest
number and hash of a name are its *head* (``version-heads/<name>``).  Rules:

* numbers start at 1 and never repeat for a name: the head outlives the unit,
  so a unit destroyed and submitted again continues its history;
* a text equal to the latest version's (same hash) adds no version;
* only the last ``KEEP`` versions are kept; older ones are deleted by the
  write that adds a newer one;
* a unit that exists with a text its head does not know (written before
  versions were kept) gets that text recorded first, author unknown, so the
  text being replaced is never lost.

``versions_for`` plans the versions one write of a text adds; the Store
writes them in the same transaction as the unit (Store.put_units).
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetd.caller import Caller
from fleetd.model import Unit

KEEP = 20
UNRECORDED = "unknown (written before versions were kept)"


@dataclass(frozen=True, slots=True)
class Version:
    """One kept text of a unit name.  ``time``: wall-clock seconds (None: unknown);
    ``by``/``remote``: the caller that wrote it."""

    name: str
    number: int
    text: str
    hash: str
    time: float | None
    by: str
    remote: str = ""


@dataclass(frozen=True, slots=True)
class Head:
    """The latest version of a unit name: its number and the hash of its text."""

    number: int
    hash: str


def versions_for(
    name: str,
    text: str,
    hash: str,
    current: Unit | None,
    head: Head | None,
    caller: Caller,
    now: float,
) -> tuple[Version, ...]:
    """The versions that writing ``text`` to unit ``name`` adds, oldest first.

    ``current`` is the unit as read (None: absent), ``head`` its name's head
    as read (None: no version yet).
    """
    number = head.number if head else 0
    latest = head.hash if head else None
    added: list[Version] = []
    if current is not None and current.hash != latest:
        number += 1
        added.append(Version(name, number, current.text, current.hash, None, UNRECORDED))
        latest = current.hash
    if hash != latest:
        added.append(Version(name, number + 1, text, hash, now, caller.name, caller.remote))
    return tuple(added)


def pruned(before: int, after: int) -> range:
    """The version numbers to delete when the head moves from ``before`` to ``after``:
    those that fall out of the last KEEP (numbers below 1 never existed)."""
    return range(max(1, before - KEEP + 1), max(1, after - KEEP + 1))


def kept(head: int) -> range:
    """The numbers of the versions kept when the head is ``head``."""
    return range(max(1, head - KEEP + 1), head + 1)
