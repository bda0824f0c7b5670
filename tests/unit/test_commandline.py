"""Command lines split as systemd splits ExecStart= (fleetd/commandline.py)."""

from __future__ import annotations

import pytest

from fleetd.commandline import split_command
from fleetd.errors import InvalidInput


@pytest.mark.parametrize(
    ("line", "args"),
    [
        ("/bin/true", ["/bin/true"]),
        ("  /bin/echo   a  b ", ["/bin/echo", "a", "b"]),
        ('/bin/echo "a b" c', ["/bin/echo", "a b", "c"]),
        ("/bin/echo 'a \"b\" c'", ["/bin/echo", 'a "b" c']),
        ('/bin/echo a"b c"d', ["/bin/echo", "ab cd"]),
        ('/bin/echo ""', ["/bin/echo", ""]),
        ("/bin/echo a\\ b", ["/bin/echo", "a b"]),
        ('/bin/echo "a\\tb" \\x41 \\101 \\s', ["/bin/echo", "a\tb", "A", "A", " "]),
        ("/bin/echo \\u00e9 \\U0001F600", ["/bin/echo", "é", "\U0001f600"]),
        ('/bin/echo "\\"" \\\\', ["/bin/echo", '"', "\\"]),
        ("/bin/echo \\; a;b", ["/bin/echo", ";", "a;b"]),
        ("/bin/sh -c 'exit 3'", ["/bin/sh", "-c", "exit 3"]),
        ("", []),
    ],
)
def test_splits_like_systemd(line: str, args: list[str]) -> None:
    assert split_command(line) == args


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ('/bin/echo "a', "unterminated"),
        ("/bin/echo 'a", "unterminated"),
        ("/bin/echo a\\", "lone backslash"),
        ("/bin/echo \\q", "unknown escape"),
        ("/bin/echo \\xZZ", "bad escape"),
        ("/bin/echo \\x00", "bad escape"),
        ("/bin/echo \\09", "bad octal"),
        ("/bin/true ; /bin/false", "one command only"),
        ("/bin/true ;", "one command only"),
    ],
)
def test_refuses_what_systemd_refuses(line: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        split_command(line)
