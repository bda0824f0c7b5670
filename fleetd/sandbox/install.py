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
must not change, nor its tmpfiles clean, the host's files), and so is, at the
place of each symlink on the way that the machine would not see, the directory
the link leads to.  What no mount can show the same way is refused before
anything is created.
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
    """The fleetd that machines run and the binds that show its files inside them."""

    fleetd: Path  # the executable fleetd.service starts
    binds: tuple[tuple[str, str], ...] = ()  # (host directory, path inside), read-only


def boot_args(binds: Sequence[tuple[str, str]]) -> list[str]:
    """boot.sh's INSTALL arguments: a ``bind SOURCE TARGET`` item per bind."""
    args: list[str] = []
    for source, target in binds:
        args += ["bind", source, target]
    return args


def locate() -> Install:
    """This process's fleetd install; SandboxError when machines could not run it."""
    fleetd_bin = Path(sys.prefix) / "bin" / "fleetd"
    if any(ord(char) < 32 or ord(char) == 127 for char in str(fleetd_bin)):
        raise SandboxError(
            f"fleetd's path {str(fleetd_bin)!r} has a control character, which a systemd "
            "unit cannot hold; clone the project into a plainly named directory and run .ci/setup"
        )
    return Install(fleetd_bin, expose(needed()))


def needed() -> list[Path]:
    """The host directories fleetd needs at run time, inside a machine as on the host."""
    source = Path(fleetd.__file__).parents[1]  # the source tree when installed editable
    paths = [Path(sys.prefix), Path(sys.base_prefix), source, etcd.binary().parent]
    return [path for path in paths if path.is_dir()]


def expose(paths: Sequence[Path]) -> tuple[tuple[str, str], ...]:
    """The binds (host directory, path inside) that show ``paths`` inside a machine.

    A hidden directory is bound at its own (resolved) path.  A hidden symlink on
    the way gets its resolved directory bound at the link's place rather than
    being recreated: systemd-tmpfiles empties /tmp at boot, but not mount points.
    """
    reals: list[Path] = []
    links: set[Path] = set()
    for path in paths:
        real, passed = _walk(Path(os.path.abspath(path)))
        reals.append(real)
        links.update(passed)
    for real in [*reals, *(link.resolve() for link in links)]:
        for own in OWN:
            if real.is_relative_to(own):
                raise SandboxError(
                    f"{real} is under {own}, which every sandbox machine mounts afresh; "
                    "install fleetd in another directory"
                )
    direct = {real for real in reals if _hidden(real)}
    direct = {d for d in direct if not any(_covers(other, d) for other in direct)}
    via = {
        link for link in links if _hidden(link) and not any(_covers(bind, link) for bind in direct)
    }
    binds = [(d, d) for d in direct] + [(link.resolve(), link) for link in via]
    # Parents first: a bind inside another one goes on top of it.
    return tuple(sorted(((str(s), str(t)) for s, t in binds), key=lambda bind: bind[1]))


def _walk(path: Path) -> tuple[Path, set[Path]]:
    """``path`` resolved like realpath(3), and each symlink passed (at its resolved place)."""
    todo = list(reversed(path.parts[1:]))
    current = Path("/")
    passed: set[Path] = set()
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
        passed.add(candidate)
        parts = Path(os.readlink(candidate)).parts
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
