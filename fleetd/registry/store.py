"""Store: the typed registry operations engine, agent and API are written against.

It maps domain values (fleetd.model) to the key layout (keys.py) and JSON
values (codec.py) over any Registry.  Contracts worth knowing:

* Engine writes (schedule, placement) are *fenced*: they carry the leader's
  election revision and fail with NotLeader once another engine took over.
* ``put_unit``/``delete_unit`` take ``expected_revision`` for compare-and-swap
  (``0`` = must not exist) and raise Conflict when they lose.
* A unit's text is written with ``write_unit``/``put_units`` (``UnitPut``):
  the versions the new text adds (fleetd/versions.py) go in the same
  transaction as the unit, guarded by the version head, so a unit and its
  version appear together or not at all.  ``put_unit`` writes the record
  alone: desired-state changes, and tests that seed units.
* ``mirror(prefix)`` yields a Snapshot, then Changes; after a compaction it
  yields a fresh Snapshot, so callers never see WatchCompacted.  ``read(prefix)``
  is its first Snapshot alone (a one-time read of what the engine mirrors).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace

from fleetd.clustersettings import ClusterSettings
from fleetd.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    NotLeader,
    RegistryError,
    WatchCompacted,
)
from fleetd.model import (
    DesiredState,
    GuardRecord,
    Machine,
    MachineFlags,
    Placement,
    ScheduleEntry,
    Unit,
    UnitState,
)
from fleetd.registry import codec
from fleetd.registry.base import (
    MAX_TXN_OPS,
    Compare,
    CompareTarget,
    Delete,
    KeyValue,
    Op,
    Put,
    Registry,
    WatchEvent,
)
from fleetd.registry.batching import Group, chunk_groups
from fleetd.registry.keys import Keys
from fleetd.registry.keys import segment as _segment
from fleetd.registry.unitput import UnitPut, unit_group
from fleetd.rollouts.record import Rollout
from fleetd.versions import Head, Version

log = logging.getLogger(__name__)

_CAS_ATTEMPTS = 10


@dataclass(frozen=True, slots=True)
class Leader:
    """Who leads the engine; ``revision`` (create revision of engine/leader) is the fence."""

    machine: str
    revision: int
    lease: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every key under a prefix as of ``revision``; replaces whatever the reader held."""

    items: dict[str, KeyValue]
    revision: int


@dataclass(frozen=True, slots=True)
class Changes:
    """Events after the last Snapshot/Changes, in order; ``revision`` is the newest."""

    events: tuple[WatchEvent, ...]
    revision: int


def _number(version: Version) -> int:
    return version.number


