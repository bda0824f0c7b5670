"""Rolling reboot of a 3-machine sandbox holding 300 units: ``fleetctl reboot --all``.

    .venv/bin/python benchmarks/maintenance.py [--units 300] [--sandbox NAME] [--keep]

Boots a sandbox (``--sandbox``, default ``$FLEETD_SANDBOX`` or ``mbch``) and measures,
on the same machines, the two things a maintenance cannot do faster than, per machine:

- a reboot: ``systemctl reboot`` inside an empty machine until its fleetd registered
  again (``Sandbox.wait_rebooted``);
- starting its units elsewhere: N/3 new units started at once (one bulk write), until
  every one is reported active by its machine's agent;

each the median of three tries.

The floor is 3 x (reboot + start).  Then N units are started (not timed) and
``fleetctl reboot --all`` is timed from launch to its exit (it ends once every
machine is back and uncordoned and the final rebalance spread the units over the
machines again).  Meanwhile the registry's unit states are sampled every 100 ms: the
fewest units active somewhere; each job's phases are read from the record's own
times; every machine's boot count is checked at the end.  Target: at most 1.3 x the
floor.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import IO

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import FLEETCTL, host_line, load, sandbox
from _common import fleetctl as spawn

from fleetd.errors import FleetError
from fleetd.maintenance.record import Maintenance
from fleetd.maintenance.store import MaintenanceStore
from fleetd.registry.etcd import EtcdRegistry
from fleetd.registry.store import Store
from fleetd.sandbox import Sandbox, SandboxSpec

TEMPLATE = "[Unit]\nDescription={name} %i\n\n[Service]\nExecStart=/bin/sleep infinity\n"


def fleetctl(sb: Sandbox, *args: str, cwd: str, timeout: float = 900) -> str:
    proc = subprocess.run(
        [FLEETCTL, *args],
        env={**os.environ, **sb.env()},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"fleetctl {' '.join(args[:2])} failed: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def timed(sb: Sandbox, *args: str, cwd: str) -> tuple[str, list[tuple[float, str]]]:
    """Run ``fleetctl ARGS`` to its end: its standard output, and every line it printed
    (either stream) with when it did (wall seconds)."""
    proc = spawn(sb, *args, cwd=cwd)
    lines: list[tuple[float, str]] = []
    out: list[str] = []

    def read(stream: IO[str], keep: list[str] | None) -> None:
        for line in stream:
            lines.append((time.time(), line.rstrip("\n")))
            if keep is not None:
                keep.append(line)

    assert proc.stdout is not None and proc.stderr is not None
    readers = [
        threading.Thread(target=read, args=(proc.stdout, out)),
        threading.Thread(target=read, args=(proc.stderr, None)),
    ]
    for reader in readers:
        reader.start()
    # Its pipes close when it exits (fleetctl starts no child): seen at once, where
    # Popen.wait with a timeout polls (every 50 ms).
    for reader in readers:
        reader.join(timeout=900)
    status = proc.wait(timeout=10)
    if status != 0:
        raise SystemExit(f"fleetctl {' '.join(args[:2])} failed: {lines[-5:]}")
    return "".join(out), sorted(lines)


async def _look(sb: Sandbox, prefix: str) -> tuple[set[str], dict[str, int], Maintenance | None]:
    """The units of ``prefix`` active somewhere, how many each machine runs, the record."""
    registry = EtcdRegistry(sb.etcd_endpoints, timeout=10.0)
    try:
        store = Store(registry)
        states = await store.list_states()
        found = await MaintenanceStore(store).get()
    finally:
        await registry.close()
    mine = [s for s in states if s.name.startswith(prefix) and s.active_state == "active"]
    on: dict[str, int] = {}
    for state in mine:
        on[state.machine] = on.get(state.machine, 0) + 1
    return {s.name for s in mine}, on, found[0] if found is not None else None


async def _placed(sb: Sandbox, prefix: str) -> dict[str, int]:
    registry = EtcdRegistry(sb.etcd_endpoints, timeout=10.0)
    try:
        entries = await Store(registry).list_all_schedule()
    finally:
        await registry.close()
    return dict(Counter(e.machine for e in entries if e.name.startswith(prefix)))


def placed(sb: Sandbox, prefix: str) -> dict[str, int]:
    """How many of the units of ``prefix`` are scheduled on each machine."""
    return asyncio.run(_placed(sb, prefix))


def active(sb: Sandbox, prefix: str) -> set[str]:
    return asyncio.run(_look(sb, prefix))[0]


def reboot_time(sb: Sandbox) -> float:
    """Seconds from ``systemctl reboot`` in the last machine (empty) to its fleetd
    registered again."""
    name = sb.machines[-1].name
    boots = sb.boots(name)
    started = time.monotonic()
    sb.exec(name, "systemctl", "reboot")
    sb.wait_rebooted(name, boots, timeout=120)
    return time.monotonic() - started


def start_time(sb: Sandbox, n: int, tmp: str) -> float:
    """Seconds to start ``n`` new units at once, until their machines report them active."""
    Path(tmp, "probe@.service").write_text(TEMPLATE.format(name="probe"))
    fleetctl(sb, "submit", "probe@.service", cwd=tmp)
    names = [f"probe@{i}.service" for i in range(1, n + 1)]
    started = time.monotonic()
    fleetctl(sb, "start", "--no-block", *names, cwd=tmp)
    while len(active(sb, "probe@")) < n:
        time.sleep(0.05)
    took = time.monotonic() - started
    fleetctl(sb, "destroy", *names, "probe@.service", cwd=tmp)
    while active(sb, "probe@"):
        time.sleep(0.1)
    return took


class Sampler(threading.Thread):
    """Every 100 ms: how many of the units are active on some machine; and from the
    maintenance record, when each machine's job entered each phase (the job's ``since``,
    wall clock, as the leader wrote it: exact, whatever the sampling interval) and when
    the maintenance finished."""

    def __init__(self, sb: Sandbox, prefix: str) -> None:
        super().__init__(daemon=True)
        self.sb, self.prefix = sb, prefix
        self.samples: list[tuple[float, int]] = []
        self.phases: dict[str, dict[str, float]] = {}  # machine -> phase -> wall seconds
        self.finished = 0.0  # wall seconds
        self.left: dict[str, int] = {}  # units still running on a machine when it acts
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            t = time.monotonic()
            try:
                up, on, record = asyncio.run(_look(self.sb, self.prefix))
            except FleetError as exc:  # etcd busy: a gap in the samples
                print(f"  (sample failed: {exc})")
            else:
                self.samples.append((t, len(up)))
                self._note(record, on)
            self.stop_event.wait(max(0.0, 0.1 - (time.monotonic() - t)))

    def last(self) -> None:
        """One more look at the record (fleetctl exited: it is over)."""
        self._note(asyncio.run(_look(self.sb, self.prefix))[2], {})

    def _note(self, record: Maintenance | None, on: dict[str, int]) -> None:
        for job in record.jobs if record is not None else ():
            phase = job.phase.value
            if phase == "returning" and job.refill is not None:
                phase = "rebalancing"  # its refill asked (since: then)
            self.phases.setdefault(job.machine, {}).setdefault(phase, job.since)
            if phase == "acting":
                self.left.setdefault(job.machine, on.get(job.machine, 0))
        if record is not None and record.finished:
            self.finished = record.finished

    def report(self, launched: float, exited: float, names: dict[str, str]) -> None:
        """When each machine entered each phase, and where the time went: launch to the
        first drain, each phase's length (acting: with how many units still running
        there, left to the shutdown), the rebalance, the end to fleetctl's exit (wall
        seconds from fleetctl's launch)."""
        order = ("draining", "acting", "returning", "rebalancing", "done")
        jobs = sorted(self.phases.items(), key=lambda kv: kv[1].get("draining", 0))
        for machine, seen in jobs:
            marks = [f"{p} at {seen[p] - launched:5.2f} s" for p in order if p in seen]
            print(f"  {names.get(machine, machine)}: " + ", ".join(marks))
        backs = {m: seen.get("returning", seen.get("rebalancing")) for m, seen in jobs}
        for machine, seen in jobs:
            marks = {p: seen[p] for p in order[:2] if p in seen}
            if backs[machine] is not None:
                marks["back"] = backs[machine]
            spans = [f"{a} {marks[b] - marks[a]:.2f} s" for a, b in itertools.pairwise(list(marks))]
            left = self.left.get(machine)
            print(
                f"    {names.get(machine, machine)}: {', '.join(spans)}"
                + (f" ({left} units still running there when asked to act)" if left else "")
            )
        firsts = [seen["draining"] for _, seen in jobs if "draining" in seen]
        back = [t for t in backs.values() if t is not None]
        if firsts and back and self.finished:
            print(
                f"    fleetctl launched -> first drain {min(firsts) - launched:.2f} s; last "
                f"machine back -> done {self.finished - max(back):.2f} s; done -> fleetctl "
                f"exited {exited - self.finished:.2f} s"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=300)
    parser.add_argument(
        "--sandbox",
        default=os.environ.get("FLEETD_SANDBOX") or "mbch",
        help="sandbox name (at most 4 characters)",
    )
    parser.add_argument("--keep", action="store_true", help="leave the sandbox up afterwards")
    args = parser.parse_args()
    print(host_line())
    n = args.units
    with (
        sandbox(args.sandbox, SandboxSpec(machines=3), keep=args.keep) as sb,
        tempfile.TemporaryDirectory(prefix="fleetd-maintenance-") as tmp,
    ):
        machines = len(sb.machines)
        share = -(-n // machines)
        reboots = sorted(reboot_time(sb) for _ in range(3))
        starts = sorted(start_time(sb, share, tmp) for _ in range(3))
        reboot, start = reboots[1], starts[1]  # medians of three
        print(
            f"reboots {', '.join(f'{r:.2f}' for r in reboots)} s; starts of {share} units "
            f"{', '.join(f'{s:.2f}' for s in starts)} s (medians below)"
        )
        floor = machines * (reboot + start)
        print(
            f"a reboot (empty machine, to fleetd registered): {reboot:.2f} s; starting "
            f"{share} units elsewhere: {start:.2f} s; floor {machines} x ({reboot:.2f} + "
            f"{start:.2f}) = {floor:.2f} s"
        )
        Path(tmp, "bench@.service").write_text(TEMPLATE.format(name="bench"))
        names = [f"bench@{i}.service" for i in range(1, n + 1)]
        fleetctl(sb, "submit", "bench@.service", cwd=tmp)
        fleetctl(sb, "start", "--block-attempts", "600", *names, cwd=tmp)
        boots = {m.name: sb.boots(m.name) for m in sb.machines}
        before = placed(sb, "bench@")
        print(f"{n} units started; load before: {load()}")
        sampler = Sampler(sb, "bench@")
        sampler.start()
        launched, started = time.time(), time.monotonic()
        out, printed = timed(sb, "reboot", "--all", cwd=tmp)
        took = time.monotonic() - started
        sampler.stop_event.set()
        sampler.join()
        sampler.last()
        status = json.loads(fleetctl(sb, "-o", "json", "reboot", "--status", cwd=tmp))
        rebooted = all(sb.boots(m) == b + 1 for m, b in boots.items())
        after = placed(sb, "bench@")
        lowest = min((c for _, c in sampler.samples), default=0)
        ratio = took / floor
        print(
            f"fleetctl reboot --all of {machines} machines with {n} units: {took:.2f} s = "
            f"{ratio:.2f} x the floor {floor:.2f} s (target <= 1.3 x)"
        )
        print(
            f"  units active somewhere, sampled every 100 ms ({len(sampler.samples)} "
            f"samples): at least {lowest} of {n}"
        )
        hostnames = {m.machine_id: m.name for m in sb.machines}
        sampler.report(launched, launched + took, hostnames)
        said = [t for t, line in printed if " started: " in line]
        ended = [t for t, line in printed if " done: " in line]
        if said and ended and sampler.finished:
            print(
                f"    fleetctl: launched -> 'started' printed {said[0] - launched:.2f} s; done -> "
                f"'done' printed {ended[-1] - sampler.finished:.2f} s -> exited "
                f"{launched + took - ended[-1]:.2f} s"
            )
        print(f"  every machine booted once more: {rebooted}; {out.strip().splitlines()[-1]}")
        print(
            "  units per machine before -> when done: "
            + ", ".join(
                f"{h} {before.get(m, 0)} -> {after.get(m, 0)}" for m, h in hostnames.items()
            )
        )
        print(f"  maintenance {status['id']}: {status['phase']}; load after: {load()}")
        print(
            json.dumps(
                {
                    "seconds": round(took, 3),
                    "floor": round(floor, 3),
                    "ratio": round(ratio, 3),
                    "reboot": round(reboot, 3),
                    "start": round(start, 3),
                    "min_active": lowest,
                }
            )
        )
        if not rebooted or status["phase"] != "done" or lowest < n or after != before:
            raise SystemExit(
                "the maintenance did not keep every unit up, did not finish or did not spread "
                "the units again"
            )


if __name__ == "__main__":
    main()
