"""The host side: preflight checks, running tools, processes by PID, the cgroup2 tree.

Every failure of a host tool becomes a ``SandboxError`` that quotes the
command and its stderr.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from fleetd.errors import SandboxError

TOOLS = ("ip", "unshare", "nsenter", "mount", "umount", "pivot_root")
SYSTEMD = Path("/lib/systemd/systemd")


def preflight() -> None:
    """Raise SandboxError unless this host can run a sandbox (Linux, root, tools, systemd)."""
    if not sys.platform.startswith("linux"):
        raise SandboxError(f"the sandbox needs Linux (namespaces); this is {sys.platform}")
    if os.geteuid() != 0:
        raise SandboxError("the sandbox needs root (it creates namespaces, veths and mounts)")
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise SandboxError(
            f"missing host tools: {', '.join(missing)} (install iproute2 and util-linux)"
        )
    if not os.access(SYSTEMD, os.X_OK):
        raise SandboxError(f"systemd is missing: {SYSTEMD} not found (install systemd)")
    cgroup2_root()


def run(
    args: Sequence[str], *, check: bool = True, timeout: float = 30.0, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a host command, capturing output; a failure raises SandboxError with its stderr."""
    try:
        proc = subprocess.run(
            list(args), capture_output=True, text=True, timeout=timeout, input=input, check=False
        )
    except FileNotFoundError as exc:
        raise SandboxError(f"command not found: {args[0]}") from exc
    except subprocess.TimeoutExpired as exc:
        raise SandboxError(f"`{' '.join(args)}` did not finish within {timeout:g}s") from exc
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise SandboxError(f"`{' '.join(args)}` failed ({proc.returncode}): {detail}")
    return proc


def alive(pid: int | None, comm: str | None = None) -> bool:
    """True when ``pid`` runs (not a zombie) and, if given, its command name is ``comm``."""
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    name, _, rest = stat.partition(" (")[2].rpartition(") ")
    if rest.startswith("Z") or rest.startswith("X"):
        return False
    return comm is None or name == comm


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(part) for part in text.split()]


def signal_pid(pid: int | None, sig: int, comm: str | None = None) -> bool:
    """Send ``sig`` if the process still is what we started; False when it is gone."""
    if not alive(pid, comm):
        return False
    assert pid is not None
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pids: Sequence[int | None], timeout: float) -> bool:
    """Wait until none of ``pids`` is alive; True when they all ended in time."""
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    _reap()
    return True


# Processes this process started and must reap (they are zombies until waited for).
# Plain PIDs, not Popen objects: a sandbox outlives the `fleetd sandbox up` that
# started it, and a Popen still running at exit warns (ResourceWarning).
_spawned: set[int] = set()


def spawn(args: Sequence[str], log: Path) -> int:
    """Start a long-lived process in its own session, output appended to ``log``."""
    out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        pid = os.posix_spawnp(
            args[0],
            list(args),
            dict(os.environ),
            file_actions=[
                (os.POSIX_SPAWN_DUP2, null, 0),
                (os.POSIX_SPAWN_DUP2, out, 1),
                (os.POSIX_SPAWN_DUP2, out, 2),
            ],
            setsid=True,
        )
    except OSError as exc:
        raise SandboxError(f"cannot start {args[0]}: {exc.strerror}") from exc
    finally:
        os.close(out)
        os.close(null)
    _spawned.add(pid)
    return pid


def _reap() -> None:
    for pid in list(_spawned):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            _spawned.discard(pid)


def stop_pid(pid: int | None, comm: str | None, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``, a process we started (checked by name)."""
    if signal_pid(pid, signal.SIGTERM, comm) and not wait_gone([pid], timeout):
        signal_pid(pid, signal.SIGKILL, comm)
        wait_gone([pid], timeout)


def cgroup2_root() -> Path:
    """Where the host's cgroup2 hierarchy is mounted."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split(" ", 1)[0] == "cgroup2":
            return Path(left.split()[4])
    raise SandboxError("no cgroup2 hierarchy is mounted on this host (systemd needs one)")


def cgroup_procs(path: Path) -> list[int]:
    """Every PID in the cgroup ``path`` and below."""
    pids: list[int] = []
    if not path.is_dir():
        return pids
    for procs in path.rglob("cgroup.procs"):
        try:
            pids.extend(int(p) for p in procs.read_text().split())
        except OSError:
            continue
    return pids


def cgroup_kill(path: Path, timeout: float = 5.0) -> None:
    """SIGKILL everything in the cgroup subtree ``path`` and wait until it is empty."""
    if not path.is_dir():
        return
    kill_file = path / "cgroup.kill"
    if kill_file.exists():
        kill_file.write_text("1")
    else:
        for pid in cgroup_procs(path):
            signal_pid(pid, signal.SIGKILL)
    if not wait_gone(cgroup_procs(path), timeout):
        raise SandboxError(f"processes in {path} survived SIGKILL: {cgroup_procs(path)}")


def cgroup_remove(path: Path) -> None:
    """Remove the (empty) cgroup ``path`` and its descendants, deepest first."""
    if not path.is_dir():
        return
    dirs = sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
    for directory in [*dirs, path]:
        deadline = time.monotonic() + 2.0
        while True:
            try:
                directory.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                # A cgroup stays busy for a moment after its last process is reaped.
                if time.monotonic() >= deadline:
                    raise SandboxError(f"cannot remove cgroup {directory}: {exc}") from exc
                time.sleep(0.05)


def mounts_under(path: Path) -> list[str]:
    """Mount points of the host's mount namespace at or below ``path``, deepest first."""
    prefix = str(path)
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = line.split()[4].encode().decode("unicode_escape")
        if target == prefix or target.startswith(prefix + "/"):
            found.append(target)
    return sorted(found, key=len, reverse=True)
