"""A sandbox machine's record and power: concurrent changes to the state file lose
nothing, and pulling the plug finds PID 1 whatever it runs."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sandboxkit import recorded

from fleetd.sandbox import host, machine
from fleetd.sandbox import state as st
from fleetd.sandbox.cluster import Sandbox
from fleetd.sandbox.state import MachineState

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


def test_machine_records_changed_from_two_threads_at_once_lose_nothing(tmp_path: Path) -> None:
    machines = tuple(
        MachineState(name, f"10.87.0.1{i}", f"id{i}", f"ns{i}", f"veth{i}")
        for i, name in enumerate(("m1", "m2"), start=1)
    )
    state = recorded(machines=machines)
    st.save(tmp_path, state)
    sb = Sandbox("zq9y")
    sb.state_dir = tmp_path
    errors: list[BaseException] = []

    def change(name: str, field: str) -> None:
        try:
            for i in range(1, 101):
                sb._update(name, **{field: i})
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=change, args=("m1", "systemd_pid")),
        threading.Thread(target=change, args=("m2", "launcher_pid")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    found = st.load(tmp_path)
    assert found is not None
    assert found.machine("m1").systemd_pid == 100
    assert found.machine("m2").launcher_pid == 100
