"""Unit versions through the API (``/units/{name}/versions``), over MemoryRegistry and etcd.

Every write path that changes a unit's text (single PUT, bulk PUT, replace)
records a version in the same transaction, authored by the request's caller
as the API's authentication layer named it.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import leakcheck
import pytest
from apikit import SERVICE, error_of, make_app, options_of

from fleetd.api.auth import BearerAuth, Identified
from fleetd.etcd_server import EtcdServer
from fleetd.registry.etcd import EtcdRegistry
from fleetd.registry.keys import Keys
from fleetd.registry.memory import MemoryRegistry
from fleetd.registry.store import Store
from fleetd.unitfile import UnitFile

V1 = "/fleet/v1"
TOKEN = leakcheck.secret("versions-token-0123456789")
NOON = 1_767_268_800.0  # 2026-01-01T12:00:00Z


class Clock:
    def __init__(self) -> None:
        self.now = NOON

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def text(n: int, extra: str = "") -> str:
    return f"[Unit]\nDescription=v{n}\n\n[Service]\nExecStart=/bin/sleep {n}\n{extra}"


def body(unit_text: str, desired: str = "inactive") -> dict[str, Any]:
    return {"desiredState": desired, "options": options_of(unit_text)}


class Api:
    """The app as the unix socket and the TCP listener serve it (same store)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        app = make_app(store, clock=Clock())
        self.unix = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=Identified(app, "unix socket", remote=False)),
            base_url="http://fleet",
        )
        self.tcp = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=BearerAuth(app, TOKEN), client=("10.0.0.7", 4711)),
            base_url="http://fleet",
            headers={"Authorization": f"Bearer {TOKEN}"},
        )

    async def put(self, name: str, unit_text: str, **params: str) -> httpx.Response:
        return await self.unix.put(f"{V1}/units/{name}", json=body(unit_text), params=params)

    async def versions(self, name: str) -> dict[str, Any]:
        r = await self.unix.get(f"{V1}/units/{name}/versions")
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()
        return result

    async def numbers(self, name: str) -> list[int]:
        return [v["version"] for v in (await self.versions(name))["versions"]]

    async def close(self) -> None:
        await self.unix.aclose()
        await self.tcp.aclose()


@pytest.fixture(params=["memory", pytest.param("etcd", marks=pytest.mark.etcd)])
async def api(request: pytest.FixtureRequest, key_prefix: str) -> AsyncIterator[Api]:
    if request.param == "memory":
        registry: Any = MemoryRegistry()
    else:
        server: EtcdServer = request.getfixturevalue("etcd_server")
        registry = EtcdRegistry([server.endpoint], timeout=5.0)
    client = Api(Store(registry, Keys(key_prefix)))
    try:
        yield client
    finally:
        await client.close()
        await registry.close()


async def test_each_change_of_the_text_is_a_version_by_its_caller(api: Api) -> None:
    assert (await api.put("web.service", text(1))).status_code == 201
    r = await api.tcp.put(f"{V1}/units/web.service", json=body(text(2, "Restart=always\n")))
    assert r.status_code == 204, r.text
    listing = await api.versions("web.service")
    h1, h2 = UnitFile.from_text(text(1)).hash, UnitFile.from_text(text(2, "Restart=always\n")).hash
    assert listing == {
        "name": "web.service",
        "current": 2,
        "versions": [
            {
                "version": 1,
                "hash": h1,
                "time": "2026-01-01T12:00:01Z",
                "by": "unix socket",
                "remote": "",
                "linesAdded": 5,
                "linesRemoved": 0,
                "changes": "first version (5 lines)",
                "template": None,
            },
            {
                "version": 2,
                "hash": h2,
                "time": "2026-01-01T12:00:02Z",
                "by": "token",
                "remote": "10.0.0.7",
                "linesAdded": 3,
                "linesRemoved": 2,
                "changes": "+3 -2 lines; [Unit] Description changed, [Service] ExecStart changed, "
                "[Service] Restart added",
                "template": None,
            },
        ],
    }
    r = await api.unix.get(f"{V1}/units/web.service/versions/2")
    assert r.json() == {
        "name": "web.service",
        "version": 2,
        "hash": h2,
        "time": "2026-01-01T12:00:02Z",
        "by": "token",
        "remote": "10.0.0.7",
        "text": text(2, "Restart=always\n"),
        "previous": 1,
    }
    assert (await api.unix.get(f"{V1}/units/web.service/versions/1")).json()["previous"] is None


