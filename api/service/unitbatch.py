"""Many unit writes at once, with ``set_unit``'s rules (no FastAPI: fleetctl uses it too).

``set_units`` is ``PUT /units`` (an extension): each change means exactly what
``PUT /units/{name}`` means for it (commands.py).  Every item is checked
against one read of the registry before anything is written, so one bad item
(invalid name or file, a template started, a missing unit without options,
different options without ``replace``) answers an error that names it and
writes nothing.  The writes then go out in compare-and-swap transactions of
at most MAX_TXN_OPS units: a create only if the unit is still absent, a
change only if the unit is unchanged since the read.  A transaction that
loses such a race is redone item by item as single PUTs would be (a create
that lost is a Conflict); the items before it stay written, and sending the
same request again is safe.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fleetd import model
from fleetd.caller import Caller
from fleetd.errors import FleetError, InvalidInput
from fleetd.registry.store import Store
from fleetd.unitfile import UnitName
from fleetd.versions import Head

from .commands import (
    Author,
    SetOutcome,
    SetResult,
    UnitChange,
    UnitWrite,
    apply_write,
    plan_change,
)

MAX_BATCH_UNITS = 1000
"""Most changes in one request (a request must also fit the 1 MiB body limit)."""

_READ_ALL = 16  # more changes than this: list the units once instead of one read each


def _labelled(index: int, name: str, exc: FleetError) -> FleetError:
    return type(exc)(f"units[{index}] ({name}): {exc}")


async def _read(store: Store, names: Sequence[str]) -> dict[str, tuple[model.Unit, int]]:
    if len(names) > _READ_ALL:
        return await store.list_units_with_revisions()
    found = {}
    for name in names:
        item = await store.get_unit_with_revision(name)
        if item is not None:
            found[name] = item
    return found


async def _read_heads(store: Store, names: Sequence[str]) -> dict[str, tuple[Head, int]]:
    if len(names) > _READ_ALL:
        return await store.list_version_heads()
    found = {}
    for name in names:
        item = await store.get_version_head(name)
        if item is not None:
            found[name] = item
    return found


@dataclass(frozen=True, slots=True)
class Checked:
    """What a batch of changes means, decided against one read of the registry: for
    each change in order, its write (None: nothing to write) and its outcome."""

    writes: tuple[UnitWrite | None, ...]
    outcomes: tuple[SetOutcome, ...]


async def check_units(
    store: Store,
    changes: Sequence[UnitChange],
    *,
    caller: Caller,
    replace_options: bool = True,
    clock: Callable[[], float] = time.time,
) -> Checked:
    """Every check ``set_units`` makes, writing nothing (``fleetctl plan`` shares it).

    InvalidInput/Conflict name the first bad item."""
    if len(changes) > MAX_BATCH_UNITS:
        raise InvalidInput(
            f"too many units in one request: {len(changes)} > {MAX_BATCH_UNITS}; "
            "send them in several requests"
        )
    names: list[UnitName] = []
    seen: set[str] = set()
    for index, change in enumerate(changes):
        try:
            name = UnitName.parse(change.name)
        except FleetError as exc:
            raise _labelled(index, change.name, exc) from exc
        if name.name in seen:
            raise InvalidInput(f"units[{index}] ({name.name}): unit is listed twice")
        seen.add(name.name)
        names.append(name)
    existing = await _read(store, [n.name for n in names])
    with_text = [n.name for n, c in zip(names, changes, strict=True) if c.options]
    heads = await _read_heads(store, with_text)
    author = Author(caller, clock())
    writes: list[UnitWrite | None] = []
    outcomes: list[SetOutcome] = []
    for index, (name, change) in enumerate(zip(names, changes, strict=True)):
        try:
            write, warnings = plan_change(
                name,
                change,
                existing.get(name.name),
                replace_options,
                heads.get(name.name),
                author,
            )
        except FleetError as exc:
            raise _labelled(index, name.name, exc) from exc
        writes.append(write)
        outcomes.append(
            SetOutcome(SetResult.UNCHANGED if write is None else write.result, warnings)
        )
    return Checked(tuple(writes), tuple(outcomes))


async def set_units(
    store: Store,
    changes: Sequence[UnitChange],
    *,
    caller: Caller,
    replace_options: bool = True,
    clock: Callable[[], float] = time.time,
) -> list[SetOutcome]:
    """Apply ``changes`` (distinct names, at most MAX_BATCH_UNITS); results (with each
    unit file's warnings) in order.  New texts are recorded as versions by ``caller``.

    InvalidInput/Conflict name the first bad item and nothing is written then.
    """
    checked = await check_units(
        store, changes, caller=caller, replace_options=replace_options, clock=clock
    )
    writes = [w for w in checked.writes if w is not None]
    lost = await store.put_units([w.put for w in writes])
    by_name = {w.unit.name: w for w in writes}
    for put in lost:
        # A transaction lost a race: each of its writes on its own, as a single PUT.
        await apply_write(store, by_name[put.unit.name])
    return list(checked.outcomes)
