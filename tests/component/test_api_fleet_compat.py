"""Replays fleet's documented v1 requests and responses (fleet's Documentation/api-v1.md)
and the exact calls the Go fleetctl's HTTP client makes, checking shapes and statuses."""

from __future__ import annotations

import pytest
from apikit import add_machine, client_for, make_app, new_store, report, schedule

from fleetd.registry.store import Store

GO_HEADERS = {"Content-Type": "application/json", "User-Agent": "google-api-go-client/0.5"}
FLEET_UNIT_KEYS = {"name", "options", "desiredState", "currentState", "machineID"}
EXTENSIONS = {"hash", "reason"}
M1 = "c" * 32


@pytest.fixture
def store() -> Store:
    return new_store()


@pytest.fixture
async def client(store: Store):  # type: ignore[no-untyped-def]
    async with client_for(make_app(store, page_size=2)) as c:
        yield c


async def test_documented_create_modify_list_get_destroy(client, store) -> None:
    # "Create a Unit": 201 Created, no body.
    r = await client.put(
        "/fleet/v1/units/foo.service",
        json={
            "desiredState": "launched",
            "options": [
                {"section": "Service", "name": "ExecStart", "value": "/usr/bin/sleep 3000"}
            ],
        },
    )
    assert (r.status_code, r.content) == (201, b"")
    # Creating without options: 409 Conflict.
    r = await client.put("/fleet/v1/units/bar.service", json={"desiredState": "inactive"})
    assert r.status_code == 409
    await client.put(
        "/fleet/v1/units/bar.service",
        json={
            "desiredState": "loaded",
            "options": [{"section": "Service", "name": "ExecStart", "value": "/bin/true"}],
        },
    )
    # "Modify a Unit's desiredState": 204 No Content.
    r = await client.put("/fleet/v1/units/bar.service", json={"desiredState": "inactive"})
    assert (r.status_code, r.content) == (204, b"")
    # The name in the body must match the URL.
    r = await client.put(
        "/fleet/v1/units/bar.service", json={"name": "baz.service", "desiredState": "inactive"}
    )
    assert r.status_code == 400
    # "List Units": 200 with a page of Unit entities.
    r = await client.get("/fleet/v1/units")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    page = r.json()
    assert set(page) <= {"units", "nextPageToken"}
    for unit in page["units"]:
        assert {"name", "options", "desiredState", "currentState"} <= set(unit)
        assert set(unit) <= FLEET_UNIT_KEYS | EXTENSIONS
        for option in unit["options"]:
            assert set(option) == {"section", "name", "value"}
    # "Get a Unit" and its 404.
    r = await client.get("/fleet/v1/units/foo.service")
    assert r.json()["options"] == [
        {"section": "Service", "name": "ExecStart", "value": "/usr/bin/sleep 3000"}
    ]
    r = await client.get("/fleet/v1/units/nope.service")
    assert r.status_code == 404
    # "Destroy a Unit": 204, then 404.
    assert (await client.delete("/fleet/v1/units/foo.service")).status_code == 204
    assert (await client.delete("/fleet/v1/units/foo.service")).status_code == 404


async def test_documented_pagination_and_error_entity(client) -> None:
    for name in ("a", "b", "c", "d", "e"):
        await client.put(
            f"/fleet/v1/units/{name}.service",
            json={"options": [{"section": "Service", "name": "ExecStart", "value": "/bin/true"}]},
        )
    names, token, requests = [], None, 0
    while True:
        url = "/fleet/v1/units" + (f"?nextPageToken={token}" if token else "")
        body = (await client.get(url)).json()
        requests += 1
        names += [u["name"] for u in body["units"]]
        token = body.get("nextPageToken")
        if token is None:
            break
        assert isinstance(token, str) and token
    assert requests == 3
    assert names == [f"{n}.service" for n in "abcde"]
    r = await client.get("/fleet/v1/units?nextPageToken=8fefec2c")
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {
        "error": {"code": 400, "message": "invalid value of nextPageToken query parameter"}
    }


