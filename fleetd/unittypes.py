"""What systemd requires of each unit type before it loads a unit file (pure).

systemd refuses to load (each rule names its man page):

- a template or instance of any type but service, socket, target, timer and
  path (``unit_type_may_template``);
- a ``.scope`` unit file: systemd creates scope units at runtime only;
- a mount or automount unit not named after its ``Where=`` mount point, a
  swap unit not named after its ``What=`` device or file (the path escaped as
  ``systemd-escape --path`` does: ``/var/lib/x`` -> ``var-lib-x``);
- a mount unit without ``What=``;
- a slice whose name is not a valid path in the slice tree (``a-b.slice`` is
  the child of ``a.slice``; no leading, trailing or doubled ``-``).

Where systemd only ignores a setting (a ``Where=`` that is not an absolute,
normalised path; a ``Slice=`` in a slice unit) this returns a warning.
"""

from __future__ import annotations

from fleetd.errors import InvalidUnitFile, InvalidUnitName
from fleetd.unitfile import UnitFile
from fleetd.unitname import UnitName

TEMPLATE_TYPES = ("service", "socket", "target", "timer", "path")
"""The unit types systemd lets be templates (``foo@.service``) and instances."""

_PATH_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_.")
# The setting that names a unit of each type, and where systemd documents the rule.
_NAMED_AFTER = {
    "mount": (
        "Mount",
        "Where",
        "systemd.mount(5): a mount unit must be named after its mount point",
    ),
    "automount": (
        "Automount",
        "Where",
        "systemd.automount(5): an automount unit must be named after its mount point",
    ),
    "swap": ("Swap", "What", "systemd.swap(5): a swap unit must be named after its device or file"),
}


def check_unit_type(name: UnitName, unit: UnitFile) -> list[str]:
    """Apply systemd's rules for the type of ``name`` to ``unit``.

    Raises InvalidUnitName or InvalidUnitFile naming the rule where systemd
    would refuse to load the unit; returns warnings where it would ignore a
    setting.
    """
    if (name.is_template or name.is_instance) and name.type not in TEMPLATE_TYPES:
        kind = "template" if name.is_template else "instance"
        raise InvalidUnitName(
            f"systemd.unit(5): only {', '.join(TEMPLATE_TYPES[:-1])} and {TEMPLATE_TYPES[-1]} "
            f"units can be templates or instances; systemd refuses the {name.type} {kind} "
            f"{name.name}"
        )
    if name.type == "scope":
        raise InvalidUnitName(
            "systemd.scope(5): scope units are not configured by unit files, systemd creates "
            f"them at runtime only; it would not load {name.name} (use a .service)"
        )
    warnings: list[str] = []
    if name.type in _NAMED_AFTER:
        warnings += _named_after(name, unit)
    if name.type == "mount" and not unit.last("Mount", "What"):
        raise InvalidUnitFile(
            "systemd.mount(5): [Mount] What= is missing; systemd refuses a mount unit without it"
        )
    if name.type == "slice":
        warnings += _slice(name, unit)
    return warnings


def path_unit_name(path: str, suffix: str) -> str:
    """The unit name systemd derives from an absolute, normalised ``path``
    (``unit_name_from_path``): ``/`` is ``-``; otherwise the path without its
    outer slashes, ``/`` turned into ``-``, and ``-``, ``\\``, a leading ``.``
    and every byte outside ``[A-Za-z0-9:_.]`` escaped as ``\\xNN``."""
    parts = [p for p in path.split("/") if p and p != "."]
    if not parts:
        return f"-.{suffix}"
    out: list[str] = []
    for i, ch in enumerate("/".join(parts)):
        if ch == "/":
            out.append("-")
        elif ch in _PATH_SAFE and not (i == 0 and ch == "."):
            out.append(ch)
        else:
            out.extend(f"\\x{byte:02x}" for byte in ch.encode())
    return "".join(out) + "." + suffix


def slice_parent(name: str) -> str:
    """The slice a slice unit sits in: ``a-b.slice`` -> ``a.slice``, ``a.slice`` -> ``-.slice``."""
    stem = name.removesuffix(".slice")
    head, dash, _ = stem.rpartition("-")
    return f"{head}.slice" if dash and head else "-.slice"


def _named_after(name: UnitName, unit: UnitFile) -> list[str]:
    section, key, rule = _NAMED_AFTER[name.type]
    path = unit.last(section, key)
    if not path or "%" in path:
        # Unset: systemd takes the path from the name.  Specifiers (%H ...) are only
        # known on the machine.
        return []
    if not path.startswith("/"):
        return [f"[{section}] {key}={path}: not an absolute path; systemd ignores it"]
    if "/../" in f"{path}/":
        return [f"[{section}] {key}={path}: not a normalised path (..); systemd ignores it"]
    expected = path_unit_name(path, name.type)
    if expected != name.name:
        raise InvalidUnitFile(f"{rule}: {key}={path} needs {expected}, not {name.name}")
    return []


def _slice(name: UnitName, unit: UnitFile) -> list[str]:
    stem = name.stem
    if stem != "-" and (stem.startswith("-") or stem.endswith("-") or "--" in stem):
        raise InvalidUnitName(
            "systemd.slice(5): a slice is named after its path in the slice tree, "
            f"dash-separated (a-b.slice is inside a.slice); {name.name} has a leading, "
            "trailing or double '-'"
        )
    parent = unit.last("Slice", "Slice")
    expected = slice_parent(name.name) if stem != "-" else ""
    if parent and "%" not in parent and parent != expected:
        return [
            f"[Slice] Slice={parent}: systemd ignores it; {name.name} is always inside "
            f"{expected or 'nothing (it is the root slice)'}"
        ]
    return []
