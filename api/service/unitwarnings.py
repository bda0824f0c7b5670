"""Extension: warnings about a unit file, carried beside fleet's answers.

``PUT /units/{name}`` answers fleet's 201/204 with no body, so its warnings
travel in one response header, a JSON array of strings in ASCII (non-ASCII
characters escaped as ``\\uXXXX``); fleet's clients ignore the header.
``PUT /units`` (an extension) carries them in each item's ``warnings``.
No FastAPI here: fleetctl decodes the header too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

WARNINGS_HEADER = "Fleetd-Warnings"
MAX_WARNINGS = 50
"""At most this many warnings in the header (a last one says how many were left out)."""
_MAX_CHARS = 1000


def encode_warnings(warnings: Sequence[str]) -> str:
    """The header value for ``warnings``: a JSON array, ASCII only, bounded."""
    kept = [w if len(w) <= _MAX_CHARS else w[: _MAX_CHARS - 3] + "..." for w in warnings]
    if len(kept) > MAX_WARNINGS:
        kept = [*kept[: MAX_WARNINGS - 1], f"... and {len(kept) - MAX_WARNINGS + 1} more"]
    return json.dumps(kept, ensure_ascii=True)


def decode_warnings(value: str | None) -> tuple[str, ...]:
    """The warnings in a header value; () if there is none or it is not a list of strings."""
    if not value:
        return ()
    try:
        decoded = json.loads(value)
    except ValueError:
        return ()
    if not isinstance(decoded, list) or not all(isinstance(w, str) for w in decoded):
        return ()
    return tuple(decoded)
