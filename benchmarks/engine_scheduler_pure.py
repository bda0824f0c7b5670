"""Pure scheduler benchmark: placements/s without any I/O.

    .venv/bin/python benchmarks/engine_scheduler_pure.py [--strategy spread]

For each size (10,000 units onto 1,000 machines, 100,000 onto 5,000) it
times the first pass (everything placed), a steady pass (nothing to do) and
a pass after 1% of the machines were lost, and prints placements/s per
CPU second (the host may be busy: wall time is printed beside it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workload import machines, units

from fleetd.engine.decision import Job
from fleetd.engine.index import Strategy
from fleetd.engine.scheduler import schedule

SIZES = ((10_000, 1_000), (100_000, 5_000))


def run(n_units: int, n_machines: int, strategy: Strategy) -> None:
    fleet = machines(n_machines)
    jobs = [Job(name, req) for name, req in units(n_units, fleet)]

    clock = _Clock()
    first = schedule(fleet, jobs, strategy=strategy)
    cpu, wall = clock.lap()
    placed = len(first.placed)
    print(
        f"{n_units:>7} units / {n_machines:>5} machines [{strategy}]: first pass "
        f"{cpu:6.2f} CPU s ({wall:.2f} s wall), {placed} placements, "
        f"{placed / cpu:,.0f} placements/CPU s, {len(first.unplaceable)} unplaceable"
    )

    clock = _Clock()
    steady = schedule(fleet, jobs, current=first.assignments, strategy=strategy)
    cpu, wall = clock.lap()
    assert not steady.placed and not steady.removals
    print(f"{'':>8}steady pass (nothing to do): {cpu:6.2f} CPU s ({wall:.2f} s wall)")

    survivors = fleet[n_machines // 100 :]
    clock = _Clock()
    loss = schedule(survivors, jobs, current=first.assignments, strategy=strategy)
    cpu, wall = clock.lap()
    print(
        f"{'':>8}1% of machines lost: {cpu:6.2f} CPU s ({wall:.2f} s wall), "
        f"{len(loss.placed)} placed, {len(loss.removals)} removed, "
        f"{len(loss.unplaceable)} unplaceable"
    )


class _Clock:
    def __init__(self) -> None:
        self.cpu, self.wall = time.process_time(), time.perf_counter()

    def lap(self) -> tuple[float, float]:
        return time.process_time() - self.cpu, time.perf_counter() - self.wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", choices=[s.value for s in Strategy], default="binpack")
    parser.add_argument("--small", action="store_true", help="only 10,000 units / 1,000 machines")
    args = parser.parse_args()
    for n_units, n_machines in SIZES[:1] if args.small else SIZES:
        run(n_units, n_machines, Strategy(args.strategy))


if __name__ == "__main__":
    main()
