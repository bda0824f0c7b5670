"""``POST /plan`` on the in-process cluster (the real engine and agents): a plan is what
the engine then really does.  Each change is planned, then written as ``PUT /units``
writes it, and the schedule the engine reaches must be today's with the plan's changes
applied, the units it called unplaceable unplaced for the reason it gave.  The example
units of examples/units run through it on the 3 machines of .ci/demo."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from fleetd.engine.mirrors import read_model
from fleetd.engine.plan import Action, plan
from fleetd.testing.cluster import Cluster, G
from fleetd.unitfile import UnitFile

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "units"
SERVICE = "[Unit]\nDescription=web\n\n[Service]\nExecStart=/bin/sleep 1000\n"
# .ci/demo's machines: metadata and capacity.
DEMO = {
    "m1": (("rack", "a"), ("disk", "ssd"), ("cores", "4")),
    "m2": (("rack", "b"), ("disk", "hdd"), ("cores", "2")),
    "m3": (("rack", "c"), ("disk", "ssd"), ("cores", "1")),
}
Entries = dict[tuple[str, str], tuple[str, str]]


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path, clock=time.monotonic, stop_poll=0.01)
    try:
        for i, (name, metadata) in enumerate(DEMO.items(), start=1):
            await c.add_machine(
                name, hostname=name, ip=f"10.0.0.{i}", metadata=metadata, cpu=4000, memory=2 * G
            )

        async def registered() -> bool:
            return len(await c.store.list_machines()) == len(DEMO)

        await c.wait_for(registered, "the machines registered")
        c.start_engine()
        yield c
    finally:
        await c.close()


def text_of(name: str) -> str:
    """An example's file: an instance's is its template's, as fleetctl takes it."""
    path = EXAMPLES / name
    if not path.exists():
        prefix, _, rest = name.partition("@")
        path = EXAMPLES / f"{prefix}@.{rest.rpartition('.')[2]}"
    return path.read_text()


def item(name: str, desired: str | None = "launched", text: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "options": UnitFile.from_text(text or text_of(name)).to_dicts(),
    }
    if desired:
        body["desiredState"] = desired
    return body


async def entries(c: Cluster) -> Entries:
    return {
        (e.machine, e.name): (e.hash, e.desired.value) for e in await c.store.list_all_schedule()
    }


