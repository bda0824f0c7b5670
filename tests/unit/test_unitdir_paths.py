"""The agent's units directory: files are written only inside it, only under valid unit
names, and never through a symlink someone left there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fleetd.agent.unitdir import UnitDirectory
from fleetd.errors import FleetError

TEXT = "[Service]\nExecStart=/bin/true\n"

BAD_NAMES = [
    "",
    ".",
    "..",
    "../x.service",
    "../../etc/passwd.service",
    "..\\x.service",
    "a/b.service",
    "/etc/passwd.service",
    "/x.service",
    "x.service/",
    ".x.service",
    ".tmp-x.service",
    "x\x00.service",
    "x\n.service",
    "x\x1b.service",
    "x",
    "x.txt",
    "passwd",
    "x" * 300 + ".service",
]


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    target = tmp_path / "outside"
    target.mkdir()
    return target


@pytest.fixture
def unitdir(tmp_path: Path) -> UnitDirectory:
    d = UnitDirectory(tmp_path / "units")
    d.ensure()
    return d


def _tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` (symlinks shown as links) with its contents."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = f"-> {os.readlink(path)}"
            elif path.is_file():
                out[rel] = path.read_text()
    return out


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_build_no_path(unitdir: UnitDirectory, tmp_path: Path, name: str) -> None:
    before = _tree(tmp_path)
    with pytest.raises(FleetError):
        unitdir.file(name)
    with pytest.raises(FleetError):
        unitdir.write(name, TEXT)
    with pytest.raises(FleetError):
        unitdir.remove(name)
    with pytest.raises(FleetError):
        unitdir.read(name)
    assert _tree(tmp_path) == before


def test_valid_names_stay_inside(unitdir: UnitDirectory) -> None:
    for name in ["web.service", "app@1.service", "a\\x2db.service", "x:y.timer", "app@.service"]:
        path = unitdir.write(name, TEXT)
        assert path.parent == unitdir.path
        assert path.name == name
        assert unitdir.read(name) == TEXT
    assert sorted(unitdir.names()) == sorted(
        ["web.service", "app@1.service", "a\\x2db.service", "x:y.timer", "app@.service"]
    )


def test_symlinked_unit_file_is_replaced_not_followed(
    unitdir: UnitDirectory, outside: Path
) -> None:
    victim = outside / "victim"
    victim.write_text("keep me")
    (unitdir.path / "web.service").symlink_to(victim)
    assert unitdir.read("web.service") is None  # not a file fleetd wrote
    assert "web.service" not in unitdir.names()
    path = unitdir.write("web.service", TEXT)
    assert not path.is_symlink()
    assert path.read_text() == TEXT
    assert victim.read_text() == "keep me"


def test_symlinked_temporary_file_is_not_followed(unitdir: UnitDirectory, outside: Path) -> None:
    victim = outside / "victim"
    victim.write_text("keep me")
    (unitdir.path / ".tmp-web.service").symlink_to(victim)
    path = unitdir.write("web.service", TEXT)
    assert path.read_text() == TEXT
    assert victim.read_text() == "keep me"
    assert sorted(p.name for p in outside.iterdir()) == ["victim"]


def test_dangling_symlink_to_a_new_file_outside(unitdir: UnitDirectory, outside: Path) -> None:
    """A link to a file that does not exist yet: writing must not create it."""
    (unitdir.path / ".tmp-web.service").symlink_to(outside / "created")
    (unitdir.path / "db.service").symlink_to(outside / "created2")
    unitdir.write("web.service", TEXT)
    unitdir.write("db.service", TEXT)
    assert list(outside.iterdir()) == []


def test_remove_of_a_symlink_removes_only_the_link(unitdir: UnitDirectory, outside: Path) -> None:
    victim = outside / "victim.service"
    victim.write_text("keep me")
    (unitdir.path / "web.service").symlink_to(victim)
    unitdir.remove("web.service")
    assert not (unitdir.path / "web.service").is_symlink()
    assert victim.read_text() == "keep me"


def test_symlinked_directory_entry_is_not_listed(unitdir: UnitDirectory, outside: Path) -> None:
    (outside / "evil.service").write_text(TEXT)
    (unitdir.path / "sub.service").symlink_to(outside, target_is_directory=True)
    (unitdir.path / "README").write_text("not a unit")
    (unitdir.path / "web.service").write_text(TEXT)
    assert unitdir.names() == ["web.service"]
    assert unitdir.contents() == {"web.service": TEXT}


def test_undecodable_file_is_read_not_fatal(unitdir: UnitDirectory) -> None:
    (unitdir.path / "web.service").write_bytes(b"[Service]\nExecStart=/bin/\xff\n")
    assert unitdir.contents() == {"web.service": "[Service]\nExecStart=/bin/\ufffd\n"}
