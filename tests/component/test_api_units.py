"""/fleet/v1/units over MemoryRegistry: every route, every error, pagination."""

from __future__ import annotations

import json

import pytest
from apikit import (
    JSON,
    SERVICE,
    add_machine,
    client_for,
    error_of,
    make_app,
    new_store,
    options_of,
    report,
    schedule,
    submit,
    unplaceable,
)

from fleetd.api.service.unitwarnings import MAX_WARNINGS, WARNINGS_HEADER, decode_warnings
from fleetd.registry.store import Store
from fleetd.unitfile import UnitFile


@pytest.fixture
def store() -> Store:
    return new_store()


@pytest.fixture
async def client(store: Store):  # type: ignore[no-untyped-def]
    async with client_for(make_app(store, page_size=3)) as c:
        yield c


async def test_create_then_get(client, store) -> None:
    r = await submit(client, "web.service", desired="launched")
    assert r.status_code == 201
    assert r.content == b""
    r = await client.get("/fleet/v1/units/web.service")
    assert r.status_code == 200
    body = r.json()
    assert body["name"] == "web.service"
    assert body["desiredState"] == "launched"
    assert body["currentState"] == "inactive"
    assert "machineID" not in body
    assert body["options"] == options_of(SERVICE)
    unit = await store.get_unit("web.service")
    assert unit is not None and body["hash"] == unit.hash


async def test_current_state_follows_schedule_and_agent(client, store) -> None:
    await add_machine(store, "m1" * 16, "10.0.0.1")
    await submit(client, "web.service", desired="launched")
    await schedule(store, "m1" * 16, "web.service")
    body = (await client.get("/fleet/v1/units/web.service")).json()
    assert body["machineID"] == "m1" * 16
    assert body["currentState"] == "inactive"  # agent has not reported yet
    await report(store, "m1" * 16, "web.service", "inactive", "dead")
    body = (await client.get("/fleet/v1/units/web.service")).json()
    assert body["currentState"] == "loaded"
    await report(store, "m1" * 16, "web.service", "active", "running")
    body = (await client.get("/fleet/v1/units/web.service")).json()
    assert body["currentState"] == "launched"


async def test_change_desired_state(client, store) -> None:
    await submit(client, "web.service")
    r = await client.put("/fleet/v1/units/web.service", json={"desiredState": "loaded"})
    assert r.status_code == 204
    unit = await store.get_unit("web.service")
    assert unit is not None and unit.desired.value == "loaded"


async def test_create_without_options_is_409(client, store) -> None:
    r = await client.put("/fleet/v1/units/new.service", json={"desiredState": "launched"})
    assert r.status_code == 409
    assert "options" in error_of(r)[1]
    assert await store.get_unit("new.service") is None


async def test_update_without_desired_state_is_409(client) -> None:
    await submit(client, "web.service")
    r = await client.put("/fleet/v1/units/web.service", json={})
    assert r.status_code == 409
    assert "desiredState" in error_of(r)[1]


async def test_same_options_and_state_is_a_no_op(client, store) -> None:
    await submit(client, "web.service")
    before = await store.get_unit_with_revision("web.service")
    r = await submit(client, "web.service")
    assert r.status_code == 204
    assert await store.get_unit_with_revision("web.service") == before


async def test_different_options_replace_by_default(client, store) -> None:
    await submit(client, "web.service", desired="launched")
    other = SERVICE.replace("1000", "2000")
    r = await client.put(
        "/fleet/v1/units/web.service", json={"name": "web.service", "options": options_of(other)}
    )
    assert r.status_code == 204
    unit = await store.get_unit("web.service")
    assert unit is not None and "2000" in unit.text
    assert unit.desired.value == "launched"  # kept


async def test_different_options_without_replace_is_409_and_changes_nothing(client, store) -> None:
    await submit(client, "web.service")
    before = await store.get_unit("web.service")
    r = await client.put(
        "/fleet/v1/units/web.service?replace=false",
        json={"options": options_of(SERVICE.replace("1000", "2000")), "desiredState": "loaded"},
    )
    assert r.status_code == 409
    assert "different" in error_of(r)[1]
    assert await store.get_unit("web.service") == before


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("web", "suffix"),
        ("web.foo", "type suffix"),
        ("..%2Fetc.service", None),
        ("bad name.service", "invalid character"),
        ("@x.service", "'@'"),
        ("a" * 300 + ".service", "characters long"),
    ],
)
async def test_invalid_names_are_400(client, store, name, fragment) -> None:
    r = await submit(client, name)
    assert r.status_code in (400, 404)
    _, message = error_of(r)
    if r.status_code == 400 and fragment:
        assert fragment in message
    assert await store.list_units() == []


