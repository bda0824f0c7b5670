"""systemd unit files: parse, serialise, hash (pure).

Parsing follows systemd's ``config_parse``: a UTF-8 BOM is dropped; lines end
at ``\\n``, ``\\r\\n`` or ``\\r``; lines whose first non-blank character is
``#`` or ``;`` are comments, also in the middle of a continuation; a line
ending in an unescaped ``\\`` continues on the next one, the backslash
replaced by a space; keys and values are trimmed of blanks; repeated keys and
sections are kept in order.  A line without ``=`` is refused (systemd only
warns, fleet refused it too).  Lines before the first section are dropped, as
systemd and fleet did; ``UnitFile.read`` reports them.  Names systemd would not
recognise (``Exec Start=``, ``[ Unit ]``) are kept, as fleet kept them, and
``name_warnings`` lists them; names that cannot be written back as they were
read (control characters, ``]`` in a section name) are refused.

A ``UnitFile`` holds ``(section, name, value)`` options grouped by section in
order of first appearance, which is exactly what ``to_text`` writes and what
the hash covers: reformatting whitespace or comments does not change it.
Serialisation matches fleet's (go-systemd's ``Serialize``), so hashes agree.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from fleetd.errors import InvalidUnitFile
from fleetd.unitname import MAX_NAME_LENGTH, UNIT_TYPES, UnitName, expand_specifiers

__all__ = [
    "MAX_NAME_LENGTH",
    "UNIT_TYPES",
    "UnitFile",
    "UnitName",
    "UnitOption",
    "expand_specifiers",
    "name_warnings",
    "split_fleet_values",
]

# systemd's LONG_LINE_MAX: longest logical line (continuations joined).
MAX_LINE = 1024 * 1024
_BLANKS = " \t\n\r"
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*\Z")
_SECTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class UnitOption:
    """One ``Name=Value`` line of section ``section`` (fleet's API shape)."""

    section: str
    name: str
    value: str

    def to_dict(self) -> dict[str, str]:
        return {"section": self.section, "name": self.name, "value": self.value}


@dataclass(frozen=True, slots=True)
class UnitFile:
    """A parsed unit file; build it with ``from_text`` or ``from_options``."""

    options: tuple[UnitOption, ...]
    _text: str = field(default="", init=False, repr=False, compare=False)
    _hash: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        grouped = _group(self.options)
        text = _serialise(grouped)
        object.__setattr__(self, "options", grouped)
        object.__setattr__(self, "_text", text)
        digest = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
        object.__setattr__(self, "_hash", digest)

    @classmethod
    def from_text(cls, text: str | bytes) -> UnitFile:
        """Parse unit-file text (bytes must be UTF-8); raise InvalidUnitFile with the line."""
        return cls.read(text)[0]

    @classmethod
    def read(cls, text: str | bytes) -> tuple[UnitFile, tuple[str, ...]]:
        """``from_text``, plus a warning for each line it dropped (before any section)."""
        if isinstance(text, bytes):
            text = _decode(text)
        else:
            _check_unicode(text, "the unit file")
        dropped: list[str] = []
        unit = cls(tuple(_parse(text, dropped)))
        return unit, tuple(dropped)

    @classmethod
    def from_options(
        cls, options: Iterable[UnitOption | Mapping[str, str] | tuple[str, str, str]]
    ) -> UnitFile:
        """Build from ``(section, name, value)`` triples, ``UnitOption``s or fleet API dicts.

        Each value is read the way the parser reads a line, so a value sent by
        fleet's Go client with a ``\\``-newline continuation in it is joined as
        systemd would; any other line break in a value is an error.
        """
        return cls(tuple(_checked_option(o) for o in options))

    @property
    def text(self) -> str:
        return self._text

    def to_text(self) -> str:
        """The normalised serialisation (deterministic; what the hash covers)."""
        return self._text

    @property
    def hash(self) -> str:
        """SHA-1 hex of the normalised serialisation (fleetctl shows ``short_hash``)."""
        return self._hash

    @property
    def short_hash(self) -> str:
        """The first 7 hex digits of ``hash``, as fleetctl prints it."""
        return self._hash[:7]

    @property
    def sections(self) -> tuple[str, ...]:
        """Section names in order of first appearance."""
        return tuple(dict.fromkeys(o.section for o in self.options))

    def get(self, section: str, name: str) -> list[str]:
        """Every value of ``name`` in ``section``, in file order (empty list if none)."""
        return [o.value for o in self.options if o.section == section and o.name == name]

    def last(self, section: str, name: str) -> str | None:
        """The value systemd would use for a single-valued setting (the last one)."""
        values = self.get(section, name)
        return values[-1] if values else None

    def section(self, section: str) -> tuple[UnitOption, ...]:
        return tuple(o for o in self.options if o.section == section)

    def to_dicts(self) -> list[dict[str, str]]:
        """Fleet's API shape: ``[{"section", "name", "value"}, ...]``."""
        return [o.to_dict() for o in self.options]

    def __len__(self) -> int:
        return len(self.options)


def split_fleet_values(value: str) -> list[str]:
    """Split an ``[X-Fleet]`` value into its words as fleet did.

    Words are separated by blanks; double quotes group a word that contains
    blanks and are removed (``"a.service" "b c"`` -> ``["a.service", "b c"]``).
    Empty words are dropped.  An unbalanced quote raises InvalidUnitFile.
    """
    words: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif ch in " \t" and not quoted:
            words.append("".join(current))
            current = []
        else:
            current.append(ch)
    if quoted:
        raise InvalidUnitFile(f"unbalanced double quote in {value!r}")
    words.append("".join(current))
    return [w for w in words if w]


def name_warnings(unit: UnitFile) -> list[str]:
    """Section and key names systemd would not recognise, so it ignores their settings.

    fleet accepted them, so they are kept (and hashed) as written.
    """
    found: list[str] = []
    for section in unit.sections:
        if not _SECTION.match(section):
            found.append(
                f"[{section}]: not a section name systemd knows; systemd ignores its settings"
            )
    for section, key in dict.fromkeys((o.section, o.name) for o in unit.options):
        if not key:
            found.append(f"[{section}] a setting without a key name; systemd ignores it")
        elif not _KEY.match(key):
            found.append(
                f"[{section}] {key!r}: not a valid key name (letters, digits and _ . : - only); "
                "systemd ignores the setting"
            )
    return found


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidUnitFile(f"line {line}: not valid UTF-8") from exc


def _check_unicode(text: str, where: str) -> None:
    """Refuse text that has no UTF-8 form (lone surrogates, e.g. from JSON ``"\\ud800"``)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        if "\n" in text:
            where += f", line {text[: exc.start].count(chr(10)) + 1}"
        raise InvalidUnitFile(f"{where}: not valid Unicode (lone surrogate)") from exc


def _lines(text: str) -> list[str]:
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _ends_escaped(line: str) -> bool:
    run = len(line) - len(line.rstrip("\\"))
    return run % 2 == 1


def _parse(text: str, dropped: list[str] | None = None) -> Iterable[UnitOption]:
    section: str | None = None
    continuation: str | None = None
    start = 0
    for number, raw in enumerate(_lines(text), start=1):
        if "\0" in raw:
            raise InvalidUnitFile(f"line {number}: contains a NUL byte")
        stripped = raw.lstrip(_BLANKS)
        if stripped[:1] in ("#", ";"):
            continue
        if continuation is None:
            start = number
            line = raw
        else:
            line = continuation + raw
        if len(line) > MAX_LINE:
            raise InvalidUnitFile(f"line {start}: longer than {MAX_LINE} characters")
        if _ends_escaped(line):
            continuation = line[:-1] + " "
            continue
        continuation = None
        parsed = _parse_line(line, start, section)
        if isinstance(parsed, str):
            section = parsed
        elif parsed is not None:
            yield parsed
        elif section is None and line.strip(_BLANKS) and dropped is not None:
            dropped.append(_outside(line, start))
    if continuation is not None:
        # systemd parses a continuation cut short by the end of file as it is.
        parsed = _parse_line(continuation, start, section)
        if isinstance(parsed, UnitOption):
            yield parsed
        elif section is None and continuation.strip(_BLANKS) and dropped is not None:
            dropped.append(_outside(continuation, start))


def _outside(line: str, number: int) -> str:
    text = line.strip(_BLANKS)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"line {number}: {text!r} is outside of any [Section]; ignored, as systemd does"


def _parse_line(line: str, number: int, section: str | None) -> UnitOption | str | None:
    """A section name (str), an option, or None for a blank line."""
    line = line.strip(_BLANKS)
    if not line:
        return None
    if line.startswith("["):
        if not line.endswith("]"):
            raise InvalidUnitFile(f"line {number}: malformed section header {line!r}")
        name = line[1:-1]
        _check_section(name, f"line {number}")
        return name
    if section is None:
        return None  # systemd (and fleet) ignore what comes before the first section
    key, eq, value = line.partition("=")
    if not eq:
        raise InvalidUnitFile(f"line {number}: expected Key=Value or [Section], got {line!r}")
    key = key.strip(_BLANKS)
    _check_key(key, f"line {number}")
    return UnitOption(section, key, value.strip(_BLANKS))


def _check_section(name: str, where: str) -> None:
    if not name or "]" in name or _CONTROL.search(name):
        raise InvalidUnitFile(f"{where}: invalid section name [{name}]")


def _check_key(key: str, where: str) -> None:
    if (
        _CONTROL.search(key)
        or "=" in key
        or key != key.strip(_BLANKS)
        or key.startswith(("[", "#", ";"))
    ):
        raise InvalidUnitFile(
            f"{where}: invalid key name {key!r} (it would not read back as the same key)"
        )


def _checked_option(option: UnitOption | Mapping[str, str] | tuple[str, str, str]) -> UnitOption:
    if isinstance(option, UnitOption):
        section, name, value = option.section, option.name, option.value
    elif isinstance(option, tuple):
        if len(option) != 3:
            raise InvalidUnitFile(f"option {option!r} is not (section, name, value)")
        section, name, value = option
    else:
        try:
            section, name, value = option["section"], option["name"], option["value"]
        except KeyError as exc:
            raise InvalidUnitFile(f"option {dict(option)!r} lacks {exc.args[0]!r}") from exc
    for part in (section, name, value):
        if not isinstance(part, str):
            raise InvalidUnitFile(f"option [{section}] {name}: fields must be strings")
    where = f"option [{section}] {name}"
    for part in (section, name, value):
        _check_unicode(part, where)
    _check_section(section, where)
    _check_key(name, where)
    if "\0" in value:
        raise InvalidUnitFile(f"{where}: the value contains a NUL byte")
    if len(value) > MAX_LINE:
        raise InvalidUnitFile(f"{where}: the value is longer than {MAX_LINE} characters")
    try:
        parsed = list(_parse(f"[{section}]\n{name}={value}"))
    except InvalidUnitFile as exc:
        raise InvalidUnitFile(f"{where}: the value contains a line break") from exc
    if len(parsed) != 1 or parsed[0].name != name:
        raise InvalidUnitFile(f"{where}: the value contains a line break")
    return parsed[0]


def _group(options: Iterable[UnitOption]) -> tuple[UnitOption, ...]:
    by_section: dict[str, list[UnitOption]] = {}
    for option in options:
        by_section.setdefault(option.section, []).append(option)
    return tuple(o for group in by_section.values() for o in group)


def _serialise(options: tuple[UnitOption, ...]) -> str:
    chunks: list[str] = []
    section: str | None = None
    for option in options:
        if option.section != section:
            if section is not None:
                chunks.append("\n")
            section = option.section
            chunks.append(f"[{section}]\n")
        value = option.value
        # A value ending in an odd run of backslashes would read back as a
        # continuation; a trailing blank (stripped on reading) keeps it whole.
        if _ends_escaped(value):
            value += " "
        chunks.append(f"{option.name}={value}\n")
    return "".join(chunks)