class Store:
    def __init__(self, registry: Registry, keys: Keys | None = None) -> None:
        self.registry = registry
        self.keys = keys or Keys()

    async def ensure_schema(self) -> int:
        """Write the schema version if absent; fail if the registry has a newer one."""
        key = self.keys.version
        await self.registry.txn([Compare.absent(key)], [Put(key, codec.encode_version())])
        kv = await self.registry.get(key)
        return codec.decode_version(key, kv.value) if kv else 0

    # -- decoding (also for mirror() readers) ---------------------------------------

    def unit_from(self, key: str, value: bytes) -> Unit:
        return codec.decode_unit(key, value)

    def schedule_from(self, key: str, value: bytes) -> ScheduleEntry:
        machine, name = self.keys.split(key, self.keys.schedule)
        return codec.decode_schedule(machine, name, key, value)

    def machine_from(self, key: str, value: bytes) -> Machine:
        return codec.decode_machine(key, value)

    def state_from(self, key: str, value: bytes) -> UnitState:
        machine, name = self.keys.split(key, self.keys.states)
        return codec.decode_state(machine, name, key, value)

    def flags_from(self, key: str, value: bytes) -> tuple[str, MachineFlags]:
        return self.keys.split(key, self.keys.machine_flags)[0], codec.decode_flags(key, value)

    def placement_from(self, key: str, value: bytes) -> Placement:
        name = self.keys.split(key, self.keys.placements)[0]
        return codec.decode_placement(name, key, value)

    # -- units ------------------------------------------------------------------------

    async def get_unit(self, name: str) -> Unit | None:
        found = await self.get_unit_with_revision(name)
        return found[0] if found else None

    async def get_unit_with_revision(self, name: str) -> tuple[Unit, int] | None:
        """The unit and its mod revision (for ``expected_revision``)."""
        kv = await self.registry.get(self.keys.unit(_segment("unit name", name)))
        return (self.unit_from(kv.key, kv.value), kv.mod_revision) if kv else None

    async def list_units(self) -> list[Unit]:
        items, _ = await self.registry.get_prefix(self.keys.units)
        return [self.unit_from(kv.key, kv.value) for kv in items]

    async def put_unit(self, unit: Unit, *, expected_revision: int | None = None) -> int:
        """Create or replace; with ``expected_revision`` only if the stored mod revision
        matches (``0``: only if absent), else Conflict.  Returns the new revision."""
        key = self.keys.unit(_segment("unit name", unit.name))
        put = Put(key, codec.encode_unit(unit))
        if expected_revision is None:
            return await self.registry.put(put.key, put.value)
        result = await self.registry.txn(
            [Compare(key, CompareTarget.MOD, expected_revision)], [put]
        )
        if not result.succeeded:
            what = "already exists" if expected_revision == 0 else "was changed meanwhile"
            raise Conflict(f"unit {unit.name} {what}")
        return result.revision

    async def list_units_with_revisions(self) -> dict[str, tuple[Unit, int]]:
        """Every unit by name, with its mod revision (for ``put_units``)."""
        items, _ = await self.registry.get_prefix(self.keys.units)
        return {
            u.name: (u, kv.mod_revision) for kv in items for u in [self.unit_from(kv.key, kv.value)]
        }

    async def write_unit(self, put: UnitPut) -> int:
        """One ``UnitPut`` in one transaction; Conflict if the unit or its version head
        changed since they were read.  Returns the new revision."""
        group = unit_group(self.keys, put)
        result = await self.registry.txn(group.compares, group.ops)
        if not result.succeeded:
            what = "already exists" if put.expected_revision == 0 else "was changed meanwhile"
            raise Conflict(f"unit {put.unit.name} {what}")
        return result.revision

    async def put_units(self, writes: Sequence[UnitPut]) -> list[UnitPut]:
        """Compare-and-swap many units, each with its versions, in transactions of
        <= MAX_TXN_OPS operations (a unit and its versions are never split).

        A transaction applies all its writes or none; the writes of transactions
        whose compares failed are returned (not written), in order, for the
        caller to retry one by one.
        """
        names: set[str] = set()
        groups: list[Group] = []
        for put in writes:
            if put.unit.name in names:
                raise InvalidInput(f"unit {put.unit.name} is written twice in one batch")
            names.add(put.unit.name)
            groups.append(unit_group(self.keys, put))
        lost: list[UnitPut] = []
        for run in chunk_groups(groups):
            compares = [c for i in run for c in groups[i].compares]
            ops = [op for i in run for op in groups[i].ops]
            result = await self.registry.txn(compares, ops)
            if not result.succeeded:
                lost.extend(writes[i] for i in run)
        return lost

    async def set_desired_state(self, name: str, desired: DesiredState) -> Unit:
        """Change a unit's desired state (NotFound if there is no such unit)."""
        for _ in range(_CAS_ATTEMPTS):
            found = await self.get_unit_with_revision(name)
            if found is None:
                raise NotFound(f"unit {name} does not exist")
            unit, revision = found
            if unit.desired is desired:
                return unit
            changed = replace(unit, desired=desired)
            try:
                await self.put_unit(changed, expected_revision=revision)
            except Conflict:
                continue
            return changed
        raise Conflict(f"unit {name} keeps changing; desired state not set")

    async def delete_unit(self, name: str, *, expected_revision: int | None = None) -> bool:
        """Delete the unit record; False if it did not exist.  Conflict if the CAS loses."""
        key = self.keys.unit(_segment("unit name", name))
        if expected_revision is None:
            return await self.registry.delete(key) > 0
        result = await self.registry.txn(
            [Compare(key, CompareTarget.MOD, expected_revision)], [Delete(key)]
        )
        if not result.succeeded:
            raise Conflict(f"unit {name} was changed meanwhile")
        return True

    # -- unit versions ------------------------------------------------------------------

    def version_from(self, key: str, value: bytes) -> Version:
        parts = self.keys.split(key, self.keys.versions)
        if len(parts) != 2 or not (parts[1].isdigit() and parts[1].isascii()):
            raise RegistryError(f"key {key} is not versions/<name>/<number>")
        return codec.decode_unit_version(parts[0], int(parts[1]), key, value)

    async def get_version_head(self, name: str) -> tuple[Head, int] | None:
        """The latest version of unit name ``name`` and its mod revision (for UnitPut)."""
        kv = await self.registry.get(self.keys.version_head(_segment("unit name", name)))
        return (codec.decode_version_head(kv.key, kv.value), kv.mod_revision) if kv else None

    async def list_version_heads(self) -> dict[str, tuple[Head, int]]:
        """Every unit name's version head with its mod revision."""
        items, _ = await self.registry.get_prefix(self.keys.version_heads)
        return {
            self.keys.split(kv.key, self.keys.version_heads)[0]: (
                codec.decode_version_head(kv.key, kv.value),
                kv.mod_revision,
            )
            for kv in items
        }

    async def list_versions(self, name: str) -> list[Version]:
        """The kept versions of unit name ``name``, oldest first."""
        items, _ = await self.registry.get_prefix(
            self.keys.unit_versions(_segment("unit name", name))
        )
        return sorted((self.version_from(kv.key, kv.value) for kv in items), key=_number)

    async def get_version(self, name: str, number: int) -> Version | None:
        kv = await self.registry.get(self.keys.unit_version(_segment("unit name", name), number))
        return self.version_from(kv.key, kv.value) if kv else None

    # -- rollouts ------------------------------------------------------------------------

    def rollout_from(self, key: str, value: bytes) -> Rollout:
        return codec.decode_rollout(self.keys.split(key, self.keys.rollouts)[0], key, value)

    async def get_rollout(self, unit: str) -> tuple[Rollout, int] | None:
        """The last rollout of ``unit`` and its mod revision (for compare-and-swap)."""
        kv = await self.registry.get(self.keys.rollout(_segment("unit name", unit)))
        return (self.rollout_from(kv.key, kv.value), kv.mod_revision) if kv else None

    async def list_rollouts(self) -> list[Rollout]:
        items, _ = await self.registry.get_prefix(self.keys.rollouts)
        return [self.rollout_from(kv.key, kv.value) for kv in items]

    def _rollout_group(self, rollout: Rollout, expected_revision: int) -> Group:
        key = self.keys.rollout(_segment("unit name", rollout.unit))
        return Group(
            (Compare(key, CompareTarget.MOD, expected_revision),),
            (Put(key, codec.encode_rollout(rollout)),),
        )

    async def start_rollout(self, put: UnitPut, rollout: Rollout, expected_revision: int) -> int:
        """Write a unit's new text (``put``, with its versions) and the rollout record in
        one transaction, if the unit, its version head and ``rollouts/<unit>`` (mod
        revision ``expected_revision``, 0: absent) are as read; else Conflict."""
        if put.unit.name != rollout.unit:
            raise ValueError(f"rollout of {rollout.unit} started with a write of {put.unit.name}")
        unit = unit_group(self.keys, put)
        record = self._rollout_group(rollout, expected_revision)
        result = await self.registry.txn(
            [*unit.compares, *record.compares], [*unit.ops, *record.ops]
        )
        if not result.succeeded:
            raise Conflict(f"unit {rollout.unit} or its rollout was changed meanwhile; try again")
        return result.revision

    async def put_rollout(self, rollout: Rollout, expected_revision: int) -> int:
        """Replace the record if its mod revision is still ``expected_revision``."""
        group = self._rollout_group(rollout, expected_revision)
        result = await self.registry.txn(group.compares, group.ops)
        if not result.succeeded:
            raise Conflict(f"the rollout of {rollout.unit} was changed meanwhile")
        return result.revision

    async def advance_rollout(
        self,
        writes: Sequence[UnitPut],
        rollout: Rollout,
        expected_revision: int,
        leader_revision: int,
    ) -> int:
        """The engine leader's step of a rollout: unit texts (each with its versions) and
        then the record, in as few transactions as etcd takes, each guarded by the
        leader's fence and by the record's mod revision still being ``expected_revision``
        (so a pause or an abort stops it); a write of the rolled unit itself goes in the
        record's transaction.  NotLeader if the fence failed, Conflict if
        anything else did (transactions before it stay applied)."""
        record = self._rollout_group(rollout, expected_revision)
        groups = [unit_group(self.keys, put) for put in writes if put.unit.name != rollout.unit]
        for own in (unit_group(self.keys, put) for put in writes if put.unit.name == rollout.unit):
            # The rolled unit's own text and pins go with the record, never apart from it.
            record = Group((*own.compares, *record.compares), (*own.ops, *record.ops))
        groups.append(record)
        guard = [self.leader_guard(leader_revision), record.compares[-1]]
        revision = 0
        for run in chunk_groups(groups, MAX_TXN_OPS - len(guard)):
            compares = [*guard, *(c for i in run for c in groups[i].compares)]
            ops = [op for i in run for op in groups[i].ops]
            result = await self.registry.txn(list(dict.fromkeys(compares)), ops)
            if not result.succeeded:
                leader = await self.current_leader()
                if leader is None or leader.revision != leader_revision:
                    raise NotLeader(f"engine leadership (revision {leader_revision}) was lost")
                raise Conflict(f"the rollout of {rollout.unit} or one of its units changed")
            revision = result.revision
        return revision

    # -- schedule and placement (engine, fenced) -----------------------------------------

    async def list_schedule(self, machine: str) -> list[ScheduleEntry]:
        prefix = self.keys.machine_schedule(_segment("machine id", machine))
        items, _ = await self.registry.get_prefix(prefix)
        return [self.schedule_from(kv.key, kv.value) for kv in items]

    async def list_all_schedule(self) -> list[ScheduleEntry]:
        items, _ = await self.registry.get_prefix(self.keys.schedule)
        return [self.schedule_from(kv.key, kv.value) for kv in items]

    def schedule_op(self, entry: ScheduleEntry) -> Put:
        machine, name = _segment("machine id", entry.machine), _segment("unit name", entry.name)
        return Put(self.keys.scheduled(machine, name), codec.encode_schedule(entry))

    def unschedule_op(self, machine: str, name: str) -> Delete:
        return Delete(self.keys.scheduled(_segment("machine id", machine), _segment("unit", name)))

    def placement_op(self, placement: Placement) -> Put:
        key = self.keys.placement(_segment("unit name", placement.name))
        return Put(key, codec.encode_placement(placement))

    def clear_placement_op(self, name: str) -> Delete:
        return Delete(self.keys.placement(_segment("unit name", name)))

    async def write_fenced(
        self, ops: Sequence[Op], leader_revision: int, guard: Sequence[Compare] = ()
    ) -> int:
        """Apply ``ops`` in ≤128-op transactions, each only while we still lead.

        Raises NotLeader when the fence fails (earlier chunks stay applied).
        """
        fence = [self.leader_guard(leader_revision), *guard]
        result = await self.registry.batch(ops, fence)
        if not result.succeeded:
            raise NotLeader(f"engine leadership (revision {leader_revision}) was lost")
        return result.revision

    async def put_placement(self, placement: Placement, leader_revision: int) -> int:
        return await self.write_fenced([self.placement_op(placement)], leader_revision)

    async def clear_placement(self, name: str, leader_revision: int) -> int:
        return await self.write_fenced([self.clear_placement_op(name)], leader_revision)

    async def get_placement(self, name: str) -> Placement | None:
        kv = await self.registry.get(self.keys.placement(_segment("unit name", name)))
        return self.placement_from(kv.key, kv.value) if kv else None

    async def list_placements(self) -> list[Placement]:
        items, _ = await self.registry.get_prefix(self.keys.placements)
        return [self.placement_from(kv.key, kv.value) for kv in items]

    # -- machines and their states (agent, under the machine lease) ---------------------

    async def register_machine(self, machine: Machine, lease: int) -> int:
        """Publish ``machines/<id>`` under ``lease``: creates it, or refreshes it if it is
        ours (same lease).  Conflict if another live fleetd holds this machine id."""
        key = self.keys.machine(_segment("machine id", machine.id))
        put = Put(key, codec.encode_machine(machine), lease)
        for _ in range(_CAS_ATTEMPTS):
            for compare in (Compare.absent(key), Compare(key, CompareTarget.LEASE, lease)):
                result = await self.registry.txn([compare], [put])
                if result.succeeded:
                    return result.revision
            if await self.registry.get(key) is not None:
                break
        raise Conflict(
            f"machine id {machine.id} is already registered by another live fleetd "
            "(a duplicated /etc/machine-id?)"
        )

    async def get_machine(self, machine_id: str) -> Machine | None:
        kv = await self.registry.get(self.keys.machine(_segment("machine id", machine_id)))
        return self.machine_from(kv.key, kv.value) if kv else None

    async def list_machines(self) -> list[Machine]:
        items, _ = await self.registry.get_prefix(self.keys.machines)
        return [self.machine_from(kv.key, kv.value) for kv in items]

    async def put_states(
        self, machine: str, states: Sequence[UnitState], lease: int, removed: Sequence[str] = ()
    ) -> int:
        """Publish unit states of ``machine`` under ``lease`` and drop those in ``removed``."""
        _segment("machine id", machine)
        ops: list[Op] = []
        for state in states:
            if state.machine != machine:
                raise InvalidInput(f"state of {state.name} is for {state.machine}, not {machine}")
            key = self.keys.state(machine, _segment("unit name", state.name))
            ops.append(Put(key, codec.encode_state(state), lease))
        ops.extend(Delete(self.keys.state(machine, _segment("unit", n))) for n in removed)
        return (await self.registry.batch(ops)).revision

    async def list_states(self, machine: str | None = None) -> list[UnitState]:
        prefix = (
            self.keys.machine_states(_segment("machine id", machine))
            if machine is not None
            else self.keys.states
        )
        items, _ = await self.registry.get_prefix(prefix)
        return [self.state_from(kv.key, kv.value) for kv in items]

    # -- machine flags (API) -------------------------------------------------------------

    async def get_machine_flags(self, machine: str) -> MachineFlags:
        kv = await self.registry.get(self.keys.machine_flag(_segment("machine id", machine)))
        return self.flags_from(kv.key, kv.value)[1] if kv else MachineFlags()

    async def set_machine_flags(self, machine: str, flags: MachineFlags) -> int:
        """Store the flags; all-default flags remove the key."""
        key = self.keys.machine_flag(_segment("machine id", machine))
        if flags == MachineFlags():
            return (await self.registry.txn([], [Delete(key)])).revision
        return await self.registry.put(key, codec.encode_flags(flags))

    async def list_machine_flags(self) -> dict[str, MachineFlags]:
        items, _ = await self.registry.get_prefix(self.keys.machine_flags)
        return dict(self.flags_from(kv.key, kv.value) for kv in items)

    # -- cluster settings (API; every engine watches them) -------------------------------

    async def get_cluster_settings(self) -> tuple[ClusterSettings, int]:
        """The cluster settings set and the key's mod revision (0: none ever set)."""
        kv = await self.registry.get(self.keys.cluster_settings)
        if kv is None:
            return ClusterSettings(), 0
        return codec.decode_cluster_settings(kv.key, kv.value), kv.mod_revision

    async def put_cluster_settings(self, settings: ClusterSettings, expected_revision: int) -> int:
        """Write the settings over those read at ``expected_revision`` (0: none);
        Conflict if they changed meanwhile (nothing is written)."""
        key = self.keys.cluster_settings
        compare = (
            Compare.absent(key)
            if expected_revision == 0
            else Compare(key, CompareTarget.MOD, expected_revision)
        )
        result = await self.registry.txn(
            [compare], [Put(key, codec.encode_cluster_settings(settings))]
        )
        if not result.succeeded:
            raise Conflict("the cluster settings changed meanwhile; read them again")
        return result.revision

    # -- the mass-loss guard (engine leader, fenced, under its lease) ----------------------

    def guard_op(self, guard: GuardRecord | None, lease: int) -> Op:
        """Publish the guard that holds (None: it ended) under the leader's ``lease``."""
        if guard is None:
            return Delete(self.keys.guard)
        return Put(self.keys.guard, codec.encode_guard(guard), lease)

    async def get_guard(self) -> GuardRecord | None:
        """The engine leader's mass-loss guard, if it holds."""
        kv = await self.registry.get(self.keys.guard)
        return codec.decode_guard(kv.key, kv.value) if kv else None

    # -- engine leadership ---------------------------------------------------------------

    async def campaign(self, machine: str, lease: int) -> int | None:
        """Try to become leader under ``lease``; the election revision (the fence) if we
        lead (also when we already did with this lease), else None."""
        key = self.keys.leader
        result = await self.registry.txn(
            [Compare.absent(key)], [Put(key, codec.encode_leader(machine), lease)]
        )
        if result.succeeded:
            return result.revision
        leader = await self.current_leader()
        if leader is not None and leader.machine == machine and leader.lease == lease:
            return leader.revision
        return None

    def leader_guard(self, revision: int) -> Compare:
        """The compare every engine write carries: engine/leader still created at ``revision``."""
        return Compare(self.keys.leader, CompareTarget.CREATE, revision)

    async def current_leader(self) -> Leader | None:
        kv = await self.registry.get(self.keys.leader)
        if kv is None:
            return None
        return Leader(codec.decode_leader(kv.key, kv.value), kv.create_revision, kv.lease)

    async def resign(self, revision: int) -> bool:
        """Give up leadership won at ``revision``; False if it was already lost."""
        result = await self.registry.txn([self.leader_guard(revision)], [Delete(self.keys.leader)])
        return result.succeeded

    # -- mirroring a prefix -------------------------------------------------------------

    async def read(self, prefix: str) -> Snapshot:
        """Every key under ``prefix`` now: what ``mirror`` yields first."""
        items, revision = await self.registry.get_prefix(prefix)
        return Snapshot({kv.key: kv for kv in items}, revision)

    async def mirror(self, prefix: str) -> AsyncIterator[Snapshot | Changes]:
        """Snapshot of ``prefix``, then its Changes; a new Snapshot after a compaction.

        RegistryUnavailable from the initial read propagates; the watch itself
        survives reconnects.
        """
        while True:
            snapshot = await self.read(prefix)
            yield snapshot
            watch = self.registry.watch_prefix(prefix, snapshot.revision + 1)
            try:
                async for events in watch:
                    yield Changes(tuple(events), events[-1].mod_revision)
            except WatchCompacted:
                log.info("mirror %s: history compacted, reading it again", prefix)
            finally:
                close = getattr(watch, "aclose", None)
                if close is not None:
                    await close()