async def test_name_mismatch_is_400(client, store) -> None:
    r = await client.put(
        "/fleet/v1/units/a.service",
        json={"name": "b.service", "options": options_of(SERVICE), "desiredState": "inactive"},
    )
    assert r.status_code == 400
    assert "differs" in error_of(r)[1]
    assert await store.list_units() == []


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ([{"section": "X-Fleet", "name": "AtMostOnce", "value": "maybe"}], "AtMostOnce"),
        (
            [
                {"section": "X-Fleet", "name": "MachineID", "value": "abcdef12"},
                {"section": "X-Fleet", "name": "Global", "value": "true"},
            ],
            "Global",
        ),
        ([{"section": "Service", "name": "#ExecStart", "value": "x"}], "key"),
        ([{"section": "Mount", "name": "What", "value": "tmpfs"}], "systemd.unit(5)"),
        ([{"section": "Service", "name": "ExecStart", "value": "a\nb"}], "line break"),
        ([{"section": "Ser]vice", "name": "ExecStart", "value": "x"}], "section"),
    ],
)
async def test_invalid_unit_files_are_400(client, store, options, fragment) -> None:
    name = "x@1.mount" if options[0]["section"] == "Mount" else "x.service"
    r = await client.put(
        f"/fleet/v1/units/{name}", json={"desiredState": "launched", "options": options}
    )
    assert r.status_code == 400
    assert fragment in error_of(r)[1]
    assert await store.list_units() == []


async def test_template_can_be_submitted_but_not_started(client, store) -> None:
    assert (await submit(client, "app@.service")).status_code == 201
    r = await client.put("/fleet/v1/units/app@.service", json={"desiredState": "launched"})
    assert r.status_code == 400
    assert "template" in error_of(r)[1]
    r = await submit(client, "other@.service", desired="loaded")
    assert r.status_code == 400
    unit = await store.get_unit("app@.service")
    assert unit is not None and unit.desired.value == "inactive"
    assert await store.get_unit("other@.service") is None


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b'{"desiredState": "launched", "options": [', JSON, 400),
        (b"[1, 2]", JSON, 400),
        (b'{"desiredState": "running"}', JSON, 400),
        (b'{"options": [{"section": 1}]}', JSON, 400),
        (b'{"desiredState": "launched"}', {"Content-Type": "text/plain"}, 415),
        (b'{"desiredState": "launched"}', {}, 415),
        (b"", JSON, 400),
    ],
)
async def test_malformed_requests(client, store, body, headers, status) -> None:
    await submit(client, "web.service")
    before = await store.get_unit_with_revision("web.service")
    r = await client.put("/fleet/v1/units/web.service", content=body, headers=headers)
    assert r.status_code == status
    error_of(r)
    assert await store.get_unit_with_revision("web.service") == before


async def test_body_over_one_mebibyte_is_413(client, store) -> None:
    big = "x" * (1024 * 1024)
    body = json.dumps(
        {"options": [{"section": "Service", "name": "ExecStart", "value": big}]}
    ).encode()
    r = await client.put("/fleet/v1/units/big.service", content=body, headers=JSON)
    assert r.status_code == 413
    error_of(r)

    async def chunks():  # type: ignore[no-untyped-def]
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    r = await client.put("/fleet/v1/units/big.service", content=chunks(), headers=JSON)
    assert r.status_code == 413
    assert await store.list_units() == []


async def test_destroy(client, store) -> None:
    await submit(client, "web.service")
    r = await client.delete("/fleet/v1/units/web.service")
    assert r.status_code == 204
    assert await store.get_unit("web.service") is None
    r = await client.delete("/fleet/v1/units/web.service")
    assert r.status_code == 404
    error_of(r)
    r = await client.get("/fleet/v1/units/web.service")
    assert r.status_code == 404
    assert error_of(r)[1] == "unit web.service does not exist"


async def test_list_pages_through_every_unit(client) -> None:
    names = [f"u{i:02d}.service" for i in (5, 1, 3, 0, 6, 2, 4)]
    for name in names:
        await submit(client, name)
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        params = {"nextPageToken": token} if token else {}
        body = (await client.get("/fleet/v1/units", params=params)).json()
        pages += 1
        seen.extend(u["name"] for u in body["units"])
        token = body.get("nextPageToken")
        if not token:
            break
    assert pages == 3
    assert seen == sorted(names)


async def test_list_stays_consistent_when_units_change_between_pages(client) -> None:
    for i in range(6):
        await submit(client, f"u{i}.service")
    first = (await client.get("/fleet/v1/units")).json()
    await client.delete("/fleet/v1/units/u1.service")
    await submit(client, "u0a.service")
    second = (await client.get(f"/fleet/v1/units?nextPageToken={first['nextPageToken']}")).json()
    names = [u["name"] for u in second["units"]]
    assert names == ["u3.service", "u4.service", "u5.service"]


async def test_empty_list(client) -> None:
    r = await client.get("/fleet/v1/units")
    assert r.status_code == 200
    assert r.json() == {"units": []}


@pytest.mark.parametrize("token", ["!!!", "abc", "e30", "eyJ2IjoyLCJhZnRlciI6IngifQ", ""])
async def test_bad_page_tokens_are_400(client, token) -> None:
    r = await client.get("/fleet/v1/units", params={"nextPageToken": token})
    assert r.status_code == 400
    assert "nextPageToken" in error_of(r)[1]


async def test_repeated_page_token_is_400(client) -> None:
    r = await client.get("/fleet/v1/units?nextPageToken=a&nextPageToken=b")
    assert r.status_code == 400
    error_of(r)


