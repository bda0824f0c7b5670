"""Starting, controlling and reading rollouts (no FastAPI: ``fleetctl --driver etcd`` uses it).

``start_rollout`` is ``POST /rollouts``.  Every check runs before anything is
written, so a refused rollout changes nothing:

- the options make sense (``max_parallel`` at least 1, a deadline longer
  than the min healthy time, ...): else InvalidInput (400);
- the new file passes every check a submission passes (InvalidInput), or the
  version asked for is kept (NotFound);
- start-first only for a plain unit that is not AtMostOnce (InvalidInput);
- the unit exists (NotFound), no other rollout of it is active (Conflict,
  409), and it runs: a plain or Global unit is launched, a template has
  launched instances (else Conflict: a rollout replaces running units,
  ``submit --replace`` changes a file alone); something would change
  (Conflict).

Then the unit's new text (with the version it adds, authored by the caller)
and the rollout record are written in one transaction; the engine leader
drives the rest.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fleetd import model
from fleetd.caller import Caller
from fleetd.errors import Conflict, InvalidInput, NotFound
from fleetd.registry.store import Store
from fleetd.registry.unitput import UnitPut
from fleetd.requirements import Requirements
from fleetd.rollouts.control import Control, controlled
from fleetd.rollouts.record import Kind, Options, Rollout, State, Target
from fleetd.unitcheck import check_unit, parse_unit
from fleetd.unitname import UnitName
from fleetd.versions import Head, versions_for

from .. import wire
from .commands import build_unit_file
from .history import rfc3339

_CAS_ATTEMPTS = 10
_READS_AT_ONCE = 64


@dataclass(frozen=True, slots=True)
class RolloutSpec:
    """What a rollout asks for: ``unit`` to ``options`` (a new file) or to the text of
    its kept version ``version`` (a rollback), rolled as ``settings`` say."""

    unit: str
    settings: Options
    options: Sequence[wire.UnitOption] | None = None
    version: int | None = None


def settings_of(body: wire.RolloutSettings) -> Options:
    return Options(
        max_parallel=body.maxParallel,
        min_healthy_time=body.minHealthyTime,
        healthy_deadline=body.healthyDeadline,
        auto_revert=body.autoRevert,
        canary=body.canary,
        start_first=body.startFirst,
    )


async def start_rollout(
    store: Store,
    spec: RolloutSpec,
    *,
    caller: Caller,
    clock: Callable[[], float] = time.time,
) -> Rollout:
    """Check ``spec`` and start it (see the module doc); the record as written."""
    name = UnitName.parse(spec.unit)
    problems = spec.settings.problems()
    if problems:
        raise InvalidInput(f"rollout of {name.name}: {'; '.join(problems)}")
    text = await _text_of(store, name, spec)
    _, unit_file, reqs = parse_unit(name.name, text)
    found = await store.get_unit_with_revision(name.name)
    if found is None:
        raise NotFound(
            f"unit {name.name} does not exist: a rollout replaces a unit that runs "
            f"(start it first: fleetctl start)"
        )
    current, revision = found
    existing = await store.get_rollout(name.name)
    if existing is not None and existing[0].active:
        other = existing[0]
        raise Conflict(
            f"a rollout of {name.name} is already {other.phase} (id {other.id}, started by "
            f"{other.by}): wait for it, or abort it (fleetctl rollout abort {name.name})"
        )
    kind = await _kind(store, name, current, reqs.global_, unit_file.hash)
    held: tuple[tuple[str, str], ...] = ()
    if spec.settings.start_first:
        _check_start_first(name, kind, reqs, parse_unit(name.name, current.text)[2])
        held = tuple(sorted((await _scheduled(store, name.name)).items()))
        if not held:
            raise Conflict(f"unit {name.name} is scheduled on no machine: nothing to start first")
    head = await store.get_version_head(name.name)
    now = clock()
    added = versions_for(
        name.name, text, unit_file.hash, current, head[0] if head else None, caller, now
    )
    targets: tuple[Target, ...] = ()
    pinned: tuple[tuple[str, str], ...] = ()
    if kind is Kind.UNIT:
        targets = (Target(name.name, current.hash, unit_file.hash, State.UPDATING, started=now),)
        pinned = held  # start-first: the old copy runs on there, the new one starts elsewhere
    elif kind is Kind.GLOBAL:
        # Every machine keeps the file it runs until the engine moves it.
        where = await _scheduled(store, name.name)
        if not where:
            raise Conflict(f"Global unit {name.name} is scheduled on no machine: nothing to roll")
        targets = tuple(Target(m, h, h) for m, h in sorted(where.items()))
        pinned = tuple((m, h) for m, h in sorted(where.items()) if h != unit_file.hash)
    put = UnitPut(
        model.Unit(name.name, text, unit_file.hash, current.desired, pinned),
        revision,
        added,
        head[1] if head else 0,
    )
    record = Rollout(
        id=uuid.uuid4().hex[:12],
        unit=name.name,
        kind=kind,
        from_version=_from_version(current, head[0] if head else None),
        from_hash=current.hash,
        to_version=added[-1].number if added else _number(head),
        to_hash=unit_file.hash,
        options=spec.settings,
        targets=targets,
        by=caller.name,
        created=now,
        updated=now,
        message="starting",
        held=held,
    )
    await store.start_rollout(put, record, existing[1] if existing else 0)
    return record


def _check_start_first(name: UnitName, kind: Kind, new: Requirements, old: Requirements) -> None:
    """InvalidInput unless ``name`` is a plain unit that may run twice for a while, on
    another machine than now."""
    why = ""
    if kind is not Kind.UNIT:
        why = f"start-first applies to a plain unit (a {kind} unit's targets are replaced "
        why += "in place, max-parallel at a time)"
    elif new.at_most_once or old.at_most_once:
        why = "start-first runs the old and the new copy at once, which AtMostOnce forbids"
    elif new.machine_id or new.machine_of:
        why = "start-first needs another machine for the new copy: MachineID=/MachineOf= "
        why += "tie the unit to its machine (it is replaced in place without --start-first)"
    if why:
        raise InvalidInput(f"rollout of {name.name}: {why}")


async def _text_of(store: Store, name: UnitName, spec: RolloutSpec) -> str:
    if (spec.options is None) == (spec.version is None):
        raise InvalidInput(
            f"rollout of {name.name}: give either the new unit file (options) or the "
            "version to roll back to (version), not both or neither"
        )
    if spec.options is not None:
        return build_unit_file(name, spec.options)[0].to_text()
    assert spec.version is not None
    version = await store.get_version(name.name, spec.version)
    if version is None:
        kept = [v.number for v in await store.list_versions(name.name)]
        what = f"versions {kept[0]} to {kept[-1]} are" if kept else "no version is"
        raise NotFound(f"version {spec.version} of {name.name} is not kept ({what})")
    check_unit(name.name, version.text)
    return version.text


async def _kind(
    store: Store, name: UnitName, current: model.Unit, global_: bool, new_hash: str
) -> Kind:
    """What is rolled (and Conflict if it does not run or nothing would change)."""
    if name.is_template:
        launched = await _launched_instances(store, name)
        if not launched:
            raise Conflict(
                f"{name.name} has no launched instances: nothing to roll out (a rollout "
                f"replaces running instances; submit --replace changes the template alone)"
            )
        if current.hash == new_hash and all(u.hash == new_hash for u in launched):
            raise Conflict(f"every launched instance of {name.name} already has this file")
        return Kind.TEMPLATE
    was_global = parse_unit(name.name, current.text)[2].global_
    if was_global != global_:
        raise InvalidInput(
            f"rollout of {name.name}: the new file turns Global= "
            f"{'off' if was_global else 'on'}; destroy the unit and start it anew instead"
        )
    if current.desired is not model.DesiredState.LAUNCHED:
        raise Conflict(
            f"unit {name.name} is not launched (its desired state is {current.desired}): "
            "a rollout replaces a running unit; submit --replace changes its file alone"
        )
    if current.hash == new_hash:
        raise Conflict(f"unit {name.name} already has this file (hash {new_hash[:7]})")
    return Kind.GLOBAL if global_ else Kind.UNIT


async def _launched_instances(store: Store, template: UnitName) -> list[model.Unit]:
    prefix = store.keys.unit(f"{template.prefix}@")
    items, _ = await store.registry.get_prefix(prefix)
    found = []
    for kv in items:
        unit = store.unit_from(kv.key, kv.value)
        if (
            unit.name.endswith(template.suffix)
            and UnitName.parse(unit.name).template == template.name
            and unit.desired is model.DesiredState.LAUNCHED
        ):
            found.append(unit)
    return found


async def _scheduled(store: Store, name: str) -> dict[str, str]:
    """The machines (registered now) with an entry for unit ``name``, and its hash there."""
    machines = [m.id for m in await store.list_machines()]
    found: dict[str, str] = {}
    for start in range(0, len(machines), _READS_AT_ONCE):
        batch = machines[start : start + _READS_AT_ONCE]
        keys = [store.keys.scheduled(m, name) for m in batch]
        for machine, kv in zip(
            batch, await asyncio.gather(*(store.registry.get(k) for k in keys)), strict=True
        ):
            if kv is not None:
                found[machine] = store.schedule_from(kv.key, kv.value).hash
    return found


def _from_version(current: model.Unit, head: Head | None) -> int:
    if head is not None and head.hash == current.hash:
        return head.number
    # versions_for recorded the current text first (it was written before versions were).
    return (head.number if head else 0) + 1


def _number(head: tuple[Head, int] | None) -> int:
    if head is None:
        raise Conflict("the unit's version head vanished meanwhile; try again")
    return head[0].number


async def control_rollout(
    store: Store,
    unit: str,
    action: Control,
    *,
    caller: Caller,
    clock: Callable[[], float] = time.time,
) -> Rollout:
    """Pause, resume, promote or abort the rollout of ``unit`` (NotFound if it never had
    one, Conflict if the action does not apply now)."""
    name = UnitName.parse(unit)
    for _ in range(_CAS_ATTEMPTS):
        found = await store.get_rollout(name.name)
        if found is None:
            raise NotFound(f"{name.name} has no rollout")
        record, revision = found
        changed = controlled(record, action, caller.name, clock())
        if changed == record:
            return record
        try:
            await store.put_rollout(changed, revision)
        except Conflict:
            continue
        return changed
    raise Conflict(f"the rollout of {name.name} keeps changing; {action} not applied")


async def get_rollout(store: Store, unit: str) -> wire.Rollout:
    name = UnitName.parse(unit)
    found = await store.get_rollout(name.name)
    if found is None:
        raise NotFound(f"{name.name} has no rollout")
    return view(found[0])


async def list_rollouts(store: Store) -> wire.RolloutList:
    return wire.RolloutList(rollouts=[view(r) for r in await store.list_rollouts()])


def view(r: Rollout) -> wire.Rollout:
    """The API's view of a record."""
    o = r.options
    return wire.Rollout(
        id=r.id,
        unit=r.unit,
        kind=r.kind.value,
        phase=r.phase.value,
        fromVersion=r.from_version,
        fromHash=r.from_hash,
        toVersion=r.to_version,
        toHash=r.to_hash,
        maxParallel=o.max_parallel,
        minHealthyTime=o.min_healthy_time,
        healthyDeadline=o.healthy_deadline,
        autoRevert=o.auto_revert,
        canary=o.canary,
        startFirst=o.start_first,
        targets=[
            wire.RolloutTarget(
                name=t.name,
                state=t.state.value,
                hash=t.current,
                oldHash=t.old,
                started=rfc3339(t.started) if t.started else None,
                since=rfc3339(t.since) if t.since else None,
                message=t.message,
            )
            for t in r.targets
        ],
        startedBy=r.by,
        created=rfc3339(r.created) if r.created else None,
        updated=rfc3339(r.updated) if r.updated else None,
        message=r.message,
        failure=r.failure,
        promoted=r.promoted,
        reverting=r.reverting,
        revertVersion=r.revert_version,
        active=r.active,
    )
