"""``POST /plan``: what unit changes would do, writing nothing (no FastAPI: ``fleetctl
--driver etcd`` uses it too).

The changes are checked exactly as ``PUT /units`` checks them
(``unitbatch.check_units``: names, files, templates, replace rules), so a bad
item is the same 400/409 naming it.  The cluster is then read the way a new
engine leader reads it (``fleetd.engine.mirrors.read_model``), the planned
units are laid over its units, and the engine's own full plan is run on both
(``fleetd.engine.preview``).  Nothing here writes to the registry.

The plan is made with ``settings``: the scheduling settings of the engine
(strategy, reservation defaults, AtMostOnce grace), as this fleetd's
configuration sets them, with the cluster settings of the registry over them
(the strategy, as every engine applies it); a cluster whose leader is configured
otherwise may place differently.  Moves asked of the leader in its memory
(``Engine.request_moves``) are not in the registry and not planned; a drain
in progress is (as ``pending`` where these units do not change it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

from fleetd.caller import Caller
from fleetd.engine.mirrors import Parsed, read_model, read_states, unit_spec
from fleetd.engine.plan import Action, UnitSpec
from fleetd.engine.preview import Change, Preview, preview
from fleetd.engine.settings import EngineSettings, with_cluster
from fleetd.model import Machine
from fleetd.registry.store import Store

from .. import wire
from .commands import SetOutcome, UnitChange
from .unitbatch import check_units

_ACTIONS: dict[Action, Literal["schedule", "unschedule", "update"]] = {
    Action.SCHEDULE: "schedule",
    Action.UNSCHEDULE: "unschedule",
    Action.UPDATE: "update",
}


async def plan_units(
    store: Store,
    changes: Sequence[UnitChange],
    *,
    settings: EngineSettings,
    caller: Caller,
    replace_options: bool = True,
    clock: Callable[[], float] = time.time,
    parsed: Parsed | None = None,
) -> wire.PlanResponse:
    """What writing ``changes`` (as ``PUT /units`` would, with ``replace_options``)
    would change in the schedule.  ``parsed``: a cache of parsed unit files kept
    between calls (as the engine keeps one)."""
    checked = await check_units(
        store, changes, caller=caller, replace_options=replace_options, clock=clock
    )
    cache: Parsed = {} if parsed is None else parsed
    cluster, _ = await store.get_cluster_settings()
    settings = with_cluster(settings, cluster)
    model = await read_model(store, settings.defaults, clock, cache)
    states = await read_states(store, model)
    now = clock()
    snap = model.snapshot(
        now,
        wall=now,
        grace=settings.at_most_once_grace,
        strategy=settings.strategy,
        drain_batch=None,
        states=states,
    )
    proposed: dict[str, UnitSpec] = {}
    for change, write in zip(changes, checked.writes, strict=True):
        if write is not None:
            proposed[write.unit.name] = unit_spec(
                write.unit, settings.defaults, cache, len(snap.units)
            )
        elif change.name in snap.units:
            proposed[change.name] = snap.units[change.name]
    found = await asyncio.to_thread(preview, snap, proposed)
    return _response(
        changes, checked.outcomes, snap.units, proposed, found, snap.machines, settings
    )


def _response(
    changes: Sequence[UnitChange],
    outcomes: Sequence[SetOutcome],
    before: Mapping[str, UnitSpec],
    proposed: Mapping[str, UnitSpec],
    found: Preview,
    machines: Mapping[str, Machine],
    settings: EngineSettings,
) -> wire.PlanResponse:
    why = {u.unit: u.reason for u in found.unplaceable} | dict(found.waiting)
    units = []
    for change, outcome in zip(changes, outcomes, strict=True):
        spec, old = proposed.get(change.name), before.get(change.name)
        if spec is None:
            continue  # destroyed after it was read: nothing to plan
        units.append(
            wire.PlanUnit(
                name=spec.name,
                result=outcome.result.value,
                hash=spec.hash,
                previousHash=old.hash if old else None,
                desiredState=spec.desired.value,
                previousDesiredState=old.desired.value if old else None,
                machineIDs=list(found.machines.get(spec.name, ())),
                reason=why.get(spec.name),
                warnings=list(outcome.warnings),
            )
        )
    return wire.PlanResponse(
        units=units,
        changes=[_change(c, machines) for c in found.changes],
        unplaceable=[
            wire.PlanUnplaceable(name=u.unit, reason=u.reason, reasons=dict(u.rejections))
            for u in found.unplaceable
        ],
        waiting=[wire.PlanWaiting(name=n, reason=r) for n, r in sorted(found.waiting.items())],
        pending=found.pending,
        changed=bool(found.changes) or any(u.result != "unchanged" for u in units),
        strategy=settings.strategy.value,
    )


def _change(change: Change, machines: Mapping[str, Machine]) -> wire.PlanChange:
    machine = machines.get(change.machine)
    after, before = change.entry, change.previous
    return wire.PlanChange(
        action=_ACTIONS[change.action],
        unit=change.unit,
        machineID=change.machine,
        hostname=machine.hostname or None if machine else None,
        reason=change.reason,
        effect=change.effect,
        hash=after.hash if after else None,
        previousHash=before.hash if before else None,
        desiredState=after.desired.value if after else None,
        previousDesiredState=before.desired.value if before else None,
    )
