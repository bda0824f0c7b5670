from __future__ import annotations

import hashlib

import pytest

from fleetd.errors import InvalidUnitFile, InvalidUnitName
from fleetd.unitfile import (
    UnitFile,
    UnitName,
    UnitOption,
    expand_specifiers,
    name_warnings,
    split_fleet_values,
)

Triple = tuple[str, str, str]


def triples(unit: UnitFile) -> list[Triple]:
    return [(o.section, o.name, o.value) for o in unit.options]


# --- parsing: every syntax rule -------------------------------------------------------------

PARSE_CASES: list[tuple[str, str, list[Triple]]] = [
    ("one option", "[Unit]\nDescription=x\n", [("Unit", "Description", "x")]),
    ("no trailing newline", "[Unit]\nDescription=x", [("Unit", "Description", "x")]),
    ("empty file", "", []),
    ("only comments", "# a\n; b\n\n", []),
    ("section without options", "[Unit]\n", []),
    (
        "blanks around key and value trimmed",
        "[Unit]\n  Description \t=  a b  \t\n",
        [("Unit", "Description", "a b")],
    ),
    ("empty value kept", "[Service]\nExecStart=\n", [("Service", "ExecStart", "")]),
    ("value keeps '=' signs", "[Service]\nEnvironment=A=1\n", [("Service", "Environment", "A=1")]),
    (
        "repeated keys kept in order",
        "[Service]\nExecStartPre=/a\nExecStartPre=/b\nExecStartPre=/c\n",
        [("Service", "ExecStartPre", v) for v in ("/a", "/b", "/c")],
    ),
    (
        "repeated section merged, order within sections kept",
        "[Unit]\nA=1\n[Service]\nB=2\n[Unit]\nC=3\n",
        [("Unit", "A", "1"), ("Unit", "C", "3"), ("Service", "B", "2")],
    ),
    ("hash comment", "[Unit]\n# Description=no\nA=1\n", [("Unit", "A", "1")]),
    ("semicolon comment", "[Unit]\n; Description=no\nA=1\n", [("Unit", "A", "1")]),
    ("indented comment", "[Unit]\n   # x\n\t; y\nA=1\n", [("Unit", "A", "1")]),
    ("no inline comments", "[Unit]\nA=1 # not a comment\n", [("Unit", "A", "1 # not a comment")]),
    ("blank lines ignored", "\n\n[Unit]\n\n\nA=1\n\n", [("Unit", "A", "1")]),
    (
        "continuation: backslash becomes a space, next line appended as is",
        "[Service]\nExecStart=/bin/echo \\\n    hello\n",
        [("Service", "ExecStart", "/bin/echo      hello")],
    ),
    (
        "continuation over three lines",
        "[Service]\nExecStart=a\\\nb\\\nc\n",
        [("Service", "ExecStart", "a b c")],
    ),
    (
        "comment line inside a continuation is skipped",
        "[Service]\nExecStart=a \\\n# note\n; note\n b\n",
        [("Service", "ExecStart", "a   b")],
    ),
    (
        "empty line ends a continuation",
        "[Service]\nExecStart=a \\\n\nB=1\n",
        [("Service", "ExecStart", "a"), ("Service", "B", "1")],
    ),
    (
        "continuation at end of file",
        "[Service]\nExecStart=a \\",
        [("Service", "ExecStart", "a")],
    ),
    (
        "escaped backslash is not a continuation",
        "[Service]\nA=x\\\\\nB=y\n",
        [("Service", "A", "x\\\\"), ("Service", "B", "y")],
    ),
    ("CRLF line ends", "[Unit]\r\nA=1\r\nB=2\r\n", [("Unit", "A", "1"), ("Unit", "B", "2")]),
    ("CR line ends", "[Unit]\rA=1\r", [("Unit", "A", "1")]),
    ("BOM dropped", "\ufeff[Unit]\nA=1\n", [("Unit", "A", "1")]),
    ("section with dash", "[X-Fleet]\nGlobal=true\n", [("X-Fleet", "Global", "true")]),
    (
        "key with dash, dot, digits",
        "[Unit]\nX-Foo.bar2=1\n",
        [("Unit", "X-Foo.bar2", "1")],
    ),
    ("unicode value", "[Unit]\nDescription=héllo ✓\n", [("Unit", "Description", "héllo ✓")]),
    (
        "quotes kept in values",
        '[X-Fleet]\nConflicts="a.service" "b.service"\n',
        [("X-Fleet", "Conflicts", '"a.service" "b.service"')],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in PARSE_CASES], ids=[c[0] for c in PARSE_CASES]
)
def test_parse(text: str, expected: list[Triple]) -> None:
    assert triples(UnitFile.from_text(text)) == expected


