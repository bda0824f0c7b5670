"""Shared helpers for tests that drive a whole sandbox cluster: fleetctl as a user runs it,
and what systemd inside the machines says (the end state a test must assert).

``fleetctl(sandbox, ...)`` runs the real CLI against the sandbox's REST API;
``fleetctl_process`` starts it in the background (for faults injected while it
runs).  ``active_units`` / ``where_active`` list active units per machine with
``systemctl list-units``; ``unit_properties`` reads ``systemctl show`` of
several units at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fleetd.sandbox.cluster import Sandbox
from fleetd.sandbox.spec import API_PORT

FLEETCTL = str(Path(sys.executable).with_name("fleetctl"))


def fleetctl_env(sandbox: Sandbox, endpoint_machine: str | None = None) -> dict[str, str]:
    """The environment fleetctl needs; ``endpoint_machine`` picks whose API it talks to."""
    env = {**os.environ, **sandbox.env()}
    if endpoint_machine is not None:
        env["FLEETCTL_ENDPOINT"] = f"http://{sandbox.machine(endpoint_machine).ip}:{API_PORT}"
    return env


def fleetctl(
    sandbox: Sandbox, *args: str, timeout: float = 120, endpoint_machine: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run fleetctl to completion (output captured); it must never print a traceback."""
    proc = subprocess.run(
        [FLEETCTL, *args],
        env=fleetctl_env(sandbox, endpoint_machine),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def fleetctl_process(
    sandbox: Sandbox, *args: str, endpoint_machine: str | None = None
) -> subprocess.Popen[str]:
    """Start fleetctl in the background; collect it with ``finish``."""
    return subprocess.Popen(
        [FLEETCTL, *args],
        env=fleetctl_env(sandbox, endpoint_machine),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Wait for a background fleetctl (killed at the deadline); no traceback allowed."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(
            f"fleetctl did not finish within {timeout:g}s:\n{out}\n{err}"
        ) from None
    assert "Traceback" not in err, err
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def active_units(sandbox: Sandbox, machine: str, pattern: str) -> set[str]:
    """Units matching the glob ``pattern`` that systemd in ``machine`` reports active."""
    proc = sandbox.exec(
        machine,
        "systemctl",
        "list-units",
        "--state=active",
        "--plain",
        "--no-legend",
        "--full",
        pattern,
        timeout=30,
    )
    if proc.returncode != 0:
        raise AssertionError(f"systemctl list-units on {machine} failed: {proc.stderr}")
    return {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}


def where_active(
    sandbox: Sandbox, pattern: str, machines: Iterable[str] | None = None
) -> dict[str, list[str]]:
    """unit -> the machines (sorted) where systemd runs it, over every running machine."""
    names = [m for m in (machines or [m.name for m in sandbox.machines]) if sandbox.running(m)]
    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        found = list(pool.map(lambda m: (m, active_units(sandbox, m, pattern)), names))
    result: dict[str, list[str]] = {}
    for machine, units in found:
        for unit in units:
            result.setdefault(unit, []).append(machine)
    return {unit: sorted(where) for unit, where in result.items()}


def exactly_once(placed: Mapping[str, Sequence[str]], expected: Iterable[str]) -> bool:
    """Every expected unit active on exactly one machine (and nothing else in ``placed``)."""
    wanted = set(expected)
    return set(placed) == wanted and all(len(where) == 1 for where in placed.values())


def unit_properties(
    sandbox: Sandbox, machine: str, units: Sequence[str], properties: Sequence[str]
) -> dict[str, dict[str, str]]:
    """``systemctl show -p ...`` of ``units`` in ``machine``: unit -> property -> value."""
    proc = sandbox.exec(
        machine, "systemctl", "show", "-p", ",".join(["Id", *properties]), *units, timeout=30
    )
    if proc.returncode != 0:
        raise AssertionError(f"systemctl show on {machine} failed: {proc.stderr}")
    result: dict[str, dict[str, str]] = {}
    for block in proc.stdout.strip().split("\n\n"):
        values = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        result[values.pop("Id")] = values
    return result
