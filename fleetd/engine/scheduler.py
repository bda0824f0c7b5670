"""The scheduler: where every unit should run, and why not when it cannot (pure).

``schedule()`` takes plain values (machines, flags, jobs, current placements)
and returns a Decision.  A pass first keeps every current placement that is
still valid (placed units never move without cause: machine gone, draining,
or a constraint that now forbids it), then places Global units on every
matching machine, then every other unit in name order with MachineOf peers
first.  Machines are filtered by the checks in ``checks.py`` and ranked by
the strategy:

- ``binpack`` (default): Nomad's best fit, score = 20 - (10^freeCPU +
  10^freeMem) after placement, over the BINPACK_CANDIDATES closest fits on
  the unit's scarcer dimension; ties go to the machine with fewer units
  (a unit without reservations does not change the score), then machine id.
- ``spread``: fleet's least loaded, fewest units first; among equally loaded
  machines the tightest fit on the unit's scarcer dimension, then machine id.

Unconstrained units are placed through the capacity index (a bisect and a
short walk), so a pass stays near-linear in the number of units.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from fleetd.engine.baseline import Baseline
from fleetd.engine.budget import Budget
from fleetd.engine.decision import Decision, Job
from fleetd.engine.index import Strategy
from fleetd.engine.occupancy import Occupancy
from fleetd.engine.overlay import Overlay
from fleetd.engine.placer import Placer, smallest
from fleetd.engine.slots import Slots
from fleetd.model import Machine, MachineFlags


def schedule(
    machines: Iterable[Machine],
    jobs: Iterable[Job],
    *,
    floor: tuple[int, int] | None = None,
    current: Mapping[str, Iterable[str]] | None = None,
    flags: Mapping[str, MachineFlags] | None = None,
    strategy: Strategy = Strategy.BINPACK,
    drain_batch: int | None = None,
    baseline: Baseline | None = None,
    lingering: Mapping[str, str] | None = None,
    moves: Mapping[str, str] | None = None,
    budget: Budget | None = None,
    away: Mapping[str, frozenset[str]] | None = None,
) -> Decision:
    """Decide where each job runs.

    ``current`` maps a unit to the machines it is scheduled on now (entries
    for units that are not jobs are ignored).  ``drain_batch`` bounds how
    many units leave draining machines in this pass (None: all).

    ``baseline`` (a scoped pass, which plans a few jobs against the rest of the
    cluster, see engine/baseline.py) replaces ``machines``, ``flags`` and
    ``strategy``; it is left unchanged.

    ``floor``: the smallest (cpu, mem) of the jobs (default) or less (see CapacityIndex).

    ``lingering``, ``moves``, ``budget``, ``away``: see Placer.  ``lingering`` (unit -> machine)
    names the old copies of start-first moves in flight among the jobs: the pass
    does not place them there, but new placements do not get their room and
    ``Conflicts=`` see them.
    """
    jobs = list(jobs)
    least = floor if floor is not None else smallest(jobs)
    slots: Slots | Overlay
    if baseline is None:
        slots = Slots(machines, flags or {}, {}, strategy, least)
        occupancy = Occupancy(job.requirements for job in jobs)
    else:
        slots = baseline.overlay()
        occupancy = baseline.occupancy(jobs)
    run = Placer(
        slots,
        occupancy,
        jobs,
        drain_batch,
        lingering=lingering,
        moves=moves,
        budget=budget,
        away=away,
        confined=baseline.confined if baseline is not None else None,
        counted=baseline.counted if baseline is not None else None,
    )
    run.keep(current or {})
    run.linger()
    run.place_globals()
    run.place_pending()
    return run.decision()