PARSE_ERRORS: list[tuple[str, str | bytes, str]] = [
    ("line without '='", "[Unit]\nDescription\n", "line 2: expected Key=Value"),
    ("unclosed section header", "[Unit\nA=1\n", "line 1: malformed section header"),
    ("text after section header", "[Unit] x\n", "line 1: malformed section header"),
    ("empty section name", "[]\n", "line 1: invalid section name []"),
    ("']' in a section name", "[Un]it]\n", "line 1: invalid section name [Un]it]"),
    ("control character in a section name", "[Un\x1bit]\n", "invalid section name"),
    ("control character in a key", "[Unit]\nA\x1bB=1\n", "line 2: invalid key name"),
    ("NUL byte", "[Unit]\nA=1\x00\n", "line 2: contains a NUL byte"),
    ("NUL byte in bytes", b"[Unit]\n\x00\n", "line 2: contains a NUL byte"),
    ("invalid UTF-8", b"[Unit]\nA=1\nB=\xff\xfe\n", "line 3: not valid UTF-8"),
    ("overlong line", "[Unit]\nA=" + "x" * (1024 * 1024) + "\n", "line 2: longer than"),
    (
        "error line is where the continuation started",
        "[Unit]\nA=1\nnot an option \\\n  still not\n",
        "line 3: expected Key=Value",
    ),
]


@pytest.mark.parametrize(
    ("text", "message"), [c[1:] for c in PARSE_ERRORS], ids=[c[0] for c in PARSE_ERRORS]
)
def test_parse_errors(text: str | bytes, message: str) -> None:
    with pytest.raises(InvalidUnitFile) as info:
        UnitFile.from_text(text)
    assert message in str(info.value)


# --- what fleet accepted and systemd ignores: kept, with a warning --------------------------

LENIENT: list[tuple[str, str, list[Triple], str]] = [
    # name, text, options, a substring of the warning
    (
        "key outside a section: dropped, as systemd and fleet did",
        "A=1\n[Unit]\nB=2\n",
        [("Unit", "B", "2")],
        "line 1: 'A=1' is outside of any [Section]; ignored",
    ),
    (
        "a line without '=' before the first section",
        "not a unit file\n[Unit]\nB=2\n",
        [("Unit", "B", "2")],
        "line 1: 'not a unit file' is outside of any [Section]",
    ),
    ("missing key", "[Unit]\n=x\n", [("Unit", "", "x")], "[Unit] a setting without a key name"),
    (
        "key with a blank",
        "[Unit]\nMy Key=x\n",
        [("Unit", "My Key", "x")],
        "[Unit] 'My Key': not a valid key name",
    ),
    (
        "padded section name",
        "[ Unit ]\nA=1\n",
        [(" Unit ", "A", "1")],
        "[ Unit ]: not a section name systemd knows",
    ),
    (
        "quote in section name",
        '[Un"it]\nA=1\n',
        [('Un"it', "A", "1")],
        "not a section name systemd knows",
    ),
]


