"""Cluster settings on the in-process cluster: ``PATCH /config`` changes what a running
engine does (the mass-loss guard's thresholds, the strategy) without a restart, bad
input changes nothing, and the guard that holds is visible: ``engine/guard``, the event
stream, ``GET /machines``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from guardkit import SERVICE, one_unit_per_machine, vanish

from fleetd.api.routes.events import event_stream
from fleetd.engine.changes import Cause
from fleetd.testing.cluster import Cluster, cluster

RESERVING = SERVICE + "\n[X-Fleet]\nCPUReservation=100m\n"


async def _patch(c: Cluster, body: dict[str, Any]) -> dict[str, Any]:
    response = await c.api.patch("/config", json=body)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def _settings(c: Cluster) -> dict[str, dict[str, Any]]:
    response = await c.api.get("/config")
    assert response.status_code == 200, response.text
    return {s["name"]: s for s in response.json()["settings"]}


async def test_get_shows_every_setting_with_its_default_and_patch_sets_them(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path, machines=1) as c:
        shown = await _settings(c)
        assert list(shown) == [
            "strategy",
            "max_unavailable",
            "guard_machines",
            "guard_share",
            "guard_window",
            "guard_hold",
        ]
        assert shown["strategy"] == {
            "name": "strategy",
            "value": "binpack",
            "default": "binpack",
            "set": False,
            "description": shown["strategy"]["description"],
        }
        assert shown["guard_hold"]["value"] == c.settings.guard.hold
        body = await _patch(c, {"strategy": "spread", "guard_share": 0.5})
        assert body["revision"] > 0
        shown = await _settings(c)
        assert shown["strategy"]["value"] == "spread" and shown["strategy"]["set"]
        assert shown["guard_share"]["value"] == 0.5
        await _patch(c, {"strategy": None})  # back to the default
        shown = await _settings(c)
        assert shown["strategy"] == shown["strategy"] | {"value": "binpack", "set": False}
        assert shown["guard_share"]["set"]


async def test_bad_input_is_refused_clearly_and_changes_nothing(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=1) as c:
        await _patch(c, {"guard_machines": 4})
        before = await c.registry.get(c.store.keys.cluster_settings)
        for body, says in [
            ({"guard_machine": 3}, "unknown cluster setting 'guard_machine' (known: strategy,"),
            ({"max_unavailable": "2"}, "max_unavailable: Input should be a valid integer"),
            ({"guard_share": 1.5}, "guard_share: Input should be less than or equal to 1"),
            ({"strategy": "fastest"}, "strategy: Input should be 'binpack' or 'spread'"),
            ({"guard_hold": -1, "strategy": "spread"}, "guard_hold"),
            ({}, "give at least one setting to change"),
            ([1], "Input should be"),
        ]:
            response = await c.api.patch("/config", json=body)
            assert response.status_code == 400, (body, response.text)
            assert says in response.json()["error"]["message"], (body, response.text)
        after = await c.registry.get(c.store.keys.cluster_settings)
        assert after is not None and before is not None
        assert after.mod_revision == before.mod_revision
        engine = c.engine
        assert engine is not None
        await c.wait_for(lambda: engine.settings.guard.machines == 4, "the engine has it")


async def test_a_raised_guard_threshold_releases_the_units_it_held(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=3) as c:
        placed = await one_unit_per_machine(c)
        await vanish(c.nodes["m2"], c.nodes["m3"])
        await c.wait_for(
            lambda: c.engine is not None and c.engine.metrics.guarded == 2, "the guard holds"
        )
        assert {n: ms[0] for n, ms in (await c.where()).items()} == placed
        await _patch(c, {"guard_machines": 3})  # two machines are no mass loss any more

        async def released() -> bool:  # unscheduled: their Conflicts= leave them no machine
            where = await c.where()
            return all(where.get(n) is None for n, m in placed.items() if m != "m1")

        await c.wait_for(released, "the units of m2 and m3 let go without a restart")
        assert c.engine is not None and c.engine.guard is None

        async def unpublished() -> bool:
            return await c.store.get_guard() is None

        await c.wait_for(unpublished, "engine/guard deleted")


async def test_a_lowered_guard_threshold_holds_a_machine_lost_alone(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=3) as c:
        await _patch(c, {"guard_machines": 1, "guard_share": 0.0})
        placed = await one_unit_per_machine(c)
        await vanish(c.nodes["m3"])
        on_m3 = next(n for n, m in placed.items() if m == "m3")

        async def held() -> bool:
            return (await c.reason(on_m3)).startswith("mass-loss guard: 1 of 3 machines")

        await c.wait_for(held, f"{on_m3} held on m3")
        assert (await c.where())[on_m3] == ["m3"]


async def test_a_new_strategy_applies_to_the_next_placements(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=2) as c:
        for i in (1, 2):
            await c.submit(f"a{i}.service", RESERVING.replace("web", f"a{i}"))
        await c.wait_for(lambda: all(c.running(f"a{i}.service") for i in (1, 2)), "a1, a2")
        packed = {c.running(f"a{i}.service")[0] for i in (1, 2)}
        assert len(packed) == 1, "binpack put them together"
        await _patch(c, {"strategy": "spread"})
        engine = c.engine
        assert engine is not None
        await c.wait_for(
            lambda: (
                engine.last_full_reason is not None
                and engine.last_full_reason.cause is Cause.SETTINGS
            ),
            "a full pass for the new strategy",
        )
        await c.submit("b.service", RESERVING.replace("web", "b"))
        await c.wait_for(lambda: bool(c.running("b.service")), "b running")
        assert c.running("b.service")[0] not in packed, "spread took the emptier machine"
        assert {c.running(f"a{i}.service")[0] for i in (1, 2)} == packed  # nothing moved


async def test_plan_uses_the_cluster_strategy(tmp_path: Path) -> None:
    from tests.component.apikit import options_of

    async with cluster(tmp_path, machines=2) as c:
        body = {
            "units": [
                {"name": "p.service", "desiredState": "launched", "options": options_of(SERVICE)}
            ]
        }
        assert (await c.api.post("/plan", json=body)).json()["strategy"] == "binpack"
        await _patch(c, {"strategy": "spread"})
        assert (await c.api.post("/plan", json=body)).json()["strategy"] == "spread"


async def test_the_guard_is_in_machines_and_on_the_event_stream(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=3) as c:
        placed = await one_unit_per_machine(c)
        _, revision = await c.registry.get_prefix("/fleet/version")
        seen: list[tuple[str, dict[str, Any]]] = []

        async def follow() -> None:
            stream = event_stream(c.store, revision + 1, frozenset({"guard", "settings"}))
            try:
                async for chunk in stream:
                    if chunk.startswith("id:"):
                        kind = chunk.split("event: ", 1)[1].split("\n", 1)[0]
                        seen.append((kind, json.loads(chunk.split("data: ", 1)[1])))
            finally:
                await stream.aclose()

        follower = asyncio.create_task(follow())
        await vanish(c.nodes["m2"], c.nodes["m3"])
        await c.wait_for(
            lambda: c.engine is not None and c.engine.metrics.guarded == 2, "the guard holds"
        )

        async def listed() -> dict[str, Any] | None:
            page = (await c.api.get("/machines")).json()
            guard: dict[str, Any] | None = page.get("guard")
            return guard if guard and guard["units"] == 2 else None

        await c.wait_for(listed, "GET /machines carries the guard")
        guard = await listed()
        assert guard is not None
        assert guard["cause"] == "mass loss" and guard["absent"] == ["m2", "m3"]
        assert guard["reason"].startswith("mass-loss guard: 2 of 3 machines vanished")
        assert guard["until"] is not None and guard["since"] is not None
        c.nodes["m2"].start()
        c.nodes["m3"].start()

        async def ended() -> bool:
            return "guard" not in (await c.api.get("/machines")).json()

        await c.wait_for(ended, "the guard ended")
        await c.wait_for(lambda: seen and seen[-1][1]["action"] == "delete", "its end is sent")
        follower.cancel()
        kinds = [(kind, data["action"]) for kind, data in seen]
        assert kinds[0] == ("guard", "put") and kinds[-1] == ("guard", "delete")
        start = seen[0][1]
        assert start["cause"] == "mass loss" and start["absent"] == ["m2", "m3"]
        assert {n: ms[0] for n, ms in (await c.where()).items()} == placed


async def test_a_maintenance_without_max_unavailable_takes_the_cluster_setting(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path, machines=3) as c:
        await _patch(c, {"max_unavailable": 2})

        async def registered() -> bool:
            return len(await c.store.list_machines()) == 3

        await c.wait_for(registered, "the machines registered")
        response = await c.api.post("/maintenance", json={"machines": ["m1"], "command": ["x"]})
        assert response.status_code == 201, response.text
        assert response.json()["maxUnavailable"] == 2
        await c.api.post("/maintenance/cancel")
