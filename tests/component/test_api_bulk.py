"""``PUT /fleet/v1/units`` (extension) over MemoryRegistry: many changes, one request."""

from __future__ import annotations

from typing import Any

import pytest
from apikit import SERVICE, client_for, error_of, make_app, new_store, options_of, submit

from fleetd.api.service import unitbatch
from fleetd.api.service.commands import SetResult, UnitChange
from fleetd.caller import Caller
from fleetd.errors import Conflict
from fleetd.model import DesiredState
from fleetd.registry.store import Store

TESTER = Caller("test")
TEMPLATE = "[Unit]\nDescription=t %i\n\n[Service]\nExecStart=/bin/sleep 1000\n"


@pytest.fixture
def store() -> Store:
    return new_store()


@pytest.fixture
async def client(store: Store):  # type: ignore[no-untyped-def]
    async with client_for(make_app(store)) as c:
        yield c


def item(name: str, desired: str | None = None, text: str | None = SERVICE) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name}
    if text is not None:
        body["options"] = options_of(text)
    if desired is not None:
        body["desiredState"] = desired
    return body


async def put_units(client, items: list[dict[str, Any]], **params: str):  # type: ignore[no-untyped-def]
    return await client.put("/fleet/v1/units", json={"units": items}, params=params)


async def test_creates_500_units_in_transactions(client, store) -> None:
    items = [item(f"web@{i}.service", "launched", TEMPLATE) for i in range(500)]
    r = await put_units(client, items)
    assert r.status_code == 200, r.text
    results = r.json()["units"]
    assert [x["name"] for x in results] == [f"web@{i}.service" for i in range(500)]
    assert {x["result"] for x in results} == {"created"}
    units = await store.list_units()
    assert len(units) == 500
    assert {u.desired for u in units} == {DesiredState.LAUNCHED}
    r = await client.get("/fleet/v1/units/web@7.service")
    assert r.json()["desiredState"] == "launched"


async def test_mixed_create_state_change_replace_unchanged(client, store) -> None:
    await submit(client, "a.service", desired="loaded")
    await submit(client, "b.service", desired="launched")
    await submit(client, "c.service", desired="inactive")
    changed = SERVICE.replace("1000", "2000")
    r = await put_units(
        client,
        [
            item("new.service"),
            item("a.service", "launched", None),
            item("b.service", "launched", None),
            item("c.service", None, changed),
        ],
    )
    assert r.status_code == 200, r.text
    assert [x["result"] for x in r.json()["units"]] == [
        "created",
        "updated",
        "unchanged",
        "replaced",
    ]
    new = await store.get_unit("new.service")
    assert new is not None and new.desired is DesiredState.INACTIVE
    a = await store.get_unit("a.service")
    assert a is not None and a.desired is DesiredState.LAUNCHED
    c = await store.get_unit("c.service")
    assert c is not None and "2000" in c.text and c.desired is DesiredState.INACTIVE


async def test_one_invalid_item_writes_nothing(client, store) -> None:
    await submit(client, "a.service", desired="loaded")
    before = await store.registry.get_prefix(store.keys.units)
    bad_file = [{"section": "X-Fleet", "name": "AtMostOnce", "value": "maybe"}]
    cases = [
        ({"name": "bad name.service", "options": options_of(SERVICE)}, 400, "bad name.service"),
        ({"name": "x.service", "options": bad_file}, 400, "units[3] (x.service)"),
        (item("missing.service", "launched", None), 409, "missing.service does not exist"),
        (item("a.service", None, None), 409, "units[3] (a.service): must provide desiredState"),
    ]
    for bad, code, words in cases:
        items = [item(f"ok{i}.service", "launched") for i in range(3)] + [bad]
        r = await put_units(client, items)
        got, message = error_of(r)
        assert got == code, message
        assert words in message
        assert await store.registry.get_prefix(store.keys.units) == (before[0], before[1])


async def test_replace_false_refuses_different_options(client, store) -> None:
    await submit(client, "a.service")
    r = await put_units(
        client,
        [item("b.service"), item("a.service", None, SERVICE + "\n[X-Fleet]\nGlobal=true\n")],
        replace="false",
    )
    code, message = error_of(r)
    assert code == 409 and "units[1] (a.service)" in message and "different contents" in message
    assert await store.get_unit("b.service") is None