@pytest.mark.parametrize(
    ("text", "expected", "warning"), [c[1:] for c in LENIENT], ids=[c[0] for c in LENIENT]
)
def test_lenient(text: str, expected: list[Triple], warning: str) -> None:
    unit, dropped = UnitFile.read(text)
    assert triples(unit) == expected
    assert any(warning in w for w in (*dropped, *name_warnings(unit))), (dropped, unit)
    # what is kept writes back as it was read
    assert UnitFile.from_text(unit.to_text()) == unit
    assert UnitFile.from_options(unit.to_dicts()) == unit


def test_valid_names_have_no_warnings() -> None:
    unit, dropped = UnitFile.read("# c\n[Unit]\nA-b_c.d:e=1\n[X-Fleet]\nGlobal=true\n")
    assert dropped == ()
    assert name_warnings(unit) == []


def test_bytes_are_decoded() -> None:
    unit = UnitFile.from_text("[Unit]\nDescription=héllo\n".encode())
    assert unit.get("Unit", "Description") == ["héllo"]


# --- serialisation and hash -------------------------------------------------------------------


def test_serialisation_matches_fleet() -> None:
    unit = UnitFile.from_text("[Unit]\nDescription=x\n[Service]\nExecStart=/bin/true\n")
    assert unit.to_text() == "[Unit]\nDescription=x\n\n[Service]\nExecStart=/bin/true\n"
    assert unit.hash == hashlib.sha1(unit.to_text().encode()).hexdigest()
    assert len(unit.hash) == 40
    assert unit.short_hash == unit.hash[:7]


def test_empty_file_serialises_to_nothing() -> None:
    assert UnitFile.from_text("# nothing\n").to_text() == ""


@pytest.mark.parametrize(
    "variant",
    [
        "[Unit]\nDescription=web\n[Service]\nExecStart=/bin/true\n",
        "# a comment\n[Unit]\n  Description =   web  \n\n\n[Service]\nExecStart=/bin/true",
        "[Unit]\r\nDescription=web\r\n; c\r\n[Service]\r\nExecStart=/bin/true\r\n",
        "[Unit]\nDescription=web\n[Service]\nExecStart=/bin/true\n[Unit]\n",
    ],
)
def test_hash_ignores_formatting(variant: str) -> None:
    reference = UnitFile.from_text("[Unit]\nDescription=web\n\n[Service]\nExecStart=/bin/true\n")
    assert UnitFile.from_text(variant).hash == reference.hash


@pytest.mark.parametrize(
    "other",
    [
        "[Unit]\nDescription=web2\n[Service]\nExecStart=/bin/true\n",
        "[Service]\nExecStart=/bin/true\n[Unit]\nDescription=web\n",
        "[Unit]\nDescription=web\n[Service]\nExecStart=/bin/true\nExecStart=/bin/true\n",
    ],
)
def test_hash_changes_with_content(other: str) -> None:
    reference = UnitFile.from_text("[Unit]\nDescription=web\n[Service]\nExecStart=/bin/true\n")
    assert UnitFile.from_text(other).hash != reference.hash


@pytest.mark.parametrize(
    "text",
    [
        '[Unit]\nA=1\nA=2\n[Service]\nB=x y\n[X-Fleet]\nConflicts="a b"\n',
        "[Service]\nA=ends with backslash\\ \n",
        "[Service]\nA=two\\\\\n",
        "[Unit]\nA=\n",
    ],
)
def test_round_trip(text: str) -> None:
    unit = UnitFile.from_text(text)
    again = UnitFile.from_text(unit.to_text())
    assert again == unit
    assert again.to_text() == unit.to_text()


def test_lookup_helpers() -> None:
    unit = UnitFile.from_text(
        "[Unit]\nAfter=a\n[Service]\nExecStartPre=/1\nExecStartPre=/2\n[Unit]\nAfter=b\n"
    )
    assert unit.sections == ("Unit", "Service")
    assert unit.get("Unit", "After") == ["a", "b"]
    assert unit.get("Service", "ExecStartPre") == ["/1", "/2"]
    assert unit.get("Service", "Missing") == []
    assert unit.get("Missing", "After") == []
    assert unit.last("Unit", "After") == "b"
    assert unit.last("Unit", "Nope") is None
    assert [o.name for o in unit.section("Service")] == ["ExecStartPre", "ExecStartPre"]
    assert len(unit) == 4


