"""Page tokens and pages (pure)."""

from __future__ import annotations

import pytest

from fleetd.api.service.pagination import PageToken, paginate, parse_token
from fleetd.errors import InvalidInput


def test_token_round_trip() -> None:
    token = PageToken("web@1.service")
    assert PageToken.decode(token.encode()) == token
    assert "=" not in token.encode()


@pytest.mark.parametrize("raw", ["", "%%%", "e30", "W10", "eyJ2IjoxLCJhZnRlciI6MX0", "x" * 3000])
def test_bad_tokens(raw: str) -> None:
    with pytest.raises(InvalidInput, match="nextPageToken"):
        PageToken.decode(raw)


def test_parse_token() -> None:
    assert parse_token([]) is None
    with pytest.raises(InvalidInput, match="too many"):
        parse_token(["a", "b"])


def test_pages_cover_everything_once() -> None:
    items = [f"u{i}" for i in range(7)]
    seen, token = [], None
    while True:
        page = paginate(items, str, token, 3)
        seen += page.items
        if page.next_token is None:
            break
        token = PageToken.decode(page.next_token)
    assert seen == sorted(items)


def test_exact_multiple_has_no_empty_last_page() -> None:
    page = paginate(["a", "b"], str, None, 2)
    assert page.items == ["a", "b"] and page.next_token is None
    assert paginate([], str, None, 2).items == []


def test_cursor_survives_removed_items() -> None:
    page = paginate(["a", "b", "c", "d"], str, PageToken("b"), 10)
    assert page.items == ["c", "d"]
    page = paginate(["a", "c", "d"], str, PageToken("b"), 10)
    assert page.items == ["c", "d"]
