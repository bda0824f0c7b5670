"""One sandbox machine: booting it (boot.sh), running commands in it, power-off.

The launcher (boot.sh's "outer" part, a host process) supervises the machine: a
``systemctl reboot`` inside ends the machine's PID 1 with a reboot request and
the launcher boots it again, with the same identity, disk and address; each
boot is counted in ``boots`` of the machine's directory.  The machine's PID 1
therefore changes at every reboot: ``find_systemd`` finds the current one.

A machine is systemd as PID 1 in its own PID, mount, UTS, cgroup and network
namespaces, on an overlay of the host's root whose upper layer lives in
``disks/<name>`` (so it survives a power-off, like a disk).  ``seed/``
(seed.py) is copied over the root on every boot; fleetd's install is bound in
where the overlay does not show it (install.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from fleetd.errors import SandboxError
from fleetd.sandbox import host

BOOT_SCRIPT = Path(__file__).with_name("boot.sh")
LAUNCHER = "sh"
"""The launcher's process name (boot.sh under /bin/sh)."""
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def launch(
    name: str,
    machine_dir: Path,
    disk_dir: Path,
    cgroup: Path,
    netns: str,
    install_args: Sequence[str],
) -> int:
    """Start booting; returns the launcher's PID (the host-side ``unshare``).

    ``install_args``: boot.sh's binds that show fleetd's install
    (``install.boot_args``).
    """
    (machine_dir / "root").mkdir(parents=True, exist_ok=True)
    disk_dir.mkdir(parents=True, exist_ok=True)
    host.cgroup_remove(cgroup)
    cgroup.mkdir(parents=True)
    launchers = cgroup.parent / "launchers"
    launchers.mkdir(exist_ok=True)
    relative = cgroup.relative_to(host.cgroup2_root())
    args = ["/bin/sh", str(BOOT_SCRIPT), "outer", str(launchers), str(cgroup), str(relative), netns]
    return host.spawn(
        [*args, str(machine_dir), str(disk_dir), name, *install_args], machine_dir / "boot.log"
    )


def current_systemd(launcher: int | None) -> int | None:
    """The host PID of the machine's systemd now (None: not running, e.g. rebooting).

    The launcher's child is ``unshare``, whose child is PID 1 once boot.sh exec'd systemd.
    """
    if launcher is None or not host.alive(launcher, LAUNCHER):
        return None
    for child in host.children(launcher):
        for pid in host.children(child):
            if host.alive(pid, "systemd"):
                return pid
    return None


def find_systemd(launcher: int, log: Path, timeout: float = 10.0) -> int:
    """The host PID of the machine's systemd, once boot.sh has exec'd it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = current_systemd(launcher)
        if pid is not None:
            return pid
        if not host.alive(launcher):
            break
        time.sleep(0.02)
    raise SandboxError(f"machine did not start systemd; boot log {log}:\n{tail(log)}")


def boots(machine_dir: Path) -> int:
    """How many times the machine was booted (its launchers count them)."""
    try:
        return int((machine_dir / "boots").read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"({exc})"


def command(systemd_pid: int, cmd: Sequence[str]) -> list[str]:
    """argv that runs ``cmd`` inside the machine whose PID 1 is ``systemd_pid``."""
    env = ["env", "-i", f"PATH={PATH}", "HOME=/root", "LANG=C.UTF-8"]
    if "TERM" in os.environ:
        env.append(f"TERM={os.environ['TERM']}")
    ns = ["nsenter", "-t", str(systemd_pid), "-m", "-u", "-n", "-p", "-C", "--"]
    return [*ns, *env, *cmd]


def run_in(
    systemd_pid: int,
    cmd: Sequence[str],
    *,
    timeout: float = 60.0,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    return host.run(command(systemd_pid, cmd), check=False, timeout=timeout, input=input)


def boot_state(systemd_pid: int) -> str:
    """``is-system-running``, but "running" once fleetd's start is all that boot waits for.

    fleetd (``Type=notify``) may be unable to report ready, e.g. on a partitioned
    machine; when its start job is the only one running and every other job just
    waits (for it), the machine itself has booted.
    """
    state = run_in(systemd_pid, ["systemctl", "is-system-running"], timeout=10).stdout.strip()
    if state == "starting":
        jobs = run_in(systemd_pid, ["systemctl", "list-jobs", "--no-legend"], timeout=10).stdout
        rows = [line.split() for line in jobs.splitlines() if len(line.split()) >= 4]
        running = {row[1] for row in rows if row[3] == "running"}
        if running == {"fleetd.service"}:
            return "running"
    return state


def wait_booted(name: str, systemd_pid: int, timeout: float) -> str:
    """Wait until the machine has booted: 'running' or 'degraded' (see ``boot_state``)."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        if not host.alive(systemd_pid, "systemd"):
            raise SandboxError(f"machine {name}: systemd exited while booting")
        try:
            state = boot_state(systemd_pid)
        except SandboxError:
            break
        if state in ("running", "degraded"):
            return state
        if state in ("maintenance", "stopping"):
            break
        time.sleep(0.1)  # "offline" (socket not up yet), "initializing" or "starting"
    raise SandboxError(
        f"machine {name} did not boot (state {state or 'unknown'}); its journal:\n"
        + journal_tail(systemd_pid)
    )


def failed_units(systemd_pid: int) -> list[str]:
    proc = run_in(systemd_pid, ["systemctl", "--failed", "--plain", "--no-legend"], timeout=10)
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def journal_tail(systemd_pid: int, lines: int = 40) -> str:
    if not host.alive(systemd_pid, "systemd"):
        return "(machine is not running)"
    try:
        proc = run_in(systemd_pid, ["journalctl", "--no-pager", "-b", "-n", str(lines)], timeout=10)
    except SandboxError as exc:
        return f"(no journal: {exc})"
    return proc.stdout.strip() or proc.stderr.strip()


def poweroff(launcher: int | None, timeout: float = 15.0) -> None:
    """Power off as `systemctl poweroff` would (SIGRTMIN+4); SIGKILL the machine if stuck.

    The launcher is stopped first, so a machine caught rebooting is not booted again."""
    systemd_pid = current_systemd(launcher)
    host.signal_pid(launcher, signal.SIGKILL, LAUNCHER)
    host.signal_pid(systemd_pid, signal.SIGRTMIN + 4, "systemd")
    if not host.wait_gone([systemd_pid, launcher], timeout):
        kill(launcher, systemd_pid)


# PID 1's command name once a shutdown has exec'd systemd-shutdown (cut to 15 characters).
SHUTDOWN = "systemd-shutdow"


def kill(launcher: int | None, systemd_pid: int | None) -> None:
    """Pull the plug: SIGKILL to PID 1 ends every process of the machine's PID namespace
    (PID 1 may be systemd still, or the systemd-shutdown a power-off exec'd, which may
    wait up to 90 s for processes to end on a loaded host)."""
    host.signal_pid(launcher, signal.SIGKILL, LAUNCHER)
    if not host.signal_pid(systemd_pid, signal.SIGKILL, "systemd"):
        host.signal_pid(systemd_pid, signal.SIGKILL, SHUTDOWN)
    host.wait_gone([systemd_pid, launcher], 5.0)