# --- from_options (fleet's API shape) ---------------------------------------------------------


def test_from_options_accepts_every_shape() -> None:
    unit = UnitFile.from_options(
        [
            {"section": "Unit", "name": "Description", "value": "x"},
            ("Service", "ExecStart", "/bin/true"),
            UnitOption("Unit", "After", "y"),
        ]
    )
    assert triples(unit) == [
        ("Unit", "Description", "x"),
        ("Unit", "After", "y"),
        ("Service", "ExecStart", "/bin/true"),
    ]
    assert unit.to_dicts()[0] == {"section": "Unit", "name": "Description", "value": "x"}
    assert UnitFile.from_options(unit.to_dicts()) == unit
    assert UnitFile.from_options(unit.options).hash == unit.hash


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/bin/sh -c \\\n  'echo hi'", "/bin/sh -c    'echo hi'"),  # fleet's Go client
        ("  padded  ", "padded"),
        ("x\n", "x"),
        ("", ""),
    ],
)
def test_from_options_reads_values_like_lines(value: str, expected: str) -> None:
    unit = UnitFile.from_options([("Service", "ExecStart", value)])
    assert unit.get("Service", "ExecStart") == [expected]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (("Service", "ExecStart", "a\nb"), "contains a line break"),
        (("Service", "ExecStart", "a\nB=c"), "contains a line break"),
        (("Service", " ExecStart", "a"), "invalid key name"),
        (("Service", "#ExecStart", "a"), "invalid key name"),
        (("Service", "[Unit", "a"), "invalid key name"),
        (("Service", "A=B", "a"), "invalid key name"),
        (("Service", "A\x1bB", "a"), "invalid key name"),
        (("", "A", "a"), "invalid section name"),
        (("Ser]vice", "A", "a"), "invalid section name"),
        (("Service", "A", "a\x00"), "NUL"),
        ({"section": "Service", "name": "A"}, "lacks 'value'"),
    ],
)
def test_from_options_rejects(option: tuple[str, str, str] | dict[str, str], message: str) -> None:
    with pytest.raises(InvalidUnitFile) as info:
        UnitFile.from_options([option])
    assert message in str(info.value)


# --- fleet's multi-value split ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("a.service", ["a.service"]),
        ("a.service b.service", ["a.service", "b.service"]),
        ('"a.service" "b.service"', ["a.service", "b.service"]),
        ('"region=us east" rack=1', ["region=us east", "rack=1"]),
        ("a  b\tc", ["a", "b", "c"]),
        ('""', []),
        ("", []),
        ('x"y z"', ["xy z"]),
    ],
)
def test_split_fleet_values(value: str, words: list[str]) -> None:
    assert split_fleet_values(value) == words


def test_split_unbalanced_quote() -> None:
    with pytest.raises(InvalidUnitFile, match="unbalanced double quote"):
        split_fleet_values('"a.service b.service')


# --- unit names -------------------------------------------------------------------------------

NAMES: list[tuple[str, str, str, str, bool, bool, str | None]] = [
    # name, prefix, instance, type, is_template, is_instance, template
    ("web.service", "web", "", "service", False, False, None),
    ("web@.service", "web", "", "service", True, False, None),
    ("web@1.service", "web", "1", "service", False, True, "web@.service"),
    ("web@a:b_c.d-e.service", "web", "a:b_c.d-e", "service", False, True, "web@.service"),
    ("a.b.c.timer", "a.b.c", "", "timer", False, False, None),
    ("dev-sda1.device", "dev-sda1", "", "device", False, False, None),
    ("home\\x2duser.mount", "home\\x2duser", "", "mount", False, False, None),
    # as systemd (and fleet): the instance is everything after the first '@'
    ("a@b@c.service", "a", "b@c", "service", False, True, "a@.service"),
    ("a@@.service", "a", "@", "service", False, True, "a@.service"),
    ("a..b.service", "a..b", "", "service", False, False, None),
]