async def test_documented_state_and_machines(client, store) -> None:
    await add_machine(store, M1, "10.1.2.3", metadata=[("region", "us-west")])
    await client.put(
        "/fleet/v1/units/foo.service",
        json={
            "desiredState": "launched",
            "options": [{"section": "Service", "name": "ExecStart", "value": "/bin/sleep 9"}],
        },
    )
    await schedule(store, M1, "foo.service")
    await report(store, M1, "foo.service")
    unit = (await client.get("/fleet/v1/units/foo.service")).json()
    assert (unit["currentState"], unit["machineID"]) == ("launched", M1)
    states = (await client.get(f"/fleet/v1/state?machineID={M1}&unitName=foo.service")).json()
    [state] = states["states"]
    # fleet's fields, plus the extension "health" (fleet's client ignores it)
    assert state.pop("health") == "unknown"
    assert state == {
        "name": "foo.service",
        "hash": unit["hash"],
        "machineID": M1,
        "systemdLoadState": "loaded",
        "systemdActiveState": "active",
        "systemdSubState": "running",
    }
    machines = (await client.get("/fleet/v1/machines")).json()["machines"]
    assert machines[0]["id"] == M1
    assert machines[0]["primaryIP"] == "10.1.2.3"
    assert machines[0]["metadata"] == {"region": "us-west"}
    # "Edit Machine Metadata": JSON Patch, 204; bad operations 400.
    r = await client.patch(
        "/fleet/v1/machines",
        json=[
            {"op": "add", "path": f"/{M1}/metadata/role", "value": "web"},
            {"op": "replace", "path": f"/{M1}/metadata/region", "value": "eu"},
            {"op": "remove", "path": f"/{M1}/metadata/role"},
        ],
    )
    assert r.status_code == 204
    machines = (await client.get("/fleet/v1/machines")).json()["machines"]
    assert machines[0]["metadata"] == {"region": "eu"}
    r = await client.patch("/fleet/v1/machines", json=[{"op": "add", "path": "/x/metadata/k"}])
    assert r.status_code == 400


async def test_go_fleetctl_calls(client, store) -> None:
    # client.CreateUnit: PUT with name and options only (desiredState omitted).
    body = {
        "name": "hello.service",
        "options": [
            {"section": "Unit", "name": "Description", "value": "Hello"},
            {"section": "Service", "name": "ExecStart", "value": "/bin/sh -c 'echo hi; sleep 9'"},
        ],
    }
    r = await client.put("/fleet/v1/units/hello.service", json=body, headers=GO_HEADERS)
    assert r.status_code == 201
    assert (await client.get("/fleet/v1/units/hello.service")).json()["desiredState"] == "inactive"
    # client.SetUnitTargetState: PUT with name and desiredState.
    r = await client.put(
        "/fleet/v1/units/hello.service",
        json={"name": "hello.service", "desiredState": "launched"},
        headers=GO_HEADERS,
    )
    assert r.status_code == 204
    # fleetctl --replace: CreateUnit again with different options replaces the unit.
    body["options"][1]["value"] = "/bin/sleep 99"
    r = await client.put("/fleet/v1/units/hello.service", json=body, headers=GO_HEADERS)
    assert r.status_code == 204
    unit = (await client.get("/fleet/v1/units/hello.service")).json()
    assert unit["options"][1]["value"] == "/bin/sleep 99"
    assert unit["desiredState"] == "launched"
    # Templates can be submitted but not launched ("cannot activate template").
    body = {"name": "t@.service", "options": body["options"]}
    assert (await client.put("/fleet/v1/units/t@.service", json=body)).status_code == 201
    r = await client.put("/fleet/v1/units/t@.service", json={"desiredState": "launched"})
    assert r.status_code == 400
    # Go's encoder omits empty strings; an explicit empty desiredState means "not given".
    r = await client.put("/fleet/v1/units/hello.service", json={"desiredState": ""})
    assert r.status_code == 409