async def test_identical_text_and_state_changes_add_no_version(api: Api) -> None:
    await api.put("web.service", text(1))
    assert (await api.put("web.service", text(1))).status_code == 204
    r = await api.unix.put(f"{V1}/units/web.service", json={"desiredState": "launched"})
    assert r.status_code == 204
    same = {"name": "web.service", **body(text(1), "launched")}
    r = await api.unix.put(f"{V1}/units", json={"units": [same]})
    assert r.json()["units"][0]["result"] == "unchanged"
    assert await api.numbers("web.service") == [1]


async def test_bulk_put_records_a_version_per_new_text(api: Api) -> None:
    await api.put("a.service", text(1))
    items = [
        {"name": "a.service", **body(text(2))},  # replaced
        {"name": "b.service", **body(text(3))},  # created
        *({"name": f"n{i}.service", **body(text(i))} for i in range(30)),  # > one read
    ]
    r = await api.tcp.put(f"{V1}/units", json={"units": items})
    assert r.status_code == 200, r.text
    assert await api.numbers("a.service") == [1, 2]
    listing = await api.versions("b.service")
    assert [(v["version"], v["by"]) for v in listing["versions"]] == [(1, "token")]
    assert all([await api.numbers(f"n{i}.service") == [1] for i in range(30)])


async def test_history_outlives_the_unit_and_numbers_continue(api: Api) -> None:
    await api.put("web.service", text(1))
    await api.put("web.service", text(2))
    assert (await api.unix.delete(f"{V1}/units/web.service")).status_code == 204
    listing = await api.versions("web.service")
    assert listing["current"] is None and [v["version"] for v in listing["versions"]] == [1, 2]
    r = await api.unix.get(f"{V1}/units/web.service/versions/1")
    assert r.status_code == 200 and r.json()["text"] == text(1)
    assert (await api.put("web.service", text(2))).status_code == 201  # the latest text again
    assert (await api.versions("web.service"))["current"] == 2
    await api.unix.delete(f"{V1}/units/web.service")
    await api.put("web.service", text(1))  # an older text is a new version
    assert await api.numbers("web.service") == [1, 2, 3]


async def test_only_the_last_20_are_kept(api: Api) -> None:
    for n in range(1, 23):
        assert (await api.put("web.service", text(n))).status_code in (201, 204)
    listing = await api.versions("web.service")
    assert [v["version"] for v in listing["versions"]] == list(range(3, 23))
    oldest = listing["versions"][0]
    assert oldest["changes"] == "version 2 no longer kept"
    assert oldest["linesAdded"] is None and oldest["linesRemoved"] is None
    assert (await api.unix.get(f"{V1}/units/web.service/versions/3")).json()["previous"] is None
    code, message = error_of(await api.unix.get(f"{V1}/units/web.service/versions/2"))
    assert code == 404
    assert message == "unit web.service has no version 2 (versions 3-22 are kept)"


async def test_refused_writes_leave_no_version(api: Api) -> None:
    await api.put("web.service", text(1))
    r = await api.put("web.service", text(2), replace="false")
    assert r.status_code == 409
    bad = text(2, "\n[X-Fleet]\nAtMostOnce=maybe\n")
    assert (await api.put("web.service", bad)).status_code == 400
    assert (await api.put("new.service", bad)).status_code == 400
    items = [{"name": "ok.service", **body(text(5))}, {"name": "t@.service", **body(text(6))}]
    items[1]["desiredState"] = "launched"  # a template cannot be started: nothing is written
    r = await api.unix.put(f"{V1}/units", json={"units": items})
    assert r.status_code == 400
    assert await api.numbers("web.service") == [1]
    keys = api.store.keys
    heads, _ = await api.store.registry.get_prefix(keys.version_heads)
    assert [kv.key for kv in heads] == [keys.version_head("web.service")]
    kept, _ = await api.store.registry.get_prefix(keys.versions)
    assert [kv.key for kv in kept] == [keys.unit_version("web.service", 1)]


