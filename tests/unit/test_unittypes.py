"""systemd's rules for each unit type (fleetd/unittypes.py), checked against systemd itself
where its tools are installed (``systemd-escape``)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from fleetd.errors import InvalidUnitFile, InvalidUnitName
from fleetd.unitfile import UNIT_TYPES, UnitFile, UnitName
from fleetd.unittypes import TEMPLATE_TYPES, check_unit_type, path_unit_name, slice_parent

PATHS: list[tuple[str, str]] = [
    ("/", "-"),
    ("/var/lib/x", "var-lib-x"),
    ("/var/lib/x/", "var-lib-x"),
    ("//var//lib/./x", "var-lib-x"),
    ("/srv/www-assets", "srv-www\\x2dassets"),
    ("/mnt/a b", "mnt-a\\x20b"),
    ("/mnt/.hidden", "mnt-.hidden"),
    ("/.hidden", "\\x2ehidden"),
    ("/home/user:1_x", "home-user:1_x"),
    ("/mnt/back\\slash", "mnt-back\\x5cslash"),
    ("/mnt/café", "mnt-caf\\xc3\\xa9"),
]


@pytest.mark.parametrize(("path", "stem"), PATHS)
def test_path_unit_name(path: str, stem: str) -> None:
    assert path_unit_name(path, "mount") == f"{stem}.mount"


@pytest.mark.skipif(shutil.which("systemd-escape") is None, reason="systemd-escape not installed")
@pytest.mark.parametrize("path", [p for p, _ in PATHS])
def test_path_unit_name_is_systemd_escape(path: str) -> None:
    real = subprocess.run(
        ["systemd-escape", "--path", "--suffix=mount", "--", path],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout.strip()
    assert path_unit_name(path, "mount") == real


@pytest.mark.parametrize(
    ("name", "parent"),
    [("a.slice", "-.slice"), ("a-b.slice", "a.slice"), ("a-b-c.slice", "a-b.slice")],
)
def test_slice_parent(name: str, parent: str) -> None:
    assert slice_parent(name) == parent


def check(name: str, text: str) -> list[str]:
    return check_unit_type(UnitName.parse(name), UnitFile.from_text(text))


@pytest.mark.parametrize("type_", UNIT_TYPES)
def test_templates_and_instances_by_type(type_: str) -> None:
    """systemd's unit_type_may_template(): service, socket, target, timer, path only."""
    for name in (f"a@.{type_}", f"a@1.{type_}"):
        if type_ in TEMPLATE_TYPES:
            assert check(name, "[Unit]\nDescription=x\n") == []
        else:
            with pytest.raises(InvalidUnitName, match=r"systemd\.unit\(5\): only service"):
                check(name, "[Unit]\nDescription=x\n")


REFUSED: list[tuple[str, str, type[Exception], str]] = [
    ("x.scope", "[Scope]\nMemoryMax=1G\n", InvalidUnitName, "systemd.scope(5)"),
    (
        "var-lib-y.mount",
        "[Mount]\nWhat=tmpfs\nWhere=/var/lib/x\n",
        InvalidUnitFile,
        "systemd.mount(5): a mount unit must be named after its mount point: "
        "Where=/var/lib/x needs var-lib-x.mount, not var-lib-y.mount",
    ),
    (
        "var-lib-x.mount",
        "[Mount]\nWhat=tmpfs\nWhere=/var/lib/y\nWhere=/var/lib/x\nWhere=/var/lib/z\n",
        InvalidUnitFile,
        "Where=/var/lib/z needs var-lib-z.mount",
    ),
    ("var-lib-x.mount", "[Mount]\nWhere=/var/lib/x\n", InvalidUnitFile, "What= is missing"),
    ("var-lib-x.mount", "[Mount]\nWhat=a\nWhat=\n", InvalidUnitFile, "What= is missing"),
    (
        "mnt-z.automount",
        "[Automount]\nWhere=/mnt/q\n",
        InvalidUnitFile,
        "systemd.automount(5): an automount unit must be named after its mount point: "
        "Where=/mnt/q needs mnt-q.automount",
    ),
    (
        "dev-sdc1.swap",
        "[Swap]\nWhat=/dev/sdb1\n",
        InvalidUnitFile,
        "systemd.swap(5): a swap unit must be named after its device or file: "
        "What=/dev/sdb1 needs dev-sdb1.swap",
    ),
    ("a--b.slice", "[Slice]\nCPUWeight=1\n", InvalidUnitName, "systemd.slice(5)"),
    ("-a.slice", "[Slice]\nCPUWeight=1\n", InvalidUnitName, "leading, trailing or double '-'"),
    ("a-.slice", "[Slice]\nCPUWeight=1\n", InvalidUnitName, "leading, trailing or double '-'"),
]


@pytest.mark.parametrize(("name", "text", "error", "message"), REFUSED)
def test_refused(name: str, text: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        check(name, text)
    assert message in str(info.value)


ACCEPTED: list[tuple[str, str, str | None]] = [
    # name, text, a substring of the one warning (None: no warning)
    ("var-lib-x.mount", "[Mount]\nWhat=tmpfs\nWhere=/var/lib/x\n", None),
    ("var-lib-x.mount", "[Mount]\nWhat=tmpfs\nWhere=/var/lib//x/\n", None),
    ("var-lib-x.mount", "[Mount]\nWhat=tmpfs\n", None),  # Where= from the name
    ("var-lib-x.mount", "[Mount]\nWhat=tmpfs\nWhere=/wrong\nWhere=\n", None),  # reset
    ("-.mount", "[Mount]\nWhat=/dev/sda1\nWhere=/\n", None),
    ("srv-www\\x2dassets.mount", "[Mount]\nWhat=x\nWhere=/srv/www-assets\n", None),
    ("mnt-x.mount", "[Mount]\nWhat=x\nWhere=/mnt/%i\n", None),  # specifiers: not known here
    ("var-lib-x.mount", "[Mount]\nWhat=x\nWhere=var/lib/x\n", "not an absolute path"),
    ("a-b.mount", "[Mount]\nWhat=x\nWhere=/a/c/../b\n", "not a normalised path"),
    ("mnt-q.automount", "[Automount]\nWhere=/mnt/q/\n", None),
    ("mnt-q.automount", "[Automount]\nTimeoutIdleSec=5\n", None),
    ("dev-sdb1.swap", "[Swap]\nWhat=/dev/sdb1\n", None),
    ("dev-sdb1.swap", "[Swap]\nPriority=1\n", None),
    ("dev-sdb1.swap", "[Swap]\nWhat=dev/sdb1\n", "not an absolute path"),
    ("a.slice", "[Slice]\nCPUWeight=1\n", None),
    ("a-b-c.slice", "[Slice]\nSlice=a-b.slice\n", None),
    ("-.slice", "[Slice]\nCPUWeight=1\n", None),
    ("a-b.slice", "[Slice]\nSlice=c.slice\n", "a-b.slice is always inside a.slice"),
    ("a.slice", "[Slice]\nSlice=b.slice\n", "a.slice is always inside -.slice"),
    ("a.service", "[Service]\nSlice=x.slice\n", None),
    ("dev-sda.device", "[Unit]\nDescription=x\n", None),
]


@pytest.mark.parametrize(("name", "text", "warning"), ACCEPTED)
def test_accepted(name: str, text: str, warning: str | None) -> None:
    warnings = check(name, text)
    if warning is None:
        assert warnings == []
    else:
        [got] = warnings
        assert warning in got
        assert "systemd ignores it" in got