async def test_unplaceable_unit_has_reason(client, store) -> None:
    await submit(client, "big.service", desired="launched")
    await unplaceable(store, "big.service", "no machine has 64G free", m1="needs 64G, 2G free")
    body = (await client.get("/fleet/v1/units/big.service")).json()
    assert body["reason"] == "no machine has 64G free"
    r = await client.get("/fleet/v1/units/big.service/placement")
    assert r.json() == {
        "name": "big.service",
        "summary": "no machine has 64G free",
        "reasons": {"m1": "needs 64G, 2G free"},
    }
    page = (await client.get("/fleet/v1/placements")).json()
    assert [p["name"] for p in page["placements"]] == ["big.service"]
    listed = (await client.get("/fleet/v1/units")).json()["units"]
    assert listed[0]["reason"] == "no machine has 64G free"


async def test_placement_of_placed_and_missing_units(client) -> None:
    await submit(client, "web.service")
    r = await client.get("/fleet/v1/units/web.service/placement")
    assert r.json() == {"name": "web.service", "summary": "", "reasons": {}}
    r = await client.get("/fleet/v1/units/none.service/placement")
    assert r.status_code == 404
    error_of(r)


async def test_unknown_route_and_method_use_error_shape(client) -> None:
    r = await client.get("/fleet/v1/nothing")
    assert r.status_code == 404
    error_of(r)
    r = await client.post("/fleet/v1/units", json={})
    assert r.status_code == 405
    error_of(r)


async def test_a_oneshot_that_ran_counts_as_launched(client, store) -> None:
    oneshot = "[Service]\nType=oneshot\nExecStart=/bin/true\n"
    await add_machine(store, "m1" * 16, "10.0.0.1")
    await submit(client, "job.service", oneshot, desired="launched")
    await submit(client, "keep.service", oneshot + "RemainAfterExit=yes\n", desired="launched")
    for name in ("job.service", "keep.service"):
        await schedule(store, "m1" * 16, name)
        await report(store, "m1" * 16, name, "inactive", "dead")
    job = (await client.get("/fleet/v1/units/job.service")).json()
    keep = (await client.get("/fleet/v1/units/keep.service")).json()
    assert job["currentState"] == "launched"
    assert keep["currentState"] == "loaded"  # it stays active once it ran


# --- what fleet accepted and fleetd suspects: written, with warnings in a header ---------------


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ([{"section": "X-Fleet", "name": "Bogus", "value": "1"}], "unknown [X-Fleet] key 'Bogus'"),
        ([{"section": "X-Fleet", "name": "Conflicts", "value": "apache"}], "'apache'"),
        ([{"section": "Service", "name": "Exec Start", "value": "x"}], "'Exec Start'"),
        ([{"section": "Service", "name": "", "value": "x"}], "without a key name"),
        ([{"section": "X-Fleet", "name": "Global", "value": "maybe"}], "taken as false"),
    ],
)
async def test_warned_unit_files_are_written_with_a_header(
    client, store, options, fragment
) -> None:
    body = {"desiredState": "inactive", "options": [*options_of(SERVICE), *options]}
    r = await client.put("/fleet/v1/units/x.service", json=body)
    assert r.status_code == 201
    assert r.content == b""  # fleet's answer: no body
    warnings = json.loads(r.headers[WARNINGS_HEADER])
    assert any(fragment in w for w in warnings), warnings
    unit = await store.get_unit("x.service")
    assert unit is not None and unit.text == UnitFile.from_options(body["options"]).text
    # the same file again: replaced or unchanged, the warnings come back each time
    r = await client.put("/fleet/v1/units/x.service", json=body)
    assert r.status_code == 204
    assert json.loads(r.headers[WARNINGS_HEADER]) == warnings


async def test_no_warnings_no_header(client, store) -> None:
    r = await submit(client, "a.service")
    assert r.status_code == 201
    assert WARNINGS_HEADER not in r.headers
    r = await client.put("/fleet/v1/units/a.service", json={"desiredState": "loaded"})
    assert r.status_code == 204
    assert WARNINGS_HEADER not in r.headers


async def test_warnings_header_is_ascii_json(client) -> None:
    café = {"section": "X-Fleet", "name": "Conflicts", "value": "caf\u00e9"}
    r = await client.put(
        "/fleet/v1/units/x.service", json={"options": [*options_of(SERVICE), café]}
    )
    assert r.status_code == 201
    raw = r.headers[WARNINGS_HEADER]
    assert raw.isascii() and raw.isprintable() and "\\u00e9" in raw
    assert any("café" in w for w in decode_warnings(raw))


async def test_warnings_header_is_bounded(client) -> None:
    bogus = [{"section": "X-Fleet", "name": f"Bogus{i}", "value": "1"} for i in range(80)]
    r = await client.put(
        "/fleet/v1/units/x.service", json={"options": [*options_of(SERVICE), *bogus]}
    )
    assert r.status_code == 201
    warnings = decode_warnings(r.headers[WARNINGS_HEADER])
    assert len(warnings) == MAX_WARNINGS and warnings[-1] == "... and 31 more"