@pytest.mark.parametrize(("name", "prefix", "instance", "type_", "tmpl", "inst", "template"), NAMES)
def test_unit_names(
    name: str,
    prefix: str,
    instance: str,
    type_: str,
    tmpl: bool,
    inst: bool,
    template: str | None,
) -> None:
    unit = UnitName.parse(name)
    assert (unit.name, unit.prefix, unit.instance, unit.type) == (name, prefix, instance, type_)
    assert (unit.is_template, unit.is_instance, unit.template) == (tmpl, inst, template)
    assert unit.suffix == f".{type_}"
    assert str(unit) == name


@pytest.mark.parametrize(
    "type_",
    [
        "service",
        "socket",
        "device",
        "mount",
        "automount",
        "swap",
        "target",
        "path",
        "timer",
        "slice",
        "scope",
    ],
)
def test_every_unit_type(type_: str) -> None:
    assert UnitName.parse(f"x.{type_}").type == type_


BAD_NAMES: list[tuple[str, str]] = [
    ("", "unit name is empty"),
    ("a" * 248 + ".service", "256 characters long; systemd allows at most 255"),
    ("../etc/passwd.service", "may not contain '/'"),
    ("foo/bar.service", "may not contain '/'"),
    ("..service", "may not start with '.'"),
    (".hidden.service", "may not start with '.'"),
    ("my web.service", "invalid character ' '"),
    ("web$.service", "invalid character '$'"),
    ("wéb.service", "invalid character 'é'"),
    ("web", "no type suffix"),
    ("web.serv", "unknown type suffix '.serv'"),
    ("web.", "unknown type suffix '.'"),
    ("web.Service", "unknown type suffix '.Service'"),
    (".service", "no name before the type suffix"),
    ("@.service", "may not start with '@'"),
    ("@x.service", "may not start with '@'"),
]


@pytest.mark.parametrize(("name", "message"), BAD_NAMES)
def test_bad_unit_names(name: str, message: str) -> None:
    with pytest.raises(InvalidUnitName) as info:
        UnitName.parse(name)
    assert message in str(info.value)


def test_longest_name_allowed() -> None:
    name = "a" * 247 + ".service"
    assert len(name) == 255
    assert UnitName.parse(name).name == name


def test_instance_from_template() -> None:
    assert UnitName.parse("web@.service").with_instance("3").name == "web@3.service"
    with pytest.raises(InvalidUnitName, match="not a template"):
        UnitName.parse("web.service").with_instance("3")
    with pytest.raises(InvalidUnitName, match="invalid character"):
        UnitName.parse("web@.service").with_instance("a b")


# --- specifiers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("web@1.service", "%n", "web@1.service"),
        ("web@1.service", "%N", "web@1"),
        ("web@1.service", "%p", "web"),
        ("web@1.service", "%i", "1"),
        ("web@1.service", "%p-discovery@%i.service", "web-discovery@1.service"),
        ("web@1.service", "100%%", "100%"),
        ("web@1.service", "%%i", "%i"),
        ("web.service", "%i", ""),
        ("web.service", "%p@*.service", "web@*.service"),
        ("web.service", "no specifiers", "no specifiers"),
    ],
)
def test_specifiers(name: str, value: str, expected: str) -> None:
    assert expand_specifiers(value, UnitName.parse(name)) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [("%H", "unknown specifier %H"), ("a%", "lone '%'"), ("%x%n", "unknown specifier %x")],
)
def test_bad_specifiers(value: str, message: str) -> None:
    with pytest.raises(InvalidUnitFile, match=message):
        expand_specifiers(value, UnitName.parse("web.service"))
