"""One scheduling pass (pure): keep what is valid, place Global units, place the rest.

See ``fleetd.engine.scheduler`` for the rules; this module holds the
bookkeeping of a pass: the queue of units to place and where they go, on
the machine slots and occupancy it is given (engine/slots.py built for the
pass, or the kept slots seen through an engine/overlay.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from fleetd.engine.budget import Budget
from fleetd.engine.checks import (
    FOLLOWER_PLACEMENT,
    KEEP_PLACEMENT,
    NEW_PLACEMENT,
    Check,
    Checker,
    Explanation,
)
from fleetd.engine.decision import Decision, Job, Placed, Removal
from fleetd.engine.index import Strategy, binpack_score
from fleetd.engine.occupancy import Occupancy
from fleetd.engine.order import peer_order
from fleetd.engine.overlay import Overlay
from fleetd.engine.slot import Slot
from fleetd.engine.slots import Slots
from fleetd.model import UNREGISTERED
from fleetd.requirements import Requirements

_WHY = {Strategy.BINPACK: "best fit (binpack)", Strategy.SPREAD: "least loaded (spread)"}


def smallest(jobs: Sequence[Job]) -> tuple[int, int]:
    """The smallest (cpu, mem) any of ``jobs`` needs (see CapacityIndex)."""
    return (
        min((j.requirements.cpu_millis for j in jobs), default=0),
        min((j.requirements.memory_bytes for j in jobs), default=0),
    )


class Placer:
    def __init__(
        self,
        slots: Slots | Overlay,
        occupancy: Occupancy,
        jobs: Iterable[Job],
        drain_batch: int | None,
        *,
        lingering: Mapping[str, str] | None = None,
        moves: Mapping[str, str] | None = None,
        budget: Budget | None = None,
        away: Mapping[str, frozenset[str]] | None = None,
        confined: Mapping[str, frozenset[str]] | None = None,
        counted: Mapping[str, set[str]] | None = None,
    ) -> None:
        """Places ``jobs`` on ``slots``, which it changes (an Overlay copies what it
        changes), recording where in ``occupancy`` (which may hold units that are not
        jobs: they are seen by the checks and never moved).

        ``lingering``: units in a start-first move (engine/handover.py) -> the machine
        their old copy still runs on; planned on their new machine (their current
        placement), not moved again by a drain or a move request until the move
        finished; one whose new placement is no longer valid is a unit on its old
        machine again.  ``moves``: unit -> the machine it is asked to move to (it moves
        only there, and only if it may run there); ``budget``: the disruption budgets
        that stop-first moves take from; ``away``: unit -> machines it leaves
        start-first for any other (a rolling update's new version, started first);
        ``confined``: Global units placed on other machines, which a scoped pass plans
        only on these machines (unit -> machines; it stays where else it runs);
        ``counted``: machines where a unit runs whose room the slots count already (a
        scoped pass's Global units, where they fit): kept there, it takes no more room;
        taken off, it gives its room back."""
        self.slots = slots
        self.by_id = slots.by_id
        self.jobs = {j.name: j.requirements for j in jobs}
        self.strategy = slots.strategy
        self.drain_budget = drain_batch
        self.groups = slots.groups
        self.index = slots.index
        self.occupancy = occupancy
        self.checker = Checker(self.groups, self.occupancy)
        self.order, cycles = peer_order(self.jobs)
        self.rank = {name: i for i, name in enumerate(self.order)}
        self.followers: dict[str, list[str]] = {}
        for name in self.order:
            for peer in self.jobs[name].machine_of:
                self.followers.setdefault(peer, []).append(name)
        self.new: dict[tuple[str, str], str] = {}
        self.removals: dict[tuple[str, str], str] = {}
        self.unplaceable: dict[str, str] = dict(cycles)
        self.pending: list[str] = []
        self.globals: list[str] = []
        self.leaving: dict[str, tuple[str, str]] = {}  # unit -> (machine it may leave, why)
        self.drained = 0  # stop-first moves off draining machines
        self.lingering = dict(lingering or {})
        self.moves: Mapping[str, str] = moves or {}
        self.budget = budget
        self.away: Mapping[str, frozenset[str]] = away or {}
        self.confined: Mapping[str, frozenset[str]] = confined or {}
        self.counted: Mapping[str, set[str]] = counted or {}
        self.handovers: dict[str, str] = {}  # unit -> machine it leaves start-first
        self.waiting: dict[str, str] = {}  # unit -> why it does not leave yet
        self.refused: dict[str, str] = {}  # unit -> why its move request cannot be met
        self.current: Mapping[str, Iterable[str]] = {}

    # --- phase 1: keep what is still valid ---

    def keep(self, current: Mapping[str, Iterable[str]]) -> None:
        self.current = current
        for name in self.order:
            req = self.jobs[name]
            stays = False  # on one of its machines already
            counted = self.counted.get(name, ())
            for machine in sorted(current.get(name, ())):
                room = machine not in counted
                reason = self._keep_reason(name, req, machine, stays, room)
                if reason is None:
                    if room:
                        self._put(name, req, self.by_id[machine])
                    else:
                        self.occupancy.add(name, req, machine)
                    stays = True
                elif reason:
                    self.removals[(name, machine)] = reason
                    if not room:
                        self._give_back(req, self.by_id[machine])
            if not stays and name in self.lingering:
                # Its new placement is gone: the move is off, it is on its old machine.
                machine = self.lingering.pop(name)
                reason = self._keep_reason(name, req, machine, stays)
                if reason is None:
                    self._put(name, req, self.by_id[machine])
                    stays = True
                elif reason:
                    self.removals[(name, machine)] = reason
            if name in self.unplaceable:
                continue
            if req.global_:
                self.globals.append(name)
            elif not stays:
                self.pending.append(name)

    def _keep_reason(
        self, name: str, req: Requirements, machine: str, stays: bool, room: bool = True
    ) -> str | None:
        slot = self.by_id.get(machine)
        if slot is None:
            return f"machine {machine} is gone"
        if name in self.unplaceable:
            return self.unplaceable[name]
        if stays and not req.global_:
            return "already placed on another machine"
        for peer in req.machine_of:
            if peer in self.jobs and not self.occupancy.machines_of(peer):
                return f"follows {peer}, which moves"
        cpu, mem = (req.cpu_millis, req.memory_bytes) if room else (0, 0)
        found = self.checker.first(KEEP_PLACEMENT, name, req, slot, cpu, mem)
        if found is not None:
            return f"no longer allowed on {machine}: {found.text}"
        if slot.draining and req.global_:
            return f"machine {machine} is draining"  # a Global unit has nowhere to go
        if req.machine_of or req.global_ or name in self.lingering:
            return None  # followers move with their peer; a moving unit finishes first
        if slot.draining:
            why = f"machine {machine} is draining"
        elif self.moves.get(name, machine) != machine:
            why = f"asked to move to {self.moves[name]}"
        elif machine in self.away.get(name, ()):
            why = f"its new version starts first on another machine than {machine}"
        else:
            return None
        if req.at_most_once:
            # Stop-first: paced (drain batches) and within the group's budget.
            if self.drain_budget == 0:
                return None
            if self.budget is not None and not self.budget.take(name):
                self.waiting[name] = f"waits to leave {machine}: {self.budget.why(name)}"
                return None
            if self.drain_budget is not None:
                self.drain_budget -= 1
        self.leaving[name] = (machine, why)
        self.pending.append(name)
        return None  # stays (and keeps its room) until a new machine is found

    def linger(self) -> None:
        """The room of the old copies of start-first moves in flight is taken: after the
        kept placements (whose room they never take away), before anything new is placed."""
        for name, machine in self.lingering.items():
            slot = self.by_id.get(machine)
            req = self.jobs.get(name)
            if slot is None or req is None:
                continue
            slot = self.index.detach(slot)
            slot.free_cpu -= req.cpu_millis
            slot.free_mem -= req.memory_bytes
            slot.count += 1
            self.index.attach(slot)
            self.occupancy.linger(name, req, machine)

    # --- phase 2: Global units on every matching machine ---

    def place_globals(self) -> None:
        for name in self.globals:
            req = self.jobs[name]
            only = self.confined.get(name)
            where = self.index.members(req.metadata) if only is None else self._admit(req, only)
            for slot in where:
                if slot.id in self.occupancy.machines_of(name):
                    continue
                reason = self.checker.first(
                    NEW_PLACEMENT, name, req, slot, req.cpu_millis, req.memory_bytes
                )
                if reason is None:
                    self._place(name, req, slot, "global unit")
            if not self.occupancy.machines_of(name) and only is None:
                self.unplaceable[name] = ""

    def _admit(self, req: Requirements, machines: frozenset[str]) -> list[Slot]:
        """The slots of ``machines`` that the capacity class of ``req`` admits, by id."""
        found = (self.by_id.get(m) for m in sorted(machines))
        return [
            s
            for s in found
            if s is not None and s.schedulable and self.groups.reason(req.metadata, s) is None
        ]

    # --- phase 3: everything else, MachineOf peers first ---

    def place_pending(self) -> None:
        # Units leaving draining machines first: they follow no one, and the room they
        # free there may be what a follower of a unit that stays needs.
        queue = sorted(self.pending, key=lambda n: (n not in self.leaving, self.rank[n]))
        i = 0
        while i < len(queue):
            name = queue[i]
            i += 1
            leaving = self.leaving.pop(name, None)
            if name in self.unplaceable or (self.occupancy.machines_of(name) and not leaving):
                continue
            req = self.jobs[name]
            old, reason = leaving if leaving is not None else (None, "")
            cpu, mem = self._need(name, req, old)
            target = self.moves.get(name)
            slot: Slot | None = None
            why = ""
            if target is not None and target != old:
                slot, why = self._target(name, req, target, cpu, mem)
            requested = leaving is not None and reason.startswith("asked")
            if slot is None and not requested:
                slot, why = self._choose(name, req, cpu, mem)
            if slot is None:
                if self.budget is not None and leaving is not None and req.at_most_once:
                    self.budget.give_back(name)
                if requested:
                    self.refused[name] = why  # it stays where it is
                else:
                    self.unplaceable[name] = ""  # one leaving a draining machine stays there
                continue
            if old is not None:
                # It kept its room on the machine it leaves until a new one was found; a
                # start-first move keeps it until the old copy stops (engine/handover.py).
                start_first = not req.at_most_once
                queue.extend(self._evict(name, old, reason, keep_room=start_first))
                if start_first:
                    self.handovers[name] = old
                elif not requested:
                    self.drained += 1
            slot = self._place(name, req, slot, why)
            replaced = self.occupancy.replaced_by(name, req, slot.id)
            for other in replaced:
                queue.extend(self._evict(other, slot.id, f"replaced by {name}"))
            if replaced:
                self._globals_on(slot)  # the room freed there goes to Global units first
            for follower in self.followers.get(name, ()):
                # A follower that found no room next to this unit's old machine tries again.
                if self.unplaceable.get(follower) == "":
                    del self.unplaceable[follower]
                    queue.append(follower)

    def _globals_on(self, slot: Slot) -> None:
        for name in self.globals:
            req = self.jobs[name]
            if slot.id in self.occupancy.machines_of(name) or slot.id not in self.confined.get(
                name, (slot.id,)
            ):
                continue
            reason = self.checker.first(
                NEW_PLACEMENT, name, req, slot, req.cpu_millis, req.memory_bytes
            )
            if reason is None:
                slot = self._place(name, req, slot, "global unit")
                self.unplaceable.pop(name, None)

    def _need(self, name: str, req: Requirements, leaving: str | None = None) -> tuple[int, int]:
        """Own reservation plus that of the MachineOf followers that move with it (not
        placed yet, or on the machine it is ``leaving``)."""
        cpu, mem = req.cpu_millis, req.memory_bytes
        stack = list(self.followers.get(name, ()))
        seen: set[str] = set()
        while stack:
            follower = stack.pop()
            where = self.occupancy.machines_of(follower)
            if follower in seen or (where and leaving not in where):
                continue
            seen.add(follower)
            cpu += self.jobs[follower].cpu_millis
            mem += self.jobs[follower].memory_bytes
            stack.extend(self.followers.get(follower, ()))
        return cpu, mem

    def _choose(self, name: str, req: Requirements, cpu: int, mem: int) -> tuple[Slot | None, str]:
        if req.machine_of:
            peers = [self.occupancy.machines_of(p) for p in req.machine_of]
            common = set.intersection(*peers) if all(peers) else set()
            candidates = [self.by_id[m] for m in sorted(common)]
            best = self._best_of(name, req, candidates, cpu, mem, FOLLOWER_PLACEMENT)
            return best, f"runs with {', '.join(req.machine_of)} (MachineOf)"
        if req.machine_id is not None:
            pinned = self.slots.pinned(req.machine_id)
            candidates = [s for s in pinned if s.id.startswith(req.machine_id)]
            best = self._best_of(name, req, candidates, cpu, mem, NEW_PLACEMENT)
            return best, "pinned by MachineID"
        avoid = self.occupancy.forbidden(name, req) if self.occupancy.has_globs else set()
        away = self.away.get(name)
        if away:
            avoid = avoid | away
        return self.index.best(req.metadata, cpu, mem, avoid), _WHY[self.strategy]

    def _target(
        self, name: str, req: Requirements, target: str, cpu: int, mem: int
    ) -> tuple[Slot | None, str]:
        """The machine ``name`` is asked to move to, if it may go there now (else why not)."""
        slot = self.by_id.get(target)
        if slot is None:
            return None, f"machine {target} {UNREGISTERED}"
        found = self.checker.first(NEW_PLACEMENT, name, req, slot, cpu, mem)
        if found is not None:
            return None, f"{target}: {found.text}"
        return slot, f"moved to {target} as asked"

    def _best_of(
        self,
        name: str,
        req: Requirements,
        candidates: list[Slot],
        cpu: int,
        mem: int,
        checks: tuple[Check, ...],
    ) -> Slot | None:
        fitting = [
            s for s in candidates if self.checker.first(checks, name, req, s, cpu, mem) is None
        ]
        if not fitting:
            return None
        if self.strategy is Strategy.SPREAD:
            return min(fitting, key=lambda s: (s.count, s.id))
        return min(fitting, key=lambda s: (-binpack_score(s, cpu, mem), s.count, s.id))

    def _evict(self, name: str, machine: str, reason: str, keep_room: bool = False) -> list[str]:
        """Drop ``name`` and its MachineOf followers from ``machine``; returns what to re-place.

        ``keep_room``: the unit keeps running there for a while (a start-first move), so
        its room stays taken in this pass."""
        req = self.jobs[name]
        if keep_room:
            self.occupancy.remove(name, req, machine)
            self.occupancy.linger(name, req, machine)
        else:
            self._take(name, req, self.by_id[machine])
        if self.new.pop((name, machine), None) is None:
            self.removals[(name, machine)] = reason
        requeue = [] if req.global_ else [name]
        for follower in self.followers.get(name, ()):
            if machine in self.occupancy.machines_of(follower):
                # A follower moves as its peer does: start-first with it, unless it is
                # AtMostOnce (which never runs twice, so stops first).
                first = keep_room and not self.jobs[follower].at_most_once
                requeue.extend(self._evict(follower, machine, f"follows {name}", first))
                if first:
                    self.handovers[follower] = machine
        return requeue

    # --- bookkeeping ---

    def _place(self, name: str, req: Requirements, slot: Slot, why: str) -> Slot:
        """Returns the slot as changed (``slot`` itself unless the slots are an Overlay)."""
        slot = self._put(name, req, slot)
        # Taken off this machine earlier in the pass and back again: nothing changes.
        if self.removals.pop((name, slot.id), None) is None:
            self.new[(name, slot.id)] = why
        return slot

    def _put(self, name: str, req: Requirements, slot: Slot) -> Slot:
        slot = self.index.detach(slot)
        slot.free_cpu -= req.cpu_millis
        slot.free_mem -= req.memory_bytes
        slot.count += 1
        self.index.attach(slot)
        self.occupancy.add(name, req, slot.id)
        return slot

    def _give_back(self, req: Requirements, slot: Slot) -> None:
        """The room of a unit taken off ``slot`` that the slot counted (``counted``)."""
        slot = self.index.detach(slot)
        slot.free_cpu += req.cpu_millis
        slot.free_mem += req.memory_bytes
        slot.count -= 1
        self.index.attach(slot)

    def _take(self, name: str, req: Requirements, slot: Slot) -> None:
        self._give_back(req, slot)
        self.occupancy.remove(name, req, slot.id)

    def decision(self) -> Decision:
        memo: dict[object, Explanation] = {}
        reasons: dict[str, str] = {}
        rejections: dict[str, tuple[tuple[str, str], ...]] = {}
        for name in sorted(self.unplaceable):
            text = self.unplaceable[name]
            if not text:
                req = self.jobs[name]
                cpu, mem = self._need(name, req)
                key = (req, cpu, mem, self.occupancy.signature(name))
                found = memo.get(key)
                if found is None:
                    slots = (
                        self.slots.ordered
                        if req.machine_id is None
                        else self.slots.pinned(req.machine_id)
                    )
                    found = memo[key] = self.checker.explain(name, req, slots, cpu, mem)
                text = found.text
                held = self.occupancy.machines_of(name)
                if held and not req.global_ and held & self.away.get(name, frozenset()):
                    text = f"its new version has no machine to start first on: {text}"
                elif held and not req.global_:
                    text = f"cannot leave draining machine {min(held)}: {text}"
                rejections[name] = found.rejections
            reasons[name] = text
        assignments = {
            name: tuple(sorted(self.occupancy.machines_of(name)))
            for name in self.order
            if self.occupancy.machines_of(name)
        }
        placed = tuple(Placed(u, m, why) for (u, m), why in self.new.items())
        # Every current placement is either kept or removed with a reason.
        for name in self.order:
            for machine in self.current.get(name, ()):
                if machine not in self.occupancy.machines_of(name):
                    self.removals.setdefault((name, machine), "no longer placed here")
        removals = tuple(Removal(u, m, why) for (u, m), why in self.removals.items())
        handovers = {
            name: old
            for name, old in self.handovers.items()
            if (name, old) in self.removals and assignments.get(name)
        }
        return Decision(
            assignments,
            placed,
            removals,
            reasons,
            self.drained,
            rejections,
            handovers=handovers,
            waiting=dict(self.waiting),
            refused=dict(self.refused),
        )