async def plan_of(c: Cluster, items: list[dict[str, Any]]) -> dict[str, Any]:
    response = await c.api.post("/plan", json={"units": items})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def plan_then_write(c: Cluster, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Plan ``items``, write them, and check the engine did what the plan said."""
    before = await entries(c)
    body = await plan_of(c, items)
    assert await entries(c) == before
    expected = dict(before)
    for change in body["changes"]:
        key = (change["machineID"], change["unit"])
        previous = (change["previousHash"], change["previousDesiredState"])
        assert before.get(key) == (None if change["action"] == "schedule" else previous)
        if change["action"] == "unschedule":
            del expected[key]
        else:
            expected[key] = (change["hash"], change["desiredState"])
    (await c.api.put("/units", json={"units": items})).raise_for_status()
    unplaced = {u["name"]: u["reason"] for u in body["unplaceable"]}

    async def there() -> bool:
        reasons = {name: await c.reason(name) for name in unplaced}
        return await entries(c) == expected and reasons == unplaced

    try:
        await c.wait_for(there, "the schedule the plan announced")
    except AssertionError:
        reasons = {name: await c.reason(name) for name in unplaced}
        assert (await entries(c), reasons) == (expected, unplaced)
        raise
    # ... and the engine is done there: its own full plan of the registry finds nothing.
    model = await read_model(c.store, c.settings.defaults, time.monotonic, {})
    snap = model.snapshot(
        time.monotonic(),
        wall=time.time(),
        grace=5.0,
        strategy=c.settings.strategy,
        drain_batch=None,
    )
    assert [t for t in plan(snap).tasks if t.action not in (Action.RECORD, Action.CLEAR)] == []
    for unit in body["units"]:
        machines = sorted(m for m, n in expected if n == unit["name"])
        assert unit["machineIDs"] == machines
    return body


def changes(body: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(c["action"], c["unit"], c["machineID"]) for c in body["changes"]]


async def test_every_example_unit_as_the_demo_starts_them(demo: Cluster) -> None:
    c = demo
    body = await plan_then_write(c, [item("cleanup.service", "loaded")])
    assert [(a, u) for a, u, _ in changes(body)] == [("schedule", "cleanup.service")]
    templates = ["web@.service", "cache@.service", "worker@.service", "bigmem.service"]
    body = await plan_then_write(c, [item(name, None) for name in templates])
    assert body["changes"] == [] and body["changed"] is True
    assert [u["result"] for u in body["units"]] == ["created"] * 4
    started = [
        "hello.service", "monitor.service", "app.service", "app-sidekick.service",
        "db.service", "backup.service", "singleton.service", "cleanup.timer",
        "web@8081.service", "web@8082.service", "cache@1.service", "cache@2.service",
        "cache@3.service", "worker@1.service", "worker@2.service", "worker@3.service",
        "worker@4.service", "worker@5.service",
    ]  # fmt: skip
    body = await plan_then_write(c, [item(name) for name in started])
    where = {u["name"]: u["machineIDs"] for u in body["units"]}
    assert where["monitor.service"] == ["m1", "m2", "m3"]
    assert where["db.service"] == ["m1"]
    assert where["backup.service"] != ["m1"]
    assert where["app-sidekick.service"] == where["app.service"]
    schedule = await entries(c)
    assert where["cleanup.timer"] == [m for m, n in schedule if n == "cleanup.service"]
    assert sorted(
        m for n in ("cache@1.service", "cache@2.service", "cache@3.service") for m in where[n]
    ) == [
        "m1",
        "m2",
        "m3",
    ]
    assert body["unplaceable"] == []
    # Deliberately unplaceable: a fourth conflicting cache and a 1 TiB reservation.
    body = await plan_then_write(c, [item("cache@4.service"), item("bigmem.service")])
    assert body["changes"] == []
    reasons = {u["name"]: u for u in body["unplaceable"]}
    assert set(reasons) == {"bigmem.service", "cache@4.service"}
    assert all("needs 1T memory" in r for r in reasons["bigmem.service"]["reasons"].values())
    assert set(reasons["cache@4.service"]["reasons"]) == {"m1", "m2", "m3"}
    assert all(
        r.startswith("conflicts with cache@")
        for r in reasons["cache@4.service"]["reasons"].values()
    )
    # Starting them again changes nothing.
    body = await plan_of(c, [item(name) for name in started])
    assert body["changed"] is False and body["changes"] == []


EXPECTED_ALONE = {
    # file -> where it would run on the empty demo cluster, or a reason it would not
    "hello.service": 1,
    "app.service": 1,
    "db.service": ["m1"],
    "backup.service": 1,
    "monitor.service": ["m1", "m2", "m3"],
    "singleton.service": 1,
    "cleanup.service": 1,
    "web@8081.service": 1,
    "cache@1.service": 1,
    "worker@1.service": 1,
    "app-sidekick.service": "app.service",
    "cleanup.timer": "cleanup.service",
    "bigmem.service": "needs 1T memory",
}


async def test_every_example_unit_planned_alone(demo: Cluster) -> None:
    names = {p.name for p in EXAMPLES.iterdir()}
    covered = {n if "@" not in n else n.partition("@")[0] + "@.service" for n in EXPECTED_ALONE}
    assert covered == names
    for name, expected in EXPECTED_ALONE.items():
        body = await plan_of(demo, [item(name)])
        [unit] = body["units"]
        if isinstance(expected, str):
            [unplaced] = body["unplaceable"]
            assert expected in unplaced["reason"], (name, unplaced)
            assert unit["machineIDs"] == [] and unit["reason"] == unplaced["reason"]
        elif isinstance(expected, int):
            assert len(unit["machineIDs"]) == expected, (name, body)
        else:
            assert unit["machineIDs"] == expected, (name, body)
        assert (
            sorted(m for a, u, m in changes(body) if a == "schedule" and u == name)
            == unit["machineIDs"]
        )
    for template in ("web@.service", "cache@.service", "worker@.service"):
        body = await plan_of(demo, [item(template, None)])
        assert body["changes"] == [] and body["unplaceable"] == []
        assert body["units"][0]["result"] == "created"
    assert await entries(demo) == {} and await demo.store.list_units() == []


async def test_replaces_push_out_and_a_changed_file_agree_with_the_engine(demo: Cluster) -> None:
    c = demo
    await plan_then_write(
        c, [item("cache.service", text=SERVICE + "\n[X-Fleet]\nMachineMetadata=rack=a\n")]
    )
    assert await entries(c) != {}
    # A unit pinned to rack a that replaces cache.service: cache moves off m1.
    pusher = SERVICE + "\n[X-Fleet]\nMachineMetadata=rack=a\nReplaces=cache.service\n"
    body = await plan_then_write(c, [item("pusher.service", text=pusher)])
    assert changes(body) == [
        ("unschedule", "cache.service", "m1"),
        ("schedule", "pusher.service", "m1"),
    ]
    [unplaced] = body["unplaceable"]
    assert unplaced["name"] == "cache.service"  # it may only run in rack a
    # Without the rack constraint it finds another machine.
    body = await plan_then_write(c, [item("cache.service", text=SERVICE)])
    assert [(a, u) for a, u, _ in changes(body)] == [("schedule", "cache.service")]
    assert body["units"][0]["result"] == "replaced"
    # A new file of a launched unit: restarted in place, new hash.
    body = await plan_then_write(c, [item("pusher.service", text=pusher.replace("1000", "2000"))])
    assert changes(body) == [("update", "pusher.service", "m1")]
    assert body["changes"][0]["effect"] == "restart with the new file"
    # An AtMostOnce unit pushed out moves only after it stopped: the plan shows where.
    once = SERVICE + "\n[X-Fleet]\nAtMostOnce=true\nMachineMetadata=disk=ssd\n"
    await plan_then_write(c, [item("once.service", text=once)])
    [(here, _)] = [k for k in await entries(c) if k[1] == "once.service"]
    evict = (
        SERVICE
        + f"\n[X-Fleet]\nMachineMetadata=rack={dict(DEMO[here])['rack']}\nReplaces=once.service\n"
    )
    body = await plan_then_write(c, [item("evict.service", text=evict)])
    moved = [m for a, u, m in changes(body) if a == "schedule" and u == "once.service"]
    assert moved and moved != [here]
