"""The directory of unit files the agent manages (``units_directory``, default /run/fleet/units).

Files are written atomically (temporary file + rename) so that a crash never
leaves half a unit file for systemd or for the adoption after a restart.
Everything in this directory belongs to fleetd; nothing else is touched.
"""

from __future__ import annotations

import os
from pathlib import Path

from fleetd.errors import FleetError

_TMP_PREFIX = ".tmp-"


class UnitDirectory:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def ensure(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    def file(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise FleetError(f"refusing unit file name {name!r}: not a plain file name")
        return self.path / name

    def write(self, name: str, text: str) -> Path:
        """Write (or replace) the file for ``name``; returns its path."""
        target = self.file(name)
        tmp = self.path / f"{_TMP_PREFIX}{name}"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, target)
        return target

    def read(self, name: str) -> str | None:
        try:
            return self.file(name).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def remove(self, name: str) -> None:
        self.file(name).unlink(missing_ok=True)

    def names(self) -> list[str]:
        """Names of the unit files present (leftover temporary files are removed)."""
        if not self.path.is_dir():
            return []
        found = []
        for entry in sorted(os.scandir(self.path), key=lambda e: e.name):
            if entry.name.startswith(_TMP_PREFIX):
                Path(entry.path).unlink(missing_ok=True)
            elif entry.is_file(follow_symlinks=False):
                found.append(entry.name)
        return found

    def contents(self) -> dict[str, str]:
        """Every managed unit file, name -> text."""
        result: dict[str, str] = {}
        for name in self.names():
            text = self.read(name)
            if text is not None:
                result[name] = text
        return result
