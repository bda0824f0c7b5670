"""``POST /fleet/v1/plan`` over the in-memory registry: what unit changes would do, and
that asking writes nothing (every write method of the registry is watched)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from apikit import SERVICE, add_machine, client_for, error_of, make_app, options_of, schedule

from fleetd.api.access import ACCESS, READ
from fleetd.engine.index import Strategy
from fleetd.engine.settings import EngineSettings
from fleetd.registry.base import Compare, Op, TxnResult
from fleetd.registry.memory import MemoryRegistry
from fleetd.registry.store import Store

PLAN = "/fleet/v1/plan"


class WatchedRegistry(MemoryRegistry):
    """A MemoryRegistry that counts every call that could write, once ``armed``."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False
        self.writes: list[str] = []

    def _seen(self, what: str) -> None:
        if self.armed:
            self.writes.append(what)

    async def put(self, key: str, value: bytes, lease: int = 0) -> int:
        self._seen(f"put {key}")
        return await super().put(key, value, lease)

    async def delete(self, key: str, prefix: bool = False) -> int:
        self._seen(f"delete {key}")
        return await super().delete(key, prefix)

    async def txn(
        self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        self._seen("txn")
        return await super().txn(compares, success, failure)

    async def batch(self, ops: Sequence[Op], guard: Sequence[Compare] = ()) -> TxnResult:
        self._seen("batch")
        return await super().batch(ops, guard)

    async def grant_lease(self, ttl: int) -> int:
        self._seen("grant_lease")
        return await super().grant_lease(ttl)

    async def revoke_lease(self, lease: int) -> None:
        self._seen("revoke_lease")
        await super().revoke_lease(lease)

    async def compact(self, revision: int) -> None:
        self._seen("compact")
        await super().compact(revision)


@dataclass
class Api:
    registry: WatchedRegistry
    store: Store
    client: httpx.AsyncClient

    async def put(self, name: str, text: str = SERVICE, desired: str = "launched") -> None:
        body = {"desiredState": desired, "options": options_of(text)}
        response = await self.client.put(f"/fleet/v1/units/{name}", json=body)
        assert response.status_code in (201, 204), response.text

    async def plan(self, *items: dict[str, Any], **params: str) -> httpx.Response:
        """POST /plan, asserting it wrote nothing: no write call, the same keys and values."""
        before = await self.registry.get_prefix("/")
        self.registry.armed = True
        try:
            response = await self.client.post(PLAN, json={"units": list(items)}, params=params)
        finally:
            self.registry.armed = False
        assert self.registry.writes == []
        after = await self.registry.get_prefix("/")
        assert after == before
        return response


def item(name: str, text: str | None = SERVICE, desired: str | None = "launched") -> dict[str, Any]:
    body: dict[str, Any] = {"name": name}
    if text is not None:
        body["options"] = options_of(text)
    if desired is not None:
        body["desiredState"] = desired
    return body


def fleet(text: str, **keys: str) -> str:
    return text + "\n[X-Fleet]\n" + "".join(f"{k}={v}\n" for k, v in keys.items())


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    registry = WatchedRegistry()
    store = Store(registry)
    await add_machine(store, "m1", "10.0.0.1", metadata=[("disk", "ssd")], memory=2 << 30)
    await add_machine(store, "m2", "10.0.0.2", metadata=[("disk", "hdd")], memory=2 << 30)
    async with client_for(make_app(store)) as client:
        yield Api(registry, store, client)


async def test_a_new_unit_is_placed(api: Api) -> None:
    response = await api.plan(item("web.service", fleet(SERVICE, MachineMetadata="disk=hdd")))
    assert response.status_code == 200, response.text
    body = response.json()
    [unit] = body["units"]
    assert unit["name"] == "web.service" and unit["result"] == "created"
    assert unit["machineIDs"] == ["m2"] and unit["reason"] is None
    assert unit["previousHash"] is None and unit["desiredState"] == "launched"
    assert body["changes"] == [
        {
            "action": "schedule",
            "unit": "web.service",
            "machineID": "m2",
            "hostname": "host-m2",
            "reason": "best fit (binpack)",
            "effect": "load and start",
            "hash": unit["hash"],
            "previousHash": None,
            "desiredState": "launched",
            "previousDesiredState": None,
        }
    ]
    assert body["unplaceable"] == [] and body["waiting"] == []
    assert body["changed"] is True and body["pending"] == 0 and body["strategy"] == "binpack"
    assert await api.store.get_unit("web.service") is None


async def test_an_unplaceable_unit_with_the_reason_of_each_machine(api: Api) -> None:
    big = fleet(SERVICE, MemoryReservation="1T")
    response = await api.plan(
        item("big.service", big), item("ssd.service", fleet(SERVICE, MachineMetadata="disk=nvme"))
    )
    body = response.json()
    assert [u["name"] for u in body["unplaceable"]] == ["big.service", "ssd.service"]
    big_out, ssd_out = body["unplaceable"]
    assert big_out["reasons"] == {
        "m1": "needs 1T memory, 2G free",
        "m2": "needs 1T memory, 2G free",
    }
    assert "needs 1T memory" in big_out["reason"]
    assert set(ssd_out["reasons"]) == {"m1", "m2"}
    assert "disk=nvme" in ssd_out["reasons"]["m1"]
    assert [u["reason"] for u in body["units"]] == [big_out["reason"], ssd_out["reason"]]
    assert body["changes"] == [] and body["changed"] is True  # two new unit records


async def test_replaces_pushes_a_running_unit_out_and_conflicts_do_not(api: Api) -> None:
    await api.put("cache.service")
    await schedule(api.store, "m1", "cache.service")
    new = fleet(SERVICE, MachineMetadata="disk=ssd", Replaces="cache.service")
    body = (await api.plan(item("new.service", new))).json()
    assert [(c["action"], c["unit"], c["machineID"]) for c in body["changes"]] == [
        ("unschedule", "cache.service", "m1"),
        ("schedule", "cache.service", "m2"),
        ("schedule", "new.service", "m1"),
    ]
    out = body["changes"][0]
    assert out["reason"] == "replaced by new.service" and out["effect"] == "stop and unload"
    assert out["hash"] is None and out["previousDesiredState"] == "launched"
    # Conflicts= keeps the newcomer away instead: nothing running moves.
    other = fleet(SERVICE, MachineMetadata="disk=ssd", Conflicts="cache.service")
    body = (await api.plan(item("other.service", other))).json()
    assert body["changes"] == []
    [unplaced] = body["unplaceable"]
    assert unplaced["reasons"]["m1"] == "conflicts with cache.service"


async def test_a_changed_file_of_a_launched_unit_is_restarted_in_place(api: Api) -> None:
    await api.put("api.service")
    await schedule(api.store, "m1", "api.service")
    old = await api.store.get_unit("api.service")
    assert old is not None
    new_text = SERVICE.replace("1000", "2000")
    body = (await api.plan(item("api.service", new_text, desired=None))).json()
    [unit] = body["units"]
    assert unit["result"] == "replaced" and unit["previousHash"] == old.hash
    assert unit["hash"] != old.hash and unit["machineIDs"] == ["m1"]
    [change] = body["changes"]
    assert change["action"] == "update" and change["machineID"] == "m1"
    assert change["reason"] == f"unit file changed ({old.hash[:7]} -> {unit['hash'][:7]})"
    assert change["effect"] == "restart with the new file"
    assert (change["previousHash"], change["hash"]) == (old.hash, unit["hash"])
    # replace=false: as PUT /units, a different file is refused.
    response = await api.plan(item("api.service", new_text), replace="false")
    assert response.status_code == 409
    assert "already exists with different contents" in error_of(response)[1]


async def test_nothing_changes(api: Api) -> None:
    await api.put("api.service")
    await schedule(api.store, "m1", "api.service")
    for body in (item("api.service"), item("api.service", text=None)):
        answer = (await api.plan(body)).json()
        assert answer["changes"] == [] and answer["unplaceable"] == []
        assert answer["changed"] is False
        assert [(u["result"], u["machineIDs"]) for u in answer["units"]] == [("unchanged", ["m1"])]


async def test_a_desired_state_change_stops_or_starts_in_place(api: Api) -> None:
    await api.put("api.service")
    await schedule(api.store, "m1", "api.service")
    answer = (await api.plan(item("api.service", text=None, desired="loaded"))).json()
    assert [(c["action"], c["effect"], c["reason"]) for c in answer["changes"]] == [
        ("update", "stop", "desired state launched -> loaded")
    ]
    answer = (await api.plan(item("api.service", text=None, desired="inactive"))).json()
    assert [(c["action"], c["effect"], c["reason"]) for c in answer["changes"]] == [
        ("unschedule", "stop and unload", "desired state is inactive")
    ]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"units": [item("bad.service", fleet(SERVICE, AtMostOnce="maybe"))]},
            400,
            "units[0] (bad.service): ",
        ),
        (
            {
                "units": [
                    item("ok.service"),
                    item("x.service", fleet(SERVICE, MemoryReservation="lots")),
                ]
            },
            400,
            "units[1] (x.service): ",
        ),
        ({"units": [item("web@.service")]}, 400, "cannot start template web@.service"),
        ({"units": [item("gone.service", text=None)]}, 409, "does not exist"),
        ({"units": [item("a.service"), item("a.service")]}, 400, "listed twice"),
        ({"units": []}, 400, "units"),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_written(
    api: Api, body: dict[str, Any], status: int, message: str
) -> None:
    response = await api.plan(*body["units"])
    assert response.status_code == status, response.text
    assert message in error_of(response)[1]
    assert await api.store.list_units() == []


async def test_the_plan_follows_the_scheduling_settings_it_is_given() -> None:
    registry = WatchedRegistry()
    store = Store(registry)
    await add_machine(store, "m1", cpu=2000)
    await add_machine(store, "m2", cpu=2000)
    units = [item(f"w{i}.service", fleet(SERVICE, CPUReservation="500m")) for i in range(2)]
    found = {}
    for strategy in Strategy:
        app = make_app(store, scheduling=EngineSettings(strategy=strategy))
        async with client_for(app) as client:
            body = (await client.post(PLAN, json={"units": units})).json()
        assert body["strategy"] == strategy.value
        found[strategy] = sorted(m for u in body["units"] for m in u["machineIDs"])
    assert found == {Strategy.BINPACK: ["m1", "m1"], Strategy.SPREAD: ["m1", "m2"]}


def test_plan_is_a_read_for_roles() -> None:
    assert ACCESS[("POST", PLAN)] == READ
