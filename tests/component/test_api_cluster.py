"""``GET /fleet/v1/cluster`` and the events that keep a live view of it current.

The dashboard reads the cluster once and then applies ``/events?since=<revision>``;
that works only if each event carries its key's whole value exactly as the cluster
view shows it, and if no change after ``revision`` is missing from the stream.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from typing import Any

from apikit import add_machine, client_for, make_app, new_store, report, schedule, unplaceable

from fleetd import model
from fleetd.api.routes.events import classify
from fleetd.api.service import maintenance
from fleetd.api.service.clusterview import read_cluster
from fleetd.caller import Caller, Role
from fleetd.registry.base import WatchEvent
from fleetd.registry.store import Store
from fleetd.unitfile import UnitFile

M1 = "a" * 32
M2 = "b" * 32
RESERVED = (
    "[Service]\nExecStart=/bin/sleep 1000\n\n[X-Fleet]\nCPUReservation=250m\n"
    "MemoryReservation=128M\n"
)
GLOBAL = "[Service]\nExecStart=/bin/sleep 1000\n\n[X-Fleet]\nGlobal=true\n"
ONCE = "[Service]\nType=oneshot\nExecStart=/bin/true\n"


async def put_unit(store: Store, name: str, text: str, desired: str = "launched") -> None:
    parsed = UnitFile.from_text(text)
    await store.put_unit(
        model.Unit(name, parsed.to_text(), parsed.hash, model.DesiredState(desired))
    )


async def seeded() -> Store:
    store = new_store()
    await add_machine(store, M1, "10.0.0.1", (("disk", "ssd"),), cpu=4000)
    await add_machine(store, M2, "10.0.0.2")
    await put_unit(store, "web.service", RESERVED)
    await put_unit(store, "all.service", GLOBAL)
    await put_unit(store, "once.service", ONCE)
    await put_unit(store, "big.service", RESERVED.replace("128M", "900G"))
    await schedule(store, M1, "web.service")
    await report(store, M1, "web.service")
    await schedule(store, M1, "all.service")
    await schedule(store, M2, "all.service")
    await unplaceable(store, "big.service", "no machine has enough memory", **{M1: "no", M2: "no"})
    return store


async def test_the_cluster_in_one_answer() -> None:
    store = await seeded()
    async with client_for(make_app(store)) as client:
        response = await client.get("/fleet/v1/cluster", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    view = response.json()
    assert set(view) == {
        "revision", "machines", "units", "schedule", "states", "placements", "rebootRequests"
    }  # fmt: skip
    assert view["rebootRequests"] == []  # and no maintenance was ever started
    _, now = await store.registry.get_prefix(store.keys.version)
    assert 0 < view["revision"] <= now
    units = {u["name"]: u for u in view["units"]}
    assert units["web.service"] == {
        "name": "web.service",
        "desiredState": "launched",
        "hash": units["web.service"]["hash"],
        "global": False,
        "runsOnce": False,
        "cpuMillis": 250,
        "memoryBytes": 128 << 20,
    }
    assert units["all.service"]["global"] is True
    assert units["once.service"]["runsOnce"] is True
    assert "options" not in units["web.service"]  # no unit file: a live view keeps thousands
    machines = {m["id"]: m for m in view["machines"]}
    assert machines[M1]["allocated"] == {"cpuMillis": 250, "memoryBytes": 128 << 20}
    assert machines[M1]["metadata"] == {"disk": "ssd"}
    assert sorted((e["name"], e["machineID"]) for e in view["schedule"]) == [
        ("all.service", M1),
        ("all.service", M2),
        ("web.service", M1),
    ]
    assert [(s["name"], s["systemdActiveState"]) for s in view["states"]] == [
        ("web.service", "active")
    ]
    assert view["placements"] == [
        {"name": "big.service", "summary": "no machine has enough memory",
         "reasons": {M1: "no", M2: "no"}}
    ]  # fmt: skip


async def test_the_cluster_is_gzipped_when_the_client_takes_it() -> None:
    store = await seeded()
    for i in range(60):
        await put_unit(store, f"many-{i:03d}.service", RESERVED)
    async with client_for(make_app(store)) as client:
        plain = await client.get("/fleet/v1/cluster", headers={"Accept-Encoding": "identity"})
        async with client.stream(
            "GET", "/fleet/v1/cluster", headers={"Accept-Encoding": "gzip, deflate"}
        ) as packed:
            raw = b"".join([chunk async for chunk in packed.aiter_raw()])
            assert packed.headers["content-encoding"] == "gzip"
        refused = await client.get("/fleet/v1/cluster", headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in plain.headers
    assert "content-encoding" not in refused.headers
    assert json.loads(gzip.decompress(raw)) == plain.json()
    assert len(raw) < len(plain.content) / 3


OPS = Caller("ops", role=Role.OPERATE)


def _entry(kind: str, data: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    if kind == "maintenance":
        return kind, ()
    if kind in ("unit", "placement"):
        return kind, (data["name"],)
    if kind in ("schedule", "state"):
        return kind, (data["name"], data["machineID"])
    return kind, (data["machineID"],)


def _view_entries(view: dict[str, Any]) -> dict[tuple[str, tuple[str, ...]], dict[str, Any]]:
    out = {}
    for kind, key in (("unit", "units"), ("schedule", "schedule"), ("state", "states"),
                      ("placement", "placements")):  # fmt: skip
        for item in view[key]:
            out[_entry(kind, item)] = item
    for item in view["rebootRequests"]:
        out[_entry("reboot-request", item)] = item
    if "maintenance" in view:
        out[("maintenance", ())] = view["maintenance"]
    return out


async def test_events_after_the_revision_carry_what_the_cluster_view_shows() -> None:
    store = await seeded()
    before = (await read_cluster(store)).model_dump(by_alias=True, exclude_none=True)
    seen: list[WatchEvent] = []
    arrived = asyncio.Event()

    async def watch() -> None:
        async for batch in store.registry.watch_prefix(store.keys.prefix, before["revision"] + 1):
            seen.extend(batch)
            arrived.set()

    watcher = asyncio.create_task(watch())
    try:
        await put_unit(store, "new.service", RESERVED.replace("250m", "500m"))
        await schedule(store, M2, "new.service")
        await report(store, M2, "new.service", "failed", "failed")
        await put_unit(store, "web.service", RESERVED, desired="loaded")
        await unplaceable(store, "big.service", "still too big", **{M2: "needs 900G"})
        await store.registry.delete(store.keys.scheduled(M1, "all.service"))
        # a maintenance and a reboot request, as the dashboard's cluster page shows them
        await maintenance.request_reboot(store, M2, caller=OPS)
        await maintenance.start_maintenance(store, [M1, M2], command=["/bin/true"], caller=OPS)
        await maintenance.cancel_maintenance(store, caller=OPS)
        after = (await read_cluster(store)).model_dump(by_alias=True, exclude_none=True)
        _, now = await store.registry.get_prefix(store.keys.version)
        async with asyncio.timeout(5):  # the watch delivers every change up to now
            while not (seen and seen[-1].mod_revision >= now):
                arrived.clear()
                await arrived.wait()
    finally:
        watcher.cancel()
    # Apply every event to the first view, as the page does: it must become the second.
    applied = _view_entries(before)
    for event in seen:
        found = classify(store, event)
        assert found is not None
        kind, data = found
        key = _entry(kind, data)
        value = {k: v for k, v in data.items() if k not in ("action", "revision")}
        if kind == "maintenance" and "maintenance" in data:
            value = data["maintenance"]
        if data["action"] == "delete":
            applied.pop(key, None)
        else:
            applied[key] = value
    assert applied == _view_entries(after)
    assert after["maintenance"]["cancelledBy"] == "ops"
    assert after["maintenance"]["action"] == "command"
    assert [r["machineID"] for r in after["rebootRequests"]] == [M2]
