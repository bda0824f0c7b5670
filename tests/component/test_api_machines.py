"""/fleet/v1/state, /machines (list, PATCH, cordon/drain), auth, health, metrics, discovery."""

from __future__ import annotations

import leakcheck
import pytest
from apikit import (
    JSON,
    SERVICE,
    add_machine,
    client_for,
    error_of,
    make_app,
    new_store,
    report,
    samples,
    schedule,
    submit,
)

from fleetd.api.auth import BearerAuth
from fleetd.model import MachineFlags, SystemdLink
from fleetd.registry.store import Store

M1 = "1" * 32
M2 = "2" * 32
RESERVED = SERVICE + "\n[X-Fleet]\nCPUReservation=500m\nMemoryReservation=256M\n"


@pytest.fixture
def store() -> Store:
    return new_store()


@pytest.fixture
async def client(store: Store):  # type: ignore[no-untyped-def]
    async with client_for(make_app(store, page_size=2)) as c:
        yield c


async def test_state_lists_and_filters(client, store) -> None:
    await add_machine(store, M1, "10.0.0.1")
    await add_machine(store, M2, "10.0.0.2")
    for name in ("a.service", "b.service", "c.service"):
        await submit(client, name, desired="launched")
    await report(store, M1, "a.service")
    await report(store, M1, "b.service", "failed", "failed")
    await report(store, M2, "c.service")
    await report(store, M2, "a.service")
    seen = []
    token = None
    while True:
        r = await client.get("/fleet/v1/state", params={"nextPageToken": token} if token else {})
        body = r.json()
        seen.extend((s["name"], s["machineID"]) for s in body["states"])
        token = body.get("nextPageToken")
        if not token:
            break
    assert seen == [
        ("a.service", M1),
        ("a.service", M2),
        ("b.service", M1),
        ("c.service", M2),
    ]
    body = (await client.get("/fleet/v1/state", params={"machineID": M2})).json()
    assert {s["name"] for s in body["states"]} == {"a.service", "c.service"}
    body = (await client.get("/fleet/v1/state?unitName=b.service&unitName=c.service")).json()
    assert [(s["name"], s["systemdActiveState"]) for s in body["states"]] == [
        ("b.service", "failed"),
        ("c.service", "active"),
    ]
    state = body["states"][0]
    assert set(state) == {
        "name",
        "hash",
        "machineID",
        "systemdLoadState",
        "systemdActiveState",
        "systemdSubState",
        "health",  # extension; healthMessage and healthSince only when there is one
    }
    assert (await client.get("/fleet/v1/state?machineID=a/b")).json() == {"states": []}
    r = await client.get("/fleet/v1/state", params={"nextPageToken": "zzz"})
    assert r.status_code == 400


async def test_machines_show_capacity_and_allocation(client, store) -> None:
    await add_machine(store, M1, "10.0.0.1", metadata=[("region", "eu")], cpu=2000)
    await add_machine(store, M2, "10.0.0.2")
    await submit(client, "a.service", RESERVED, "launched")
    await schedule(store, M1, "a.service")
    body = (await client.get("/fleet/v1/machines")).json()
    assert "nextPageToken" not in body
    first = body["machines"][0]
    assert first["id"] == M1
    assert first["primaryIP"] == "10.0.0.1"
    assert first["metadata"] == {"region": "eu"}
    assert first["capacity"] == {"cpuMillis": 2000, "memoryBytes": 4 << 30}
    assert first["allocated"] == {"cpuMillis": 500, "memoryBytes": 256 << 20}
    assert first["units"] == 1
    assert first["unschedulable"] is False
    r = await client.get(f"/fleet/v1/machines/{M2}")
    assert r.json()["allocated"] == {"cpuMillis": 0, "memoryBytes": 0}
    r = await client.get("/fleet/v1/machines/nope")
    assert r.status_code == 404
    error_of(r)


async def test_machines_paginate(client, store) -> None:
    ids = [str(i) * 32 for i in range(5)]
    for machine_id in ids:
        await add_machine(store, machine_id)
    seen, token = [], None
    while True:
        params = {"nextPageToken": token} if token else {}
        body = (await client.get("/fleet/v1/machines", params=params)).json()
        seen.extend(m["id"] for m in body["machines"])
        token = body.get("nextPageToken")
        if not token:
            break
    assert seen == ids


