"""``nextPageToken`` pagination (pure).

Collections are sorted by a string key and cut into pages of a fixed size.
The token is opaque to clients: URL-safe base64 of ``{"v": 1, "after": key}``,
the key of the last item of the previous page.  A cursor (rather than fleet's
page number) keeps pages stable while units are added or removed between
requests.  A token that does not decode is an ``InvalidInput``.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from fleetd.errors import InvalidInput

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 100
_VERSION = 1
_MAX_TOKEN = 2048


@dataclass(frozen=True, slots=True)
class PageToken:
    after: str

    def encode(self) -> str:
        raw = json.dumps({"v": _VERSION, "after": self.after}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @staticmethod
    def decode(token: str) -> PageToken:
        bad = InvalidInput("invalid value of nextPageToken query parameter")
        if not token or len(token) > _MAX_TOKEN:
            raise bad
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            data = json.loads(raw)
        except (binascii.Error, ValueError, RecursionError) as exc:
            raise bad from exc
        if (
            not isinstance(data, dict)
            or data.get("v") != _VERSION
            or not isinstance(data.get("after"), str)
            or not data["after"]
            or not data["after"].isprintable()
        ):
            raise bad
        return PageToken(data["after"])


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_token: str | None


def parse_token(values: Sequence[str]) -> PageToken | None:
    """The token from the (possibly repeated) ``nextPageToken`` query parameter."""
    if not values:
        return None
    if len(values) > 1:
        raise InvalidInput("too many values for nextPageToken")
    return PageToken.decode(values[0])


def paginate(
    items: Sequence[T],
    key: Callable[[T], str],
    token: PageToken | None,
    size: int = DEFAULT_PAGE_SIZE,
) -> Page[T]:
    """One page of ``items`` (any order; sorted here by ``key``) after ``token``."""
    if size < 1:
        raise ValueError("page size must be at least 1")
    ordered = sorted(items, key=key)
    start = 0
    if token is not None:
        start = bisect.bisect_right([key(item) for item in ordered], token.after)
    chunk = ordered[start : start + size]
    more = start + size < len(ordered)
    return Page(chunk, PageToken(key(chunk[-1])).encode() if more and chunk else None)
