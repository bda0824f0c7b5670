"""The registry operations of maintenance: the record, machine actions and reboot
requests, over a Store (fleetd/registry/store.py).

Contracts: the record is created only if the key is absent or its last record is
over (compare-and-swap on its mod revision, Conflict otherwise); the leader's
steps (``advance``) are one transaction guarded by its fence and the record's mod
revision, with the flags and actions the step writes; an agent reports on its
action by compare-and-swap, so a report never lands on a newer request.
"""

from __future__ import annotations

from collections.abc import Sequence

from fleetd.errors import Conflict, NotLeader
from fleetd.maintenance.record import MachineAction, Maintenance, RebootRequest
from fleetd.model import MachineFlags
from fleetd.registry import codec, maintcodec
from fleetd.registry.base import Compare, CompareTarget, Delete, Op, Put
from fleetd.registry.keys import segment
from fleetd.registry.store import Store


class MaintenanceStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.registry = store.registry
        self.keys = store.keys

    # -- the record -------------------------------------------------------------------

    async def get(self) -> tuple[Maintenance, int] | None:
        """The current (or last) maintenance and its mod revision."""
        kv = await self.registry.get(self.keys.maintenance)
        if kv is None:
            return None
        return maintcodec.decode_maintenance(kv.key, kv.value), kv.mod_revision

    async def create(self, record: Maintenance, expected_revision: int) -> int:
        """Write a new maintenance over the record read at ``expected_revision`` (0: none);
        Conflict if it changed meanwhile."""
        key = self.keys.maintenance
        result = await self.registry.txn(
            [Compare(key, CompareTarget.MOD, expected_revision)],
            [Put(key, maintcodec.encode_maintenance(record))],
        )
        if not result.succeeded:
            raise Conflict("another maintenance was started meanwhile")
        return result.revision

    async def replace(self, record: Maintenance, revision: int, ops: Sequence[Op] = ()) -> int:
        """``ops`` and ``record`` over the record read at ``revision`` (a cancel); Conflict
        if it changed meanwhile."""
        key = self.keys.maintenance
        result = await self.registry.txn(
            [Compare(key, CompareTarget.MOD, revision)],
            [*ops, Put(key, maintcodec.encode_maintenance(record))],
        )
        if not result.succeeded:
            raise Conflict("the maintenance record changed meanwhile")
        return result.revision

    async def advance(
        self, record: Maintenance, revision: int, fence: int, ops: Sequence[Op] = ()
    ) -> int:
        """The leader's step: ``ops`` and the record in one transaction, only while it leads
        (NotLeader) and the record is unchanged since ``revision`` (Conflict)."""
        key = self.keys.maintenance
        result = await self.registry.txn(
            [self.store.leader_guard(fence), Compare(key, CompareTarget.MOD, revision)],
            [*ops, Put(key, maintcodec.encode_maintenance(record))],
        )
        if result.succeeded:
            return result.revision
        leader = await self.store.current_leader()
        if leader is None or leader.revision != fence:
            raise NotLeader(f"engine leadership (revision {fence}) was lost")
        raise Conflict("the maintenance record changed meanwhile")

    def flags_op(self, machine: str, flags: MachineFlags) -> Op:
        key = self.keys.machine_flag(segment("machine id", machine))
        if flags == MachineFlags():
            return Delete(key)
        return Put(key, codec.encode_flags(flags))

    # -- machine actions ----------------------------------------------------------------

    def action_op(self, machine: str, action: MachineAction) -> Put:
        key = self.keys.machine_action(segment("machine id", machine))
        return Put(key, maintcodec.encode_machine_action(action))

    def clear_action_op(self, machine: str) -> Delete:
        return Delete(self.keys.machine_action(segment("machine id", machine)))

    def action_from(self, key: str, value: bytes) -> MachineAction:
        return maintcodec.decode_machine_action(key, value)

    async def get_action(self, machine: str) -> tuple[MachineAction, int] | None:
        kv = await self.registry.get(self.keys.machine_action(segment("machine id", machine)))
        return (self.action_from(kv.key, kv.value), kv.mod_revision) if kv else None

    async def list_actions(self) -> dict[str, MachineAction]:
        items, _ = await self.registry.get_prefix(self.keys.machine_actions)
        return {
            self.keys.split(kv.key, self.keys.machine_actions)[0]: self.action_from(
                kv.key, kv.value
            )
            for kv in items
        }

    async def report(self, machine: str, action: MachineAction, revision: int) -> int:
        """An agent's report on its action, only if the key is as read at ``revision``
        (Conflict otherwise: a new request, or the leader cleared it)."""
        put = self.action_op(machine, action)
        result = await self.registry.txn([Compare(put.key, CompareTarget.MOD, revision)], [put])
        if not result.succeeded:
            raise Conflict(f"the action of {machine} changed meanwhile")
        return result.revision

    # -- reboot requests ----------------------------------------------------------------

    def request_from(self, key: str, value: bytes) -> RebootRequest:
        machine = self.keys.split(key, self.keys.reboot_requests)[0]
        return maintcodec.decode_request(machine, key, value)

    async def list_requests(self) -> dict[str, RebootRequest]:
        items, _ = await self.registry.get_prefix(self.keys.reboot_requests)
        found = (self.request_from(kv.key, kv.value) for kv in items)
        return {r.machine: r for r in found}

    async def request(self, request: RebootRequest) -> bool:
        """Ask for a reboot of ``request.machine``; False if it already asked (the first
        request, and its time, stay)."""
        key = self.keys.reboot_request(segment("machine id", request.machine))
        result = await self.registry.txn(
            [Compare.absent(key)], [Put(key, maintcodec.encode_request(request))]
        )
        return result.succeeded

    def clear_request_op(self, machine: str) -> Delete:
        return Delete(self.keys.reboot_request(segment("machine id", machine)))