async def test_patch_metadata(client, store) -> None:
    await add_machine(store, M1, metadata=[("region", "eu"), ("disk", "hdd")])
    r = await client.patch(
        "/fleet/v1/machines",
        json=[
            {"op": "add", "path": f"/{M1}/metadata/role", "value": "db"},
            {"op": "replace", "path": f"/{M1}/metadata/disk", "value": "ssd"},
            {"op": "add", "path": f"/{M2}/metadata/later", "value": "yes"},
        ],
    )
    assert r.status_code == 204
    body = (await client.get(f"/fleet/v1/machines/{M1}")).json()
    assert body["metadata"] == {"region": "eu", "disk": "ssd", "role": "db"}
    r = await client.patch(
        "/fleet/v1/machines", json=[{"op": "remove", "path": f"/{M1}/metadata/role"}]
    )
    assert r.status_code == 204
    body = (await client.get(f"/fleet/v1/machines/{M1}")).json()
    assert body["metadata"] == {"region": "eu", "disk": "ssd"}
    flags = await store.get_machine_flags(M2)
    assert flags.metadata_overrides == (("later", "yes"),)


@pytest.mark.parametrize(
    ("ops", "fragment"),
    [
        ([{"op": "move", "path": f"/{M1}/metadata/a", "value": "b"}], "op"),
        ([{"op": "add", "path": f"/{M1}/meta/a", "value": "b"}], "path"),
        ([{"op": "add", "path": f"/{M1}/metadata/a b", "value": "b"}], "path"),
        ([{"op": "add", "path": f"/{M1}/metadata/a"}], "value"),
        ({"op": "add"}, "list"),
    ],
)
async def test_bad_patches_are_400_and_change_nothing(client, store, ops, fragment) -> None:
    await add_machine(store, M1)
    good = {"op": "add", "path": f"/{M1}/metadata/ok", "value": "1"}
    body = [good, *ops] if isinstance(ops, list) else ops
    r = await client.patch("/fleet/v1/machines", json=body)
    assert r.status_code == 400
    assert fragment in error_of(r)[1].lower()
    assert await store.get_machine_flags(M1) == MachineFlags()


async def test_patch_needs_json(client) -> None:
    r = await client.patch("/fleet/v1/machines", content=b"[]", headers={"Content-Type": "text/x"})
    assert r.status_code == 415
    error_of(r)


async def test_cordon_drain_uncordon(client, store) -> None:
    await add_machine(store, M1)
    r = await client.post(f"/fleet/v1/machines/{M1}/cordon")
    assert r.json() == {"id": M1, "unschedulable": True, "draining": False}
    assert (await store.get_machine_flags(M1)).unschedulable
    r = await client.post(f"/fleet/v1/machines/{M1}/drain")
    assert r.json() == {"id": M1, "unschedulable": True, "draining": True}
    body = (await client.get(f"/fleet/v1/machines/{M1}")).json()
    assert body["draining"] is True and body["unschedulable"] is True
    r = await client.post(f"/fleet/v1/machines/{M1}/uncordon")
    assert r.json() == {"id": M1, "unschedulable": False, "draining": False}
    assert await store.get_machine_flags(M1) == MachineFlags()
    r = await client.post(f"/fleet/v1/machines/{M2}/drain")
    assert r.status_code == 404
    assert M2 in error_of(r)[1]
    assert await store.get_machine_flags(M2) == MachineFlags()


