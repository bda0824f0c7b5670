"""Powering a sandbox machine off: pulling the plug finds PID 1 whatever it runs."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fleetd.sandbox import host, machine

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")


def test_pulling_the_plug_kills_a_pid_1_already_in_systemd_shutdown(tmp_path: Path) -> None:
    # A power-off exec's systemd-shutdown as PID 1, which may linger on a loaded host;
    # its command name is the file's name cut to 15 characters.
    shutdown = tmp_path / "systemd-shutdown"
    shutdown.symlink_to("/bin/sleep")
    proc = subprocess.Popen([str(shutdown), "60"])
    try:
        assert host.alive(proc.pid, machine.SHUTDOWN)
        machine.kill(None, proc.pid)
        assert proc.wait(timeout=5) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()
