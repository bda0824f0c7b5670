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

from fleetd.engine.decision import Decision, Job, Placed, Removal
from fleetd.engine.fleet import Fleet, Load
from fleetd.engine.globs import GlobRelation
from fleetd.engine.index import Strategy
from fleetd.engine.overlay import Overlay
from fleetd.engine.placer import Placer, floor
from fleetd.model import Machine, MachineFlags
from fleetd.requirements import Requirements

__all__ = ["Decision", "Fleet", "Job", "Load", "Placed", "Removal", "Strategy", "schedule"]


def schedule(
    machines: Iterable[Machine],
    jobs: Iterable[Job],
    current: Mapping[str, Iterable[str]] | None = None,
    flags: Mapping[str, MachineFlags] | None = None,
    strategy: Strategy = Strategy.BINPACK,
    drain_batch: int | None = None,
    kept: Fleet | None = None,
    minus: Mapping[str, Load] | None = None,
    fixed: Mapping[str, tuple[Requirements, tuple[str, ...]]] | None = None,
    placed: GlobRelation | None = None,
) -> Decision:
    """Decide where each job runs.

    ``current`` maps a unit to the machines it is scheduled on now (entries
    for units that are not jobs are ignored).  ``drain_batch`` bounds how
    many units leave draining machines in this pass (None: all).

    ``kept`` (an incremental pass that plans a few units against the rest): the
    fleet the engine keeps across passes, whose slots carry the room of every
    placed unit.  It replaces ``machines``, ``flags`` and ``strategy``; ``minus``
    (per machine, the room it counts for these jobs) is given back first; ``kept``
    itself is left unchanged.  ``fixed``: placed units that are not jobs, by their
    (requirements, machines), which the checks of the jobs must see; ``placed``: where
    every placement is by the ``Conflicts=`` globs it matches or declares (kept across
    passes, jobs and ``fixed`` left out).
    """
    jobs = list(jobs)
    if kept is not None:
        run = Placer(Overlay(kept), jobs, drain_batch, minus, fixed, placed)
    else:
        fleet = Fleet(machines, flags or {}, {}, strategy, floor(jobs))
        run = Placer(fleet, jobs, drain_batch)
    run.keep(current or {})
    run.place_globals()
    run.place_pending()
    return run.decision()