async def test_bearer_auth(store) -> None:
    token = leakcheck.secret("s3cret-token-0123456789")
    app = BearerAuth(make_app(store), token)
    async with client_for(app) as client:
        r = await client.get("/fleet/v1/units")
        assert r.status_code == 401
        assert "missing" in error_of(r)[1]
        assert r.headers["www-authenticate"].startswith("Bearer")
        r = await client.get("/fleet/v1/units", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
        assert "invalid" in error_of(r)[1]
        r = await client.get("/fleet/v1/units", headers={"Authorization": f"Basic {token}"})
        assert r.status_code == 401
        headers = {"Authorization": f"Bearer {token}", **JSON}
        r = await client.put(
            "/fleet/v1/units/x.service",
            json={"desiredState": "launched", "options": []},
            headers={"Authorization": "Bearer nope"},
        )
        assert r.status_code == 401
        assert await store.list_units() == []
        r = await client.get("/fleet/v1/units", headers=headers)
        assert r.status_code == 200


async def test_healthz(client, store) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "registry": "ok"}
    store.registry.set_available(False)  # type: ignore[attr-defined]
    r = await client.get("/healthz")
    assert r.status_code == 503
    assert r.json()["registry"] == "unavailable"


async def test_healthz_says_why_this_machines_agent_cannot_reach_systemd(store) -> None:
    link = SystemdLink(True)
    app = make_app(store, machine_id=M1, systemd=lambda: link)
    async with client_for(app) as client:
        r = await client.get("/healthz")
        assert r.status_code == 200
        assert r.json() == {"status": "ok", "machineID": M1, "registry": "ok", "systemd": "ok"}
        metrics = samples((await client.get("/metrics")).text)
        assert metrics["fleetd_agent_systemd_connected"] == 1
        link = SystemdLink(False, "cannot connect to the system bus: refused", 1_800_000_000.0)
        r = await client.get("/healthz")
        assert r.status_code == 503
        assert r.json() == {
            "status": "degraded",
            "machineID": M1,
            "registry": "ok",
            "systemd": "unavailable",
            "reason": "agent cannot reach systemd since 2027-01-15T08:00:00+00:00: "
            "cannot connect to the system bus: refused",
        }
        metrics = samples((await client.get("/metrics")).text)
        assert metrics["fleetd_agent_systemd_connected"] == 0
        store.registry.set_available(False)  # type: ignore[attr-defined]
        body = (await client.get("/healthz")).json()
        assert body["registry"] == "unavailable" and body["systemd"] == "unavailable"
        assert body["reason"].startswith("agent cannot reach systemd since ")
        assert "; registry unavailable: " in body["reason"]


async def test_machines_whose_agent_cannot_reach_systemd_are_listed_and_counted(
    client, store
) -> None:
    await add_machine(store, M1)
    await add_machine(store, M2, systemd_connected=False)
    machines = (await client.get("/fleet/v1/machines")).json()["machines"]
    assert [(m["id"], m["systemdConnected"]) for m in machines] == [(M1, True), (M2, False)]
    metrics = samples((await client.get("/metrics")).text)
    assert metrics["fleetd_machines_systemd_unreachable"] == 1
    assert "fleetd_agent_systemd_connected" not in metrics  # no agent in this process


async def test_registry_outage_is_503(client, store) -> None:
    store.registry.set_available(False)  # type: ignore[attr-defined]
    r = await client.get("/fleet/v1/units")
    assert r.status_code == 503
    error_of(r)


async def test_metrics(client, store) -> None:
    await add_machine(store, M1)
    await submit(client, "a.service", desired="launched")
    await client.get("/fleet/v1/units/a.service")
    await client.get("/fleet/v1/units/missing.service")
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    metrics = samples(r.text)
    route = 'method="GET",route="/fleet/v1/units/{name}"'
    assert metrics[f'fleetd_api_requests_total{{code="200",{route}}}'] == 1
    assert metrics[f'fleetd_api_requests_total{{code="404",{route}}}'] == 1
    assert metrics['fleetd_units{desired="launched"}'] == 1
    assert metrics["fleetd_machines"] == 1
    assert metrics["fleetd_registry_up"] == 1


async def test_discovery_and_openapi(client) -> None:
    doc = (await client.get("/fleet/v1/discovery")).json()
    assert doc["kind"] == "discovery#restDescription"
    assert doc["resources"]["Units"]["methods"]["Set"]["httpMethod"] == "PUT"
    assert doc["schemas"]["UnitState"]["properties"]["systemdSubState"] == {"type": "string"}
    spec = (await client.get("/openapi.json")).json()
    assert "/fleet/v1/units/{name}" in spec["paths"]
    assert (await client.get("/docs")).status_code == 200
