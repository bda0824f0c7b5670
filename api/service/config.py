"""Reading and changing the cluster settings (``GET``/``PATCH /config``; no FastAPI:
``fleetctl --driver etcd`` uses it too).

``change_settings`` checks every change before anything is written (an unknown
name, a wrong type or a value out of range: InvalidInput, nothing changed), then
writes ``cluster/settings`` by compare-and-swap over what it read, reading again
if someone else wrote meanwhile.  Every engine watches the key and applies it
without a restart (fleetd/engine/engine.py).  The guard that holds is read from
``engine/guard`` (``guard_view``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from fleetd import clustersettings
from fleetd.clustersettings import ClusterSettings, Value
from fleetd.errors import Conflict, InvalidInput
from fleetd.model import GuardRecord
from fleetd.registry.store import Store

from .. import wire
from .history import rfc3339

_ATTEMPTS = 5


def view(
    settings: ClusterSettings, revision: int, defaults: Mapping[str, Value]
) -> wire.ClusterSettings:
    chosen = settings.values()
    return wire.ClusterSettings(
        settings=[
            wire.ClusterSetting(
                name=s.name,
                value=chosen.get(s.name, defaults[s.name]),
                default=defaults[s.name],
                set=s.name in chosen,
                description=s.help,
            )
            for s in clustersettings.SETTINGS
        ],
        revision=revision,
    )


async def read_settings(store: Store, defaults: Mapping[str, Value]) -> wire.ClusterSettings:
    """Every setting: its value in force, its default, whether it is set."""
    settings, revision = await store.get_cluster_settings()
    return view(settings, revision, defaults)


async def change_settings(
    store: Store, changes: Mapping[str, Value | None], defaults: Mapping[str, Value]
) -> wire.ClusterSettings:
    """Apply ``changes`` (name -> value; None: back to the default), all or nothing."""
    if not changes:
        raise InvalidInput(
            f"give at least one setting to change (known: {', '.join(clustersettings.NAMES)})"
        )
    for name, value in changes.items():  # checked before anything is read or written
        if value is not None:
            clustersettings.check(name, value)
        else:
            clustersettings.setting(name)
    for _ in range(_ATTEMPTS):
        current, revision = await store.get_cluster_settings()
        wanted = current.changed(changes)
        if wanted == current:
            return view(current, revision, defaults)
        try:
            written = await store.put_cluster_settings(wanted, revision)
        except Conflict:
            continue
        return view(wanted, written, defaults)
    raise Conflict("the cluster settings keep changing; try again")


def guard_view(record: GuardRecord) -> wire.Guard:
    cause: Literal["mass loss", "new leader"] = (
        "new leader" if record.cause == "new leader" else "mass loss"
    )
    return wire.Guard(
        cause=cause,
        reason=record.reason,
        since=rfc3339(record.since),
        until=rfc3339(record.until),
        absent=list(record.absent),
        units=record.units,
    )


async def read_guard(store: Store) -> wire.Guard | None:
    """The engine leader's mass-loss guard, if it holds."""
    record = await store.get_guard()
    return guard_view(record) if record is not None else None
