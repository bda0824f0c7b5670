"""systemd's specifiers for a unit on a machine (fleetd/specifiers.py)."""

from __future__ import annotations

import pytest

from fleetd.errors import InvalidInput
from fleetd.specifiers import HostFacts, expand, unescape
from fleetd.unitname import UnitName

HOST = HostFacts("node1.example.com", "a" * 32, "b" * 32, "6.1.0-18-amd64")


@pytest.mark.parametrize(
    ("spec", "value"),
    [
        ("%n", "web-api@srv-www\\x2dold.service"),
        ("%N", "web-api@srv-www\\x2dold"),
        ("%p", "web-api"),
        ("%P", "web/api"),
        ("%i", "srv-www\\x2dold"),
        ("%I", "srv/www-old"),
        ("%j", "api"),
        ("%J", "api"),
        ("%f", "/srv/www-old"),
        ("%H", "node1.example.com"),
        ("%l", "node1"),
        ("%m", "a" * 32),
        ("%b", "b" * 32),
        ("%v", "6.1.0-18-amd64"),
        ("%t", "/run"),
        ("%S", "/var/lib"),
        ("%C", "/var/cache"),
        ("%L", "/var/log"),
        ("%E", "/etc"),
        ("%T", "/tmp"),
        ("%V", "/var/tmp"),
        ("%%", "%"),
    ],
)
def test_each_specifier(spec: str, value: str) -> None:
    name = UnitName.parse("web-api@srv-www\\x2dold.service")
    assert expand(f"<{spec}>", name, HOST) == f"<{value}>"


def test_a_plain_unit_has_an_empty_instance_and_f_from_the_prefix() -> None:
    name = UnitName.parse("srv-data.service")
    assert expand("%i|%I|%f|%p", name, HOST) == "||/srv/data|srv-data"


def test_text_without_specifiers_is_untouched() -> None:
    assert expand("http://127.0.0.1:80/", UnitName.parse("a.service"), HOST) == (
        "http://127.0.0.1:80/"
    )


@pytest.mark.parametrize(("value", "why"), [("%u", "%u"), ("%x", "%x"), ("a%", "lone")])
def test_unsupported_specifiers_are_named(value: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        expand(value, UnitName.parse("a.service"), HOST)


def test_unescape_is_systemds() -> None:
    assert unescape("a-b\\x2dc\\x20d") == "a/b-c d"
    assert unescape("caf\\xc3\\xa9") == "café"