async def test_template_start_refused(client, store) -> None:
    r = await put_units(client, [item("ok.service", "launched"), item("web@.service", "launched")])
    code, message = error_of(r)
    assert code == 400 and "cannot start template web@.service" in message
    assert await store.list_units() == []
    r = await put_units(client, [item("web@.service", "inactive", TEMPLATE)])
    assert r.status_code == 200 and r.json()["units"][0]["result"] == "created"


async def test_too_many_and_duplicates_refused(client, store) -> None:
    items = [item(f"u{i}.service", None, "[Service]\nExecStart=/bin/true\n") for i in range(1001)]
    code, message = error_of(await put_units(client, items))
    assert code in (400, 413) and message
    code, message = error_of(await put_units(client, [item("a.service"), item("a.service")]))
    assert code == 400 and "units[1] (a.service): unit is listed twice" in message
    code, _ = error_of(await client.put("/fleet/v1/units", json={"units": [{"options": []}]}))
    assert code == 400
    assert await store.list_units() == []


async def test_too_many_refused_by_the_command(store) -> None:
    changes = [UnitChange(f"u{i}.service", desired=DesiredState.LAUNCHED) for i in range(1001)]
    with pytest.raises(Exception, match="too many units in one request: 1001 > 1000"):
        await unitbatch.set_units(store, changes, caller=TESTER)


async def test_v1_single_put_unchanged(client) -> None:
    r = await submit(client, "web.service", desired="launched")
    assert r.status_code == 201 and r.content == b""
    r = await client.put("/fleet/v1/units/web.service", json={"desiredState": "loaded"})
    assert r.status_code == 204


class RacingStore(Store):
    """Creates ``racer`` right after the batch read the registry (a concurrent PUT)."""

    racer: str = ""

    async def list_units_with_revisions(self):  # type: ignore[no-untyped-def]
        found = await super().list_units_with_revisions()
        if self.racer:
            await unitbatch.set_units(
                Store(self.registry), [_create(self.racer, "racer")], caller=TESTER
            )
        return found


def _create(name: str, text: str) -> UnitChange:
    from fleetd.api.wire import UnitOption

    opts = [UnitOption(section="Service", name="ExecStart", value=f"/bin/echo {text}")]
    return UnitChange(name, options=opts)


async def test_create_never_overwrites_a_concurrent_create() -> None:
    store = RacingStore(new_store().registry)
    store.racer = "u5.service"
    changes = [_create(f"u{i}.service", "batch") for i in range(20)]
    with pytest.raises(Conflict, match=r"u5\.service already exists"):
        await unitbatch.set_units(store, changes, caller=TESTER)
    racer = await store.get_unit("u5.service")
    assert racer is not None and "racer" in racer.text


async def test_state_change_retried_after_a_race(store) -> None:
    for i in range(20):
        await unitbatch.set_units(store, [_create(f"u{i}.service", "x")], caller=TESTER)

    class Touching(Store):
        async def list_units_with_revisions(self):  # type: ignore[no-untyped-def]
            found = await super().list_units_with_revisions()
            await self.set_desired_state("u3.service", DesiredState.LOADED)
            return found

    racing = Touching(store.registry)
    changes = [UnitChange(f"u{i}.service", desired=DesiredState.LAUNCHED) for i in range(20)]
    results = await unitbatch.set_units(racing, changes, caller=TESTER)
    assert [r.result for r in results] == [SetResult.UPDATED] * 20
    assert {u.desired for u in await store.list_units()} == {DesiredState.LAUNCHED}


async def test_warnings_per_item(client, store) -> None:
    """Each item carries the warnings about its unit file; items without any have none."""
    warned = SERVICE + "\n[X-Fleet]\nConflicts=apache\nBogus=1\n"
    r = await put_units(client, [item("a.service"), item("b.service", "launched", warned)])
    assert r.status_code == 200, r.text
    a, b = r.json()["units"]
    assert a == {"name": "a.service", "result": "created"}
    assert b["result"] == "created"
    assert len(b["warnings"]) == 2
    assert "unknown [X-Fleet] key 'Bogus'" in b["warnings"][0]
    assert "Conflicts=apache" in b["warnings"][1]
    unit = await store.get_unit("b.service")
    assert unit is not None and unit.desired is DesiredState.LAUNCHED
