"""What the rollout driver sees: rollout records, units, the schedule and unit states.

``ClusterView`` loads the four prefixes, rollouts first, then follows them
with one watch of the whole registry prefix: one ordered stream, so the
view moves from revision to revision as the registry did (a rollout record
is never seen ahead of the unit text written in its transaction, and after
a write at revision R the view shows it once ``revision >= R``).  Only what
the driver needs is kept: each unit's hash and desired state (not its
text), the machines each unit is scheduled on, and each unit state.

``situation()`` turns the view into a rollout step's input (pure), and
``ready()`` says when a target counts as up: its machine runs the hash it
was assigned, active and healthy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from fleetd.errors import FleetError
from fleetd.model import DesiredState, Health, UnitState
from fleetd.registry.base import EventType, KeyValue, WatchEvent
from fleetd.registry.store import Store
from fleetd.rollouts.plan import Seen, Situation
from fleetd.rollouts.record import Kind, Rollout
from fleetd.unitname import UnitName

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UnitInfo:
    hash: str
    desired: DesiredState
    pinned: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class ClusterView:
    """The registry as the driver needs it, as of ``revision``."""

    store: Store
    rollouts: dict[str, tuple[Rollout, int]] = field(default_factory=dict)
    units: dict[str, UnitInfo] = field(default_factory=dict)
    instances: dict[str, set[str]] = field(default_factory=dict)  # template -> instances
    placed: dict[str, set[str]] = field(default_factory=dict)  # unit -> machines
    states: dict[tuple[str, str], UnitState] = field(default_factory=dict)
    revision: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    _read: dict[str, int] = field(default_factory=dict)  # prefix -> revision it was read at

    def _prefixes(self) -> tuple[str, str, str, str]:
        k = self.store.keys
        return (k.rollouts, k.units, k.schedule, k.states)

    async def load(self) -> int:
        """Read the four prefixes (rollouts first); returns the revision to watch from."""
        first = 0
        for prefix in self._prefixes():
            items, revision = await self.store.registry.get_prefix(prefix)
            for kv in items:
                self._put(kv.key, kv.value, kv.mod_revision)
            self._read[prefix] = revision
            first = first or revision
            self.revision = max(self.revision, revision)
        self.changed.set()
        return first + 1

    async def follow(self, start: int) -> None:
        """Apply the registry's changes from ``start`` on (WatchCompacted propagates:
        the caller loads a fresh view)."""
        watch = self.store.registry.watch_prefix(self.store.keys.prefix, start)
        try:
            async for events in watch:
                if self.apply(events):
                    self.changed.set()
        finally:
            close = getattr(watch, "aclose", None)
            if close is not None:
                await close()

    def apply(self, events: list[WatchEvent]) -> bool:
        """Apply one batch of watch events; True if something the driver sees changed."""
        changed = False
        for event in events:
            self.revision = max(self.revision, event.mod_revision)
            prefix = next((p for p in self._prefixes() if event.key.startswith(p)), None)
            if prefix is None or event.mod_revision <= self._read.get(prefix, 0):
                continue
            changed = True
            if event.type is EventType.DELETE:
                self._delete(event.key)
            else:
                self._put(event.key, event.value, event.mod_revision)
        return changed

    def _put(self, key: str, value: bytes, revision: int) -> None:
        k = self.store.keys
        try:
            if key.startswith(k.rollouts):
                record = self.store.rollout_from(key, value)
                self.rollouts[record.unit] = (record, revision)
            elif key.startswith(k.units):
                unit = self.store.unit_from(key, value)
                self.units[unit.name] = UnitInfo(unit.hash, unit.desired, unit.pinned)
                template = _template_of(unit.name)
                if template is not None:
                    self.instances.setdefault(template, set()).add(unit.name)
            elif key.startswith(k.schedule):
                entry = self.store.schedule_from(key, value)
                self.placed.setdefault(entry.name, set()).add(entry.machine)
            elif key.startswith(k.states):
                state = self.store.state_from(key, value)
                self.states[(state.machine, state.name)] = state
        except (FleetError, ValueError) as exc:
            log.error("rollouts: ignoring %s: %s", key, exc)

    def _delete(self, key: str) -> None:
        k = self.store.keys
        try:
            if key.startswith(k.rollouts):
                self.rollouts.pop(k.split(key, k.rollouts)[0], None)
            elif key.startswith(k.units):
                name = k.split(key, k.units)[0]
                self.units.pop(name, None)
                template = _template_of(name)
                if template is not None:
                    self.instances.get(template, set()).discard(name)
            elif key.startswith(k.schedule):
                machine, name = k.split(key, k.schedule)
                self.placed.get(name, set()).discard(machine)
            elif key.startswith(k.states):
                machine, name = k.split(key, k.states)
                self.states.pop((machine, name), None)
        except ValueError as exc:
            log.error("rollouts: ignoring deletion of %s: %s", key, exc)

    def active(self) -> list[tuple[Rollout, int]]:
        return [found for found in self.rollouts.values() if found[0].active]

    def situation(self, record: Rollout, now: float) -> Situation:
        """The input of ``record``'s next step."""
        unit = self.units.get(record.unit)
        candidates = None
        if record.kind is Kind.TEMPLATE:
            candidates = {
                name: info.hash
                for name in self.instances.get(record.unit, ())
                if (info := self.units.get(name)) is not None
                and info.desired is DesiredState.LAUNCHED
            }
        names = {t.name for t in record.targets} | set(candidates or ())
        seen = {name: self._seen(record, name) for name in names}
        return Situation(record, unit.hash if unit else None, seen, now, candidates)

    def _seen(self, record: Rollout, target: str) -> Seen:
        name = target if record.kind is Kind.TEMPLATE else record.unit
        unit = self.units.get(name)
        if unit is None:
            return Seen(gone="destroyed")
        if unit.desired is not DesiredState.LAUNCHED:
            return Seen(gone=f"no longer launched (desired state {unit.desired})")
        placed = self.placed.get(name, set())
        if record.kind is Kind.GLOBAL:
            # A target is a machine: the unit record says which hash it gets.
            if target not in placed:
                return Seen(gone=f"no longer scheduled on {target} (the machine left)")
            assigned = dict(unit.pinned).get(target, unit.hash)
            up, detail = ready(self.states.get((target, name)), assigned)
            return Seen(assigned, up, "" if up else f"{detail} on {target}")
        machines = sorted(placed)
        if not machines:
            return Seen(unit.hash, detail="not scheduled")
        for machine in machines:
            up, detail = ready(self.states.get((machine, name)), unit.hash)
            if up:
                return Seen(unit.hash, True)
        return Seen(unit.hash, detail=f"{detail} on {machines[0]}")


def ready(state: UnitState | None, hash_: str) -> tuple[bool, str]:
    """Whether ``state`` shows ``hash_`` running, active and healthy; else what it shows."""
    if state is None:
        return False, "no state yet"
    if state.hash != hash_:
        return False, f"still runs {state.hash[:7]}"
    if state.active_state != "active":
        return False, f"{state.active_state}/{state.sub_state}"
    if state.health is not Health.HEALTHY:
        # The agent judges health (a unit without a HealthCheck= is healthy when active).
        why = f": {state.health_message}" if state.health_message else ""
        return False, f"{state.health}{why}"
    return True, ""


def _template_of(name: str) -> str | None:
    try:
        return UnitName.parse(name).template
    except FleetError:
        return None


def records_of(items: Mapping[str, KeyValue], store: Store) -> list[Rollout]:
    """The rollout records among mirrored ``rollouts/`` items (unreadable ones logged)."""
    found = []
    for key, kv in items.items():
        try:
            found.append(store.rollout_from(key, kv.value))
        except (FleetError, ValueError) as exc:
            log.error("rollouts: ignoring %s: %s", key, exc)
    return found
