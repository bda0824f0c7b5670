"""Shared pieces of the end-to-end benchmarks: the host, machines' systemd, etcd timelines.

Times are ``time.monotonic()`` seconds on the host.  Sandbox machines share
the host's CLOCK_MONOTONIC (no time namespaces), so systemd's
``ActiveEnterTimestampMonotonic`` inside a machine is on the same scale.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fleetd.registry.base import EventType
from fleetd.registry.etcd import EtcdRegistry
from fleetd.sandbox import Sandbox, SandboxSpec, teardown
from fleetd.testing import unitwatch

TICKS = os.sysconf("SC_CLK_TCK")


def host_line() -> str:
    """``2 cores, AMD EPYC, Linux 6.1 ...; load 1.2 0.9 0.8``."""
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"host: {os.cpu_count()} cores, {model}, Linux {platform.release()}; load {load()}"


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (host pid), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def percentile(values: Iterable[float], p: float) -> float:
    data = sorted(values)
    if not data:
        return float("nan")
    k = (len(data) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def summary(values: list[float], unit: str = "ms", scale: float = 1000.0) -> str:
    if not values:
        return "no samples"
    v = [x * scale for x in values]
    return (
        f"p50 {percentile(v, 50):.1f} {unit}, p90 {percentile(v, 90):.1f}, "
        f"p99 {percentile(v, 99):.1f}, max {max(v):.1f}, mean {statistics.fmean(v):.1f}"
    )


@contextlib.contextmanager
def sandbox(name: str, spec: SandboxSpec, keep: bool = False) -> Iterator[Sandbox]:
    """A sandbox that is always torn down (unless ``keep``), even on Ctrl-C."""
    teardown(name)  # a previous interrupted run of this benchmark
    sb = Sandbox.up(spec, name=name, timeout=180)
    try:
        yield sb
    finally:
        if not keep:
            teardown(name)


FLEETCTL = str(Path(sys.executable).with_name("fleetctl"))
"""The fleetctl of this virtualenv."""


def fleetctl(sb: Sandbox, *args: str, cwd: str) -> subprocess.Popen[str]:
    """``fleetctl ARGS`` against the sandbox ``sb``, started from ``cwd`` (not waited for)."""
    return subprocess.Popen(
        [FLEETCTL, *args],
        env={**os.environ, **sb.env()},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def sh(sb: Sandbox, machine: str, script: str, timeout: float = 60.0) -> str:
    proc = sb.exec(machine, "sh", "-c", script, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{machine}: {script!r} failed: {proc.stderr.strip()}")
    return proc.stdout


def active_since(sb: Sandbox, machine: str, pattern: str) -> dict[str, float]:
    """Active units matching ``pattern`` -> when systemd entered ``active`` (host monotonic)."""
    out = sb.exec(
        machine,
        "systemctl",
        "show",
        "--state=active",
        "-p",
        "Id,ActiveState,ActiveEnterTimestampMonotonic",
        pattern,
    ).stdout
    result: dict[str, float] = {}
    for block in out.split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if props.get("ActiveState") == "active" and props.get("Id"):
            result[props["Id"]] = int(props["ActiveEnterTimestampMonotonic"]) / 1e6
    return result


class ActiveSampler:
    """Active units matching ``pattern`` in every machine, sampled every ``interval`` by one
    long-lived ``fleetd.testing.unitwatch`` per machine (no process started per sample).

    ``samples`` holds ``(t, {machine: active units})`` in arrival order: one entry per
    machine report, combined with every other machine's latest report, so two machines
    count as running a unit "at once" when their reports overlap in time.
    """

    def __init__(self, sb: Sandbox, pattern: str, interval: float = 0.1) -> None:
        self.names = [m.name for m in sb.machines]
        argv = unitwatch.argv(pattern, interval)
        self.samples: list[tuple[float, dict[str, set[str]]]] = []
        self.per_machine: dict[str, list[float]] = {name: [] for name in self.names}
        self._latest: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._procs = [
            subprocess.Popen(
                sb.command(name, *argv),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for name in self.names
        ]
        self._threads = [
            threading.Thread(target=self._read, args=(name, proc), daemon=True)
            for name, proc in zip(self.names, self._procs, strict=True)
        ]
        for thread in self._threads:
            thread.start()

    def _read(self, name: str, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            stamp, *units = line.split()
            t = float(stamp)
            with self._lock:
                self.per_machine[name].append(t)
                self._latest[name] = set(units)
                if len(self._latest) == len(self.names):
                    self.samples.append((t, {m: self._latest[m] for m in self.names}))

    def stop(self) -> None:
        for proc in self._procs:
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in self._procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for thread in self._threads:
            thread.join()

    def intervals(self) -> list[float]:
        """Gaps between consecutive reports of each machine."""
        gaps: list[float] = []
        for times in self.per_machine.values():
            gaps.extend(b - a for a, b in itertools.pairwise(times))
        return gaps


def machine_cpu(sb: Sandbox, machine: str) -> dict[str, float]:
    """CPU seconds so far of fleetd and of systemd (PID 1) inside ``machine``."""
    script = (
        "for p in $(systemctl show -p MainPID --value fleetd.service) 1; do "
        "cut -d')' -f2- /proc/$p/stat; done"
    )
    lines = sh(sb, machine, script).splitlines()
    values = [(int(f.split()[11]) + int(f.split()[12])) / TICKS for f in lines]
    return {"fleetd": values[0], "systemd": values[1]}


class CpuMeter:
    """CPU seconds used between ``start()`` and ``stop()`` by etcd and each machine's
    fleetd and systemd (sampled with ``machine_cpu``)."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.names = [m.name for m in sb.machines]
        self.etcd_pid = sb._state().etcd_pid

    def sample(self) -> dict[str, float]:
        result = {"etcd": cpu_seconds(self.etcd_pid) if self.etcd_pid else 0.0}
        for name in self.names:
            for what, value in machine_cpu(self.sb, name).items():
                result[f"{name} {what}"] = value
        return result

    def start(self) -> None:
        self._start = self.sample()

    def stop(self) -> dict[str, float]:
        end = self.sample()
        return {k: end[k] - self._start.get(k, 0.0) for k in end}


