"""systemd time spans (fleetd/timespan.py)."""

from __future__ import annotations

import pytest

from fleetd.errors import InvalidInput
from fleetd.timespan import format_timespan, parse_timespan


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5", 5.0),
        ("5s", 5.0),
        ("5 s", 5.0),
        ("500ms", 0.5),
        ("500msec", 0.5),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("1min 30s", 90.0),
        ("1min30s", 90.0),
        ("2m", 120.0),
        ("2 minutes", 120.0),
        ("1h", 3600.0),
        ("1hr 1sec", 3601.0),
        ("1d", 86400.0),
        ("1w", 7 * 86400.0),
        ("250us", 0.00025),
        ("250µs", 0.00025),
        ("0", 0.0),
        ("  3s  ", 3.0),
        ("1M", 30.44 * 86400),
        ("1y", 365.25 * 86400),
    ],
)
def test_parses_systemd_spans(text: str, seconds: float) -> None:
    assert parse_timespan(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "  ", "s", "5x", "5secs", "-5s", "five", "5s,", "1e3"])
def test_refuses_what_systemd_refuses(text: str) -> None:
    with pytest.raises(InvalidInput, match="time span"):
        parse_timespan(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.5, "500ms"), (2.0, "2s"), (90.0, "1min 30s"), (3600.0, "1h"), (0.0, "0s")],
)
def test_formats_back_to_a_span_it_reads(seconds: float, text: str) -> None:
    assert format_timespan(seconds) == text
    assert parse_timespan(text) == seconds
