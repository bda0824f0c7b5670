"""The host's fleetd install as sandbox machines see it: what boot.sh binds in, what is refused.

A machine's root is an overlay of the host's root filesystem, and boot.sh
mounts a fresh tmpfs on its /tmp and /run before systemd starts (so systemd's
``tmp.mount`` finds /tmp mounted and leaves it, and ``systemd-tmpfiles``, which
empties /tmp at boot, stops at mount points).  A host path is therefore seen
inside exactly as on the host only when it and its parents are on the root
filesystem, outside /tmp and /run.

What fleetd needs at run time (the virtualenv, the interpreter it was made
from, the source tree of an editable install, the etcd binary's directory)
may live anywhere else too: a clone under /tmp, a venv on another filesystem.
Such a path is bind-mounted read-only at the same path (read-only: the machine
must not change, nor its tmpfiles clean, the host's files), and every symlink
on the way that the machine would not see is recreated inside.  What no mount
can show the same way is refused before anything is created.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import fleetd
from fleetd.errors import SandboxError
from fleetd.sandbox import etcd

FRESH = (Path("/tmp"), Path("/run"))  # boot.sh mounts a tmpfs on each
OWN = (Path("/proc"), Path("/sys"))  # every machine mounts its own
MAX_SYMLINKS = 40  # as the kernel's path walk


@dataclass(frozen=True, slots=True)
class Install:
    """The fleetd that machines run and how its files become visible inside them."""

    fleetd: Path  # the executable fleetd.service starts
    binds: tuple[str, ...] = ()  # host directories bound read-only at the same path
    links: tuple[tuple[str, str], ...] = ()  # (path, target): symlinks recreated inside


def boot_args(binds: Sequence[str], links: Sequence[tuple[str, str]]) -> list[str]:
    """boot.sh's INSTALL arguments: ``bind PATH`` and ``link PATH TARGET`` items."""
    args: list[str] = []
    for path in binds:
        args += ["bind", path]
    for path, target in links:
        args += ["link", path, target]
    return args


def locate() -> Install:
    """This process's fleetd install; SandboxError when machines could not run it."""
    fleetd_bin = Path(sys.prefix) / "bin" / "fleetd"
    if any(ord(char) < 32 or ord(char) == 127 for char in str(fleetd_bin)):
        raise SandboxError(
            f"fleetd's path {str(fleetd_bin)!r} has a control character, which a systemd "
            "unit cannot hold; clone the project into a plainly named directory and run .ci/setup"
        )
    binds, links = expose(needed())
    return Install(fleetd_bin, binds, links)


def needed() -> list[Path]:
    """The host directories fleetd needs at run time, inside a machine as on the host."""
    source = Path(fleetd.__file__).parents[1]  # the source tree when installed editable
    paths = [Path(sys.prefix), Path(sys.base_prefix), source, etcd.binary().parent]
    return [path for path in paths if path.is_dir()]


def expose(
    paths: Sequence[Path],
) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The binds and symlinks that show ``paths`` inside a machine at the same paths."""
    binds: list[Path] = []
    links: dict[Path, str] = {}
    for path in paths:
        real, passed = _walk(Path(os.path.abspath(path)))
        for own in OWN:
            if real.is_relative_to(own):
                raise SandboxError(
                    f"{path} is under {own}, which every sandbox machine mounts afresh; "
                    "install fleetd in another directory"
                )
        if _hidden(real):
            binds.append(real)
        links.update(passed)
    kept = [b for b in binds if not any(_covers(other, b) for other in binds if other != b)]
    shown = {
        link: target
        for link, target in links.items()
        if _hidden(link) and not any(_covers(bind, link) for bind in kept)
    }
    return (
        tuple(sorted(str(b) for b in set(kept))),
        tuple(sorted((str(link), target) for link, target in shown.items())),
    )


def _walk(path: Path) -> tuple[Path, dict[Path, str]]:
    """``path`` resolved like realpath(3), and each symlink passed (at its resolved place)."""
    todo = list(reversed(path.parts[1:]))
    current = Path("/")
    passed: dict[Path, str] = {}
    hops = 0
    while todo:
        part = todo.pop()
        if part == "..":
            current = current.parent
            continue
        candidate = current / part
        if not candidate.is_symlink():
            current = candidate
            continue
        hops += 1
        if hops > MAX_SYMLINKS:
            raise SandboxError(f"{path}: too many levels of symbolic links")
        target = os.readlink(candidate)
        passed[candidate] = target
        parts = Path(target).parts
        if parts and parts[0] == "/":
            current, parts = Path("/"), parts[1:]
        todo.extend(reversed(parts))
    return current, passed


def _devices(path: Path) -> list[int]:
    """The filesystem of ``path`` itself (a symlink too) and of each of its parents."""
    devices = [os.lstat(path).st_dev]
    devices += [os.stat(parent).st_dev for parent in path.parents]
    return devices


def _hidden(path: Path) -> bool:
    """True when a machine does not see ``path`` (resolved) as the host does."""
    if any(path.is_relative_to(fresh) for fresh in FRESH):
        return True
    root = os.stat("/").st_dev
    return any(device != root for device in _devices(path))


def _covers(bind: Path, path: Path) -> bool:
    """True when the (non-recursive) bind of ``bind`` shows ``path``: same filesystem below."""
    if path == bind or not path.is_relative_to(bind):
        return False
    device = os.stat(bind).st_dev
    between = [path, *(p for p in path.parents if p.is_relative_to(bind) and p != bind)]
    return all(os.lstat(p).st_dev == device for p in between)