def cpu_line(used: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in used.items()) + f" (total {sum(used.values()):.2f})"


async def leader_name(registry: EtcdRegistry, sb: Sandbox, prefix: str = "/fleet/") -> str:
    """The sandbox machine whose engine leads (by its machine id in ``engine/leader``)."""
    kv = await registry.get(prefix + "engine/leader")
    if kv is None:
        return "nobody"
    ids = {m.machine_id: m.name for m in sb.machines}
    text = kv.value.decode()
    return next((name for mid, name in ids.items() if mid in text), text)


@dataclass
class Timeline:
    """Every registry event under ``prefix`` with the host time it arrived at the watch."""

    registry: EtcdRegistry
    prefix: str
    events: list[tuple[float, EventType, str, bytes, int]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        _, revision = await self.registry.get_prefix(self.prefix + "version")
        self._task = asyncio.get_running_loop().create_task(self._run(revision + 1))

    async def _run(self, revision: int) -> None:
        async for batch in self.registry.watch_prefix(self.prefix, revision):
            now = time.monotonic()
            for e in batch:
                self.events.append((now, e.type, e.key, e.value, e.mod_revision))
            self.changed.set()

    def times(self, under: str, kind: EventType = EventType.PUT, contains: bytes = b"") -> dict:
        """Key -> first arrival of a matching event for keys under ``prefix + under``."""
        first: dict[str, float] = {}
        start = self.prefix + under
        for t, typ, key, value, _ in self.events:
            if typ is kind and key.startswith(start) and contains in value and key not in first:
                first[key] = t
        return first

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
