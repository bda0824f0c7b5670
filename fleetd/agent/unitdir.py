"""The directory of unit files the agent manages (``units_directory``, default /run/fleet/units).

Files are written atomically (temporary file + rename) so that a crash never
leaves half a unit file for systemd or for the adoption after a restart.
Everything in this directory belongs to fleetd; nothing else is touched.

Every name is validated as a unit name (``UnitName.parse``) before a path is
built from it, so no name can reach outside the directory; and no symlink in
the directory is ever followed: a link left where a unit file or a temporary
file goes is replaced, not written through, and is neither read nor listed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from fleetd.errors import FleetError
from fleetd.unitname import UnitName

log = logging.getLogger(__name__)

_TMP_PREFIX = ".tmp-"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class UnitDirectory:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def ensure(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    def file(self, name: str) -> Path:
        """The path of unit ``name``; FleetError (InvalidUnitName) if it is not a unit name."""
        return self.path / UnitName.parse(name).name

    def write(self, name: str, text: str) -> Path:
        """Write (or replace) the file for ``name``; returns its path."""
        target = self.file(name)
        tmp = self.path / f"{_TMP_PREFIX}{target.name}"
        tmp.unlink(missing_ok=True)  # a leftover, or a symlink someone placed there
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(tmp, flags, 0o644)
        except FileExistsError as exc:
            raise FleetError(f"cannot write {target}: {tmp} was created concurrently") from exc
        with open(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, target)  # replaces a symlink at ``target`` itself, never its target
        return target

    def read(self, name: str) -> str | None:
        """The text of unit ``name``'s file; None if absent or not a regular file (a symlink)."""
        path = self.file(name)
        try:
            fd = os.open(path, os.O_RDONLY | _NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("not reading %s: %s", path, exc.strerror)
            return None
        # Undecodable bytes become U+FFFD: the text then fails to match any hash and the
        # file is replaced or removed like any other stale file.
        with open(fd, encoding="utf-8", errors="replace") as fh:
            return fh.read()

    def remove(self, name: str) -> None:
        self.file(name).unlink(missing_ok=True)

    def names(self) -> list[str]:
        """Names of the unit files present (leftover temporary files are removed; symlinks
        and files that are not named like units are left alone and not listed)."""
        if not self.path.is_dir():
            return []
        found = []
        for entry in sorted(os.scandir(self.path), key=lambda e: e.name):
            if entry.name.startswith(_TMP_PREFIX):
                Path(entry.path).unlink(missing_ok=True)
            elif entry.is_file(follow_symlinks=False):
                try:
                    UnitName.parse(entry.name)
                except FleetError as exc:
                    log.warning("ignoring %s in the units directory: %s", entry.path, exc)
                    continue
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