async def test_an_instance_names_the_template_version_it_has(api: Api) -> None:
    template = "[Unit]\nDescription=App %i\n\n[Service]\nExecStart=/bin/sleep %i\n"
    await api.put("app@.service", template)
    await api.put("app@1.service", template)  # what fleetctl does: the template's options
    await api.put("app@.service", template.replace("sleep", "sleep 1"))
    instance = await api.versions("app@1.service")
    assert instance["versions"][0]["template"] == {"name": "app@.service", "version": 1}
    assert [v["template"] for v in (await api.versions("app@.service"))["versions"]] == [None] * 2
    await api.put("app@2.service", text(9))  # its own file: no template version has it
    assert (await api.versions("app@2.service"))["versions"][0]["template"] is None


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("nope.service/versions", 404, "unit nope.service does not exist and has no versions"),
        ("nope.service/versions/1", 404, "unit nope.service has no versions"),
        ("web.service/versions/2", 404, "unit web.service has no version 2 (version 1 is kept)"),
        ("web.service/versions/0", 400, "version: Input should be greater than or equal to 1"),
        ("web.service/versions/-1", 400, "version: Input should be greater than or equal to 1"),
        ("web.service/versions/two", 400, "version: Input should be a valid integer"),
        ("web.service/versions/" + "9" * 20, 400, "version: Input should be less than or equal"),
        ("x%1B.service/versions", 400, "x\\x1b.service"),
    ],
)
async def test_bad_requests_are_clear(api: Api, path: str, status: int, message: str) -> None:
    await api.put("web.service", SERVICE)
    code, text_ = error_of(await api.unix.get(f"{V1}/units/{path}"))
    assert code == status
    assert message in text_


async def test_the_routes_are_in_the_openapi(api: Api) -> None:
    spec = (await api.unix.get("/openapi.json")).json()
    assert "/fleet/v1/units/{name}/versions" in spec["paths"]
    assert "/fleet/v1/units/{name}/versions/{version}" in spec["paths"]
    schemas = spec["components"]["schemas"]
    assert set(schemas["UnitVersionInfo"]["properties"]) == {
        "version",
        "hash",
        "time",
        "by",
        "remote",
        "linesAdded",
        "linesRemoved",
        "changes",
        "template",
    }
    assert "text" in schemas["UnitVersion"]["properties"]


async def _check_invariants(store: Store, expected: dict[str, tuple[int, str]]) -> None:
    """Every unit's text is its latest version; numbers are contiguous, at most 20 kept."""
    heads = {name: head for name, (head, _) in (await store.list_version_heads()).items()}
    assert {n: (h.number, h.hash) for n, h in heads.items()} == expected
    for unit in await store.list_units():
        assert heads[unit.name].hash == unit.hash
    for name, head in heads.items():
        numbers = [v.number for v in await store.list_versions(name)]
        assert numbers == list(range(max(1, head.number - 19), head.number + 1))
        latest = await store.get_version(name, head.number)
        assert latest is not None and latest.hash == head.hash


async def test_random_writes_keep_units_and_versions_consistent() -> None:
    """Single and bulk PUTs, replaces refused or not, destroys and state changes in a random
    order: every successful text write is exactly one version, nothing else is."""
    rnd = random.Random(14)
    api = Api(Store(MemoryRegistry()))
    names = ["a.service", "b.service", "c.service"]
    texts = [text(n) for n in range(4)]
    expected: dict[str, tuple[int, str]] = {}

    def wrote(name: str, unit_text: str) -> None:
        count, latest = expected.get(name, (0, ""))
        digest = UnitFile.from_text(unit_text).hash
        if digest != latest:
            expected[name] = (count + 1, digest)

    for _ in range(300):
        kind = rnd.choice(["put", "put", "bulk", "destroy", "state"])
        name, unit_text = rnd.choice(names), rnd.choice(texts)
        if kind == "put":
            replace = rnd.choice(["true", "false"])
            r = await api.put(name, unit_text, replace=replace)
            if r.status_code in (201, 204):
                wrote(name, unit_text)
        elif kind == "bulk":
            picked = rnd.sample(names, rnd.randint(1, 3))
            items = [{"name": n, **body(rnd.choice(texts))} for n in picked]
            r = await api.tcp.put(f"{V1}/units", json={"units": items})
            if r.status_code == 200:
                for item in items:
                    wrote(item["name"], UnitFile.from_options(item["options"]).text)
        elif kind == "destroy":
            await api.unix.delete(f"{V1}/units/{name}")
        else:
            await api.unix.put(f"{V1}/units/{name}", json={"desiredState": "loaded"})
        await _check_invariants(api.store, expected)
    assert max(count for count, _ in expected.values()) > 20  # pruning was exercised
    await api.close()
