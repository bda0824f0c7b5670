"""What a scoped pass starts from, instead of building anything per machine (pure).

A full pass builds slots for every machine (engine/slots.py) and places
every unit.  A scoped pass (engine/scope.py) plans a few units and leaves
everything else where it is; a ``Baseline`` is everything else, as the
scheduler needs it:

- the machine slots the engine keeps across passes, which carry the room of
  every placed unit, and the room among it that the pass's own units take
  now (given back first, on an Overlay: the kept slots do not change);
- placed units outside the pass that its checks must see where they are
  (MachineOf peers of its units);
- where every placement is by the ``Conflicts=`` globs it matches or
  declares (kept across passes), for the Conflicts checks;
- Global units the pass plans on a few machines only (a machine joined or
  changed, or room freed there): the rest of their placements stay as they
  are, unseen by the pass (such units relate to no other by glob or
  MachineOf, so no check needs them).

It is built in one place, ``scope()``, and must be planned before the
model changes again (the kept slots and relation are the model's own).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fleetd.engine.budget import Member
from fleetd.engine.decision import Job
from fleetd.engine.globs import GlobRelation
from fleetd.engine.occupancy import Occupancy
from fleetd.engine.overlay import Overlay
from fleetd.engine.slots import Load, Slots
from fleetd.requirements import Requirements


@dataclass(frozen=True, slots=True)
class Baseline:
    """The rest of the cluster, as a scoped pass plans against it.

    ``slots``: the kept slots (their strategy is the pass's).  ``give_back``: per
    machine, the (cpu, mem, units) they count for the pass's own units.  ``peers``:
    placed units that are not planned but that the checks must see, by their
    (requirements, machines).  ``conflicts``: the kept ``Conflicts=`` relation of
    every placement (the units of the pass and ``peers`` are left out of it).
    ``confined``: Global units of the pass planned only on these machines (unit ->
    machines), placed on others too.  ``counted``: machines where a Global unit of the
    pass runs and fits, whose room the kept slots count and the pass does not give back
    (unit -> machines).  ``members``: every unit of the disruption budget groups
    (``MaxUnavailable=``, engine/budget.py) the pass's units belong to, as a budget
    counts them (a full pass finds them among its own units)."""

    slots: Slots
    give_back: Mapping[str, Load]
    peers: Mapping[str, tuple[Requirements, tuple[str, ...]]]
    conflicts: GlobRelation
    confined: Mapping[str, frozenset[str]] = field(default_factory=dict)
    counted: Mapping[str, set[str]] = field(default_factory=dict)
    members: tuple[Member, ...] = ()

    def overlay(self) -> Overlay:
        """The pass's own copy-on-write view of the kept slots, its units' room given back."""
        return Overlay(self.slots, self.give_back)

    def occupancy(self, jobs: Sequence[Job]) -> Occupancy:
        """The pass's occupancy: ``peers`` placed, the kept relation seen for the rest."""
        skip = {job.name for job in jobs}
        globs = [job.requirements for job in jobs]
        if self.peers:
            skip.update(self.peers)
            globs.extend(req for req, _ in self.peers.values())
        occupancy = Occupancy(globs, self.conflicts, skip)
        for name, (req, machines) in self.peers.items():
            for machine in machines:
                occupancy.add(name, req, machine)
        return occupancy
