"""Every file in examples/units runs as written under a real systemd.

tests/unit/test_examples.py checks what fleetd reads ([X-Fleet]); this one
checks what systemd reads: the files are installed as they are into one
sandbox machine (no fleetd there) and started with systemctl, and each
service must come up and log what its comment promises — which also proves
the shell quoting (``$$``) and specifiers (``%i``, ``%H``) in ExecStart.
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetd.sandbox.cluster import Sandbox, teardown
from fleetd.sandbox.spec import SandboxSpec
from fleetd.sandbox.state import Instance
from fleetd.sandbox.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "units"
# unit -> a line its journal must show (a regex); instances for the templates.
LOGS = {
    "hello.service": r"hello from m1",
    "web@8081.service": r"",  # checked over HTTP instead
    "cache@1.service": r"cache replica 1 serving on m1",
    "monitor.service": r"load on m1: \d+\.\d+ \d+\.\d+ \d+\.\d+",
    "app.service": r"app working on m1",
    "app-sidekick.service": r"app\.service is on m1",
    "db.service": r"db on m1",
    "backup.service": r"backup on m1",
    "worker@1.service": r"worker 1 on m1",
    "singleton.service": r"the one and only singleton, on m1",
    "bigmem.service": r"",
}


def _free_instance() -> str:
    for digit in range(10):
        if not Instance(f"ex{digit}").state_dir.exists():
            return f"ex{digit}"
    raise RuntimeError("no free sandbox name ex0..ex9 (stale sandboxes? `fleetd sandbox down`)")


@pytest.fixture(scope="module")
def machine() -> Iterator[Sandbox]:
    name = _free_instance()
    try:
        sandbox = Sandbox.up(SandboxSpec(machines=1, fleetd=False, auth=False), name=name)
        for path in sorted(EXAMPLES.iterdir()):
            proc = sandbox.exec(
                "m1", "sh", "-c", 'cat >"/run/systemd/system/$1"', "sh", path.name,
                input=path.read_text(),
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr
        assert sandbox.exec("m1", "systemctl", "daemon-reload").returncode == 0
        yield sandbox
    finally:
        teardown(name)


def _active(sandbox: Sandbox, unit: str) -> bool:
    return sandbox.exec("m1", "systemctl", "is-active", "--quiet", unit).returncode == 0


def _journal(sandbox: Sandbox, unit: str) -> str:
    return sandbox.exec("m1", "journalctl", "--no-pager", "-o", "cat", "-u", unit).stdout


def test_every_example_file_is_covered() -> None:
    templates = {re.sub(r"@[^.]+\.", "@.", unit) for unit in LOGS}
    assert templates | {"cleanup.service", "cleanup.timer"} == {p.name for p in EXAMPLES.iterdir()}


@pytest.mark.parametrize("unit", sorted(LOGS))
def test_each_service_runs_and_logs_what_it_says(machine: Sandbox, unit: str) -> None:
    proc = machine.exec("m1", "systemctl", "start", unit)
    assert proc.returncode == 0, proc.stderr
    wait_for(lambda: _active(machine, unit), 20, f"{unit} is not active")
    if LOGS[unit]:
        wait_for(
            lambda: re.search(LOGS[unit], _journal(machine, unit)),
            20,
            f"{unit} did not log {LOGS[unit]!r}",
        )
    assert _active(machine, unit), f"{unit} did not keep running"


def test_the_template_instance_serves_on_its_port(machine: Sandbox) -> None:
    assert machine.exec("m1", "systemctl", "start", "web@8081.service").returncode == 0
    url = f"http://{machine.machine('m1').ip}:8081/"

    def answers() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    wait_for(answers, 20, f"web@8081.service does not answer on {url}")


def test_the_worker_gets_its_budget_from_systemd(machine: Sandbox) -> None:
    assert machine.exec("m1", "systemctl", "start", "worker@1.service").returncode == 0
    shown = machine.exec(
        "m1", "systemctl", "show", "-p", "MemoryMax", "-p", "CPUQuotaPerSecUSec", "worker@1"
    )
    assert sorted(shown.stdout.split()) == ["CPUQuotaPerSecUSec=1s", "MemoryMax=268435456"]


def test_the_timer_runs_its_oneshot_service(machine: Sandbox) -> None:
    proc = machine.exec("m1", "systemctl", "start", "cleanup.timer")
    assert proc.returncode == 0, proc.stderr
    assert _active(machine, "cleanup.timer")
    triggers = machine.exec("m1", "systemctl", "show", "-p", "Triggers", "--value", "cleanup.timer")
    assert triggers.stdout.strip() == "cleanup.service"
    # Starting the service by hand runs it once, as the comment says.
    proc = machine.exec("m1", "systemctl", "start", "cleanup.service")
    assert proc.returncode == 0, proc.stderr
    result = machine.exec("m1", "systemctl", "show", "-p", "Result", "--value", "cleanup.service")
    assert result.stdout.strip() == "success"
    assert re.search(r"cleanup on m1: /tmp holds \S+", _journal(machine, "cleanup.service"))
