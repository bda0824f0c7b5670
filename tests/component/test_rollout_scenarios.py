"""Rolling updates on the in-process cluster: the real engine (and its rollout driver),
agents and API over the in-memory registry and fake systemd."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fleetd.model import DesiredState
from fleetd.testing.cluster import Cluster, ManualClock, ManualWall, cluster
from fleetd.unitfile import UnitFile

V1 = "[Unit]\nDescription=web\n\n[Service]\nExecStart=/bin/sleep 1000\n"
V2 = "[Unit]\nDescription=web v2\n\n[Service]\nExecStart=/bin/sleep 2000\n"


def options(text: str) -> list[dict[str, str]]:
    return UnitFile.from_text(text).to_dicts()


def hash_of(text: str) -> str:
    return UnitFile.from_text(text).hash


async def start_instances(c: Cluster, n: int, text: str = V1) -> list[str]:
    await c.submit("web@.service", text, DesiredState.INACTIVE)
    names = [f"web@{i}.service" for i in range(1, n + 1)]
    for name in names:
        await c.submit(name, text)
    await c.wait_for(lambda: all(c.running(n) for n in names), "every instance running")
    return names


async def rollout(c: Cluster, unit: str, text: str | None = None, **settings: Any) -> Any:
    body: dict[str, Any] = {"unit": unit, **settings}
    if text is not None:
        body["options"] = options(text)
    response = await c.api.post("/rollouts", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def phase(c: Cluster, unit: str) -> str:
    response = await c.api.get(f"/rollouts/{unit}")
    response.raise_for_status()
    return str(response.json()["phase"])


async def test_a_template_rolls_instance_by_instance(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=2) as c:
        names = await start_instances(c, 4)
        await rollout(c, "web@.service", V2, maxParallel=2, minHealthyTime=0)

        async def succeeded() -> bool:
            return await phase(c, "web@.service") == "succeeded"

        await c.wait_for(succeeded, "the rollout succeeded")
        new = hash_of(V2)
        for name in names:
            unit = await c.store.get_unit(name)
            assert unit is not None and unit.hash == new
            [machine] = c.running(name)
            assert c.nodes[machine].systemd.unit(name) is not None
            state = (await c.states(name))[machine]
            assert state.hash == new and state.active_state == "active"
        history = (await c.api.get("/units/web@1.service/versions")).json()["versions"]
        assert history[-1]["by"].startswith("rollout by ")


BROKEN = "[Unit]\nDescription=web broken\n\n[Service]\nExecStart=/bin/false\n"


def manual(tmp_path: Path, machines: int = 2) -> Any:
    clock = ManualClock()
    return cluster(tmp_path, machines=machines, clock=clock, wall=ManualWall(clock), ttl=3600)


async def record(c: Cluster, unit: str) -> dict[str, Any]:
    response = await c.api.get(f"/rollouts/{unit}")
    response.raise_for_status()
    found: dict[str, Any] = response.json()
    return found


async def wait_phase(c: Cluster, unit: str, wanted: str, within: float = 5.0) -> dict[str, Any]:
    async def there() -> bool:
        return await phase(c, unit) == wanted

    await c.wait_for(there, f"the rollout of {unit} {wanted}", within)
    return await record(c, unit)


def states_of(found: dict[str, Any]) -> dict[str, str]:
    return {t["name"]: t["state"] for t in found["targets"]}


async def hashes(c: Cluster, names: list[str]) -> dict[str, str]:
    found = {}
    for name in names:
        unit = await c.store.get_unit(name)
        assert unit is not None
        found[name] = unit.hash
    return found


async def test_never_more_than_max_parallel_instances_down(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=3) as c:
        names = await start_instances(c, 7)
        await rollout(c, "web@.service", V2, maxParallel=3, minHealthyTime=0)
        fewest = len(names)

        async def done() -> bool:
            nonlocal fewest
            fewest = min(fewest, sum(1 for n in names if c.running(n)))
            found = await record(c, "web@.service")
            assert sum(t["state"] in ("updating", "healthy") for t in found["targets"]) <= 3
            return bool(found["phase"] == "succeeded")

        await c.wait_for(done, "the rollout succeeded")
        assert fewest >= len(names) - 3
        assert set((await hashes(c, names)).values()) == {hash_of(V2)}


async def test_an_instance_counts_once_healthy_for_min_healthy_time(tmp_path: Path) -> None:
    async with manual(tmp_path) as c:
        names = await start_instances(c, 2)
        await rollout(c, "web@.service", V2, minHealthyTime=10, healthyDeadline=60)

        async def healthy_first() -> bool:
            return states_of(await record(c, "web@.service")) == {
                names[0]: "healthy",
                names[1]: "pending",
            }

        await c.wait_for(healthy_first, "the first instance healthy, the second waiting")
        c.advance(9)
        await c.wait_for(healthy_first, "still waiting after 9 s")
        c.advance(1)

        async def second() -> bool:
            return states_of(await record(c, "web@.service")) == {
                names[0]: "done",
                names[1]: "healthy",
            }

        await c.wait_for(second, "the first done after 10 s, the second healthy")
        c.advance(10)
        found = await wait_phase(c, "web@.service", "succeeded")
        assert found["message"].startswith("2 of 2 updated")


async def test_a_broken_version_is_reverted_with_auto_revert(tmp_path: Path) -> None:
    async with manual(tmp_path) as c:
        names = await start_instances(c, 4)
        await rollout(
            c,
            "web@.service",
            BROKEN,
            maxParallel=2,
            minHealthyTime=1,
            healthyDeadline=30,
            autoRevert=True,
        )

        async def first_batch_failing() -> bool:
            found = await record(c, "web@.service")
            flying = [t for t in found["targets"] if t["state"] == "updating"]
            return len(flying) == 2 and all("failed" in t["message"] for t in flying)

        await c.wait_for(first_batch_failing, "the first two instances failing")
        c.advance(30)

        async def reverts_healthy() -> bool:
            found = await record(c, "web@.service")
            return found["phase"] == "reverting" and [t["state"] for t in found["targets"][:2]] == [
                "healthy",
                "healthy",
            ]

        await c.wait_for(reverts_healthy, "the two updated instances back and healthy")
        assert all(c.running(n) for n in names)
        c.advance(1)
        found = await wait_phase(c, "web@.service", "reverted")
        assert found["reverting"] and "not healthy within 30s" in found["failure"]
        assert set((await hashes(c, names)).values()) == {hash_of(V1)}
        template = await c.store.get_unit("web@.service")
        assert template is not None and template.hash == hash_of(V1)
        assert found["revertVersion"] == 3  # v1, the broken v2, v1 again as v3
        assert states_of(found) == {
            names[0]: "done",
            names[1]: "done",
            names[2]: "skipped",
            names[3]: "skipped",
        }


async def test_a_failed_rollout_without_auto_revert_stops_where_it_is(tmp_path: Path) -> None:
    async with manual(tmp_path) as c:
        names = await start_instances(c, 3)
        await rollout(c, "web@.service", BROKEN, minHealthyTime=1, healthyDeadline=30)

        async def updating() -> bool:
            return states_of(await record(c, "web@.service")).get(names[0]) == "updating"

        await c.wait_for(updating, "the first instance updating")
        c.advance(30)
        found = await wait_phase(c, "web@.service", "failed")
        assert found["failure"].startswith(f"{names[0]}: not healthy within 30s")
        assert await hashes(c, names) == {
            names[0]: hash_of(BROKEN),
            names[1]: hash_of(V1),
            names[2]: hash_of(V1),
        }
        c.advance(60)
        assert (await record(c, "web@.service"))["updated"] == found["updated"]


async def test_canaries_wait_for_a_promotion(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=2) as c:
        names = await start_instances(c, 3)
        await rollout(c, "web@.service", V2, canary=1, maxParallel=2, minHealthyTime=0)
        found = await wait_phase(c, "web@.service", "awaiting-promotion")
        assert states_of(found) == {names[0]: "done", names[1]: "pending", names[2]: "pending"}
        response = await c.api.post("/rollouts/web@.service/promote")
        assert response.status_code == 200, response.text
        await wait_phase(c, "web@.service", "succeeded")
        assert set((await hashes(c, names)).values()) == {hash_of(V2)}
        again = await c.api.post("/rollouts/web@.service/promote")
        assert again.status_code == 409 and "ended" in again.json()["error"]["message"]


async def test_pause_resume_and_abort(tmp_path: Path) -> None:
    async with manual(tmp_path) as c:
        names = await start_instances(c, 3)
        await rollout(c, "web@.service", V2, minHealthyTime=5, healthyDeadline=60)

        async def first_healthy() -> bool:
            return states_of(await record(c, "web@.service")).get(names[0]) == "healthy"

        await c.wait_for(first_healthy, "the first instance healthy")
        paused = (await c.api.post("/rollouts/web@.service/pause")).json()
        assert paused["phase"] == "paused"
        c.advance(5)

        async def first_done() -> bool:
            return states_of(await record(c, "web@.service"))[names[0]] == "done"

        await c.wait_for(first_done, "the instance in flight finishes while paused")
        found = await record(c, "web@.service")
        assert found["phase"] == "paused" and states_of(found)[names[1]] == "pending"
        resumed = (await c.api.post("/rollouts/web@.service/resume")).json()
        assert resumed["phase"] == "running"

        async def second_healthy() -> bool:
            return states_of(await record(c, "web@.service"))[names[1]] == "healthy"

        await c.wait_for(second_healthy, "the second instance healthy after the resume")
        aborted = (await c.api.post("/rollouts/web@.service/abort")).json()
        assert aborted["phase"] == "aborted" and aborted["message"].startswith("aborted by ")
        c.advance(60)
        assert (await hashes(c, names))[names[2]] == hash_of(V1)
        assert (await record(c, "web@.service"))["phase"] == "aborted"


async def test_a_plain_unit_is_replaced_in_place_and_reverted(tmp_path: Path) -> None:
    async with manual(tmp_path) as c:
        await c.submit("db.service", V1)
        await c.wait_for(lambda: c.running("db.service"), "db running")
        await rollout(c, "db.service", V2, minHealthyTime=2, healthyDeadline=20)

        async def healthy() -> bool:
            return states_of(await record(c, "db.service")) == {"db.service": "healthy"}

        await c.wait_for(healthy, "db healthy on its new file")
        c.advance(2)
        await wait_phase(c, "db.service", "succeeded")
        await rollout(
            c, "db.service", BROKEN, minHealthyTime=2, healthyDeadline=20, autoRevert=True
        )

        async def failing() -> bool:
            found = await record(c, "db.service")
            return "failed" in found["targets"][0]["message"]

        await c.wait_for(failing, "the broken file failing")
        c.advance(20)
        await c.wait_for(healthy, "db healthy on the file before again")
        c.advance(2)
        found = await wait_phase(c, "db.service", "reverted")
        unit = await c.store.get_unit("db.service")
        assert unit is not None and unit.hash == hash_of(V2)
        assert found["fromVersion"] == 2 and found["toVersion"] == 3
        assert c.running("db.service")


async def test_a_new_leader_continues_the_rollout(tmp_path: Path) -> None:
    async with manual(tmp_path) as c:
        names = await start_instances(c, 3)
        await rollout(c, "web@.service", V2, minHealthyTime=5, healthyDeadline=60)

        async def first_healthy() -> bool:
            return states_of(await record(c, "web@.service")).get(names[0]) == "healthy"

        await c.wait_for(first_healthy, "the first instance healthy")
        await c.cancel("engine")
        c.advance(5)
        assert states_of(await record(c, "web@.service"))[names[0]] == "healthy"
        c.start_engine()

        async def second_healthy() -> bool:
            return states_of(await record(c, "web@.service")).get(names[1]) == "healthy"

        await c.wait_for(second_healthy, "the new leader went on with the second")
        assert states_of(await record(c, "web@.service"))[names[0]] == "done"
        c.advance(5)

        async def third_healthy() -> bool:
            return states_of(await record(c, "web@.service")).get(names[2]) == "healthy"

        await c.wait_for(third_healthy, "the third")
        c.advance(5)
        await wait_phase(c, "web@.service", "succeeded")


async def test_a_destroyed_instance_is_skipped(tmp_path: Path) -> None:
    async with manual(tmp_path) as c:
        names = await start_instances(c, 2)
        await rollout(c, "web@.service", V2, minHealthyTime=5, healthyDeadline=60)

        async def first_healthy() -> bool:
            return states_of(await record(c, "web@.service")).get(names[0]) == "healthy"

        await c.wait_for(first_healthy, "the first instance healthy")
        await c.destroy(names[1])
        c.advance(5)
        found = await wait_phase(c, "web@.service", "succeeded")
        assert found["targets"][1]["state"] == "skipped"
        assert found["targets"][1]["message"] == "destroyed"


async def dump(c: Cluster) -> dict[str, bytes]:
    items, _ = await c.registry.get_prefix("/")
    return {kv.key: kv.value for kv in items}


async def test_bad_rollouts_are_refused_and_change_nothing(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=2) as c:
        await c.submit("web@.service", V1, DesiredState.INACTIVE)
        await c.submit("db.service", V1, DesiredState.LOADED)
        await c.submit("up.service", V1)
        await c.wait_for(lambda: c.running("up.service"), "up running")
        before = await dump(c)

        async def refused(body: dict[str, Any], status: int, words: str) -> None:
            response = await c.api.post("/rollouts", json=body)
            assert response.status_code == status, response.text
            assert words in response.json()["error"]["message"]
            assert await dump(c) == before

        new = options(V2)
        await refused({"unit": "web@.service", "options": new}, 409, "no launched instances")
        await refused({"unit": "db.service", "options": new}, 409, "is not launched")
        await refused({"unit": "nope.service", "options": new}, 404, "does not exist")
        await refused({"unit": "up.service", "options": options(V1)}, 409, "already has")
        await refused(
            {"unit": "up.service", "options": new, "maxParallel": 0},
            400,
            "max-parallel must be at least 1, got 0",
        )
        await refused(
            {"unit": "up.service", "options": new, "minHealthyTime": 300},
            400,
            "must be longer than min-healthy-time",
        )
        await refused({"unit": "up.service", "version": 7}, 404, "version 7 of up.service")
        await refused({"unit": "up.service"}, 400, "either the new unit file")
        bad = [*new, {"section": "X-Fleet", "name": "AtMostOnce", "value": "maybe"}]
        await refused({"unit": "up.service", "options": bad}, 400, "AtMostOnce")
        started = await rollout(c, "up.service", V2, minHealthyTime=60, healthyDeadline=120)
        assert started["phase"] == "running"
        second = await c.api.post(
            "/rollouts", json={"unit": "up.service", "options": options(BROKEN)}
        )
        assert second.status_code == 409
        assert "already running" in second.json()["error"]["message"]
        unit = await c.store.get_unit("up.service")
        assert unit is not None and unit.hash == hash_of(V2)
        assert (await c.api.get("/rollouts/db.service")).status_code == 404


async def test_progress_is_on_the_event_stream(tmp_path: Path) -> None:
    from fleetd.api.routes.events import event_stream

    async with cluster(tmp_path, machines=2) as c:
        await start_instances(c, 2)
        _, revision = await c.registry.get_prefix("/fleet/version")
        await rollout(c, "web@.service", V2, minHealthyTime=0)
        await wait_phase(c, "web@.service", "succeeded")
        seen = []
        stream = event_stream(c.store, revision + 1, frozenset({"rollout"}))
        async for chunk in stream:
            if chunk.startswith("id:"):
                seen.append(json.loads(chunk.split("data: ", 1)[1]))
                if seen[-1]["phase"] == "succeeded":
                    break
        await stream.aclose()
        assert seen[0]["phase"] == "running"
        assert seen[-1] == {
            "action": "put",
            "revision": seen[-1]["revision"],
            "unit": "web@.service",
            "id": seen[0]["id"],
            "phase": "succeeded",
            "toVersion": 2,
            "done": 2,
            "skipped": 0,
            "total": 2,
            "reverting": False,
            "message": "2 of 2 updated: all on version 2",
        }
        assert [e["done"] for e in seen] == sorted(e["done"] for e in seen)


async def test_an_instance_counts_only_once_its_health_check_passes(tmp_path: Path) -> None:
    from healthkit import HttpService

    http = HttpService()
    http.status["/v2/web@1"] = "503 Service Unavailable"
    async with http.running(), manual(tmp_path) as c:
        checked = f"HealthCheck=http://127.0.0.1:{http.port}/{{}}/%p@%i\n"
        v1 = V1 + "\n[X-Fleet]\n" + checked.format("v1")
        v2 = V2 + "\n[X-Fleet]\n" + checked.format("v2")
        names = await start_instances(c, 2, v1)
        await rollout(c, "web@.service", v2, minHealthyTime=1, healthyDeadline=30, autoRevert=True)

        async def unhealthy() -> bool:
            targets = (await record(c, "web@.service"))["targets"]
            return bool(targets) and targets[0]["message"].startswith(
                "unhealthy: HTTP 503 Service Unavailable"
            )

        await c.wait_for(unhealthy, "the first instance active but unhealthy")
        assert c.running(names[0])
        c.advance(30)
        await c.wait_for(lambda: http.requests.get("/v1/web@1", 0) > 1, "checked on v1 again")

        async def back() -> bool:
            found = await record(c, "web@.service")
            return found["phase"] == "reverting" and found["targets"][0]["state"] == "healthy"

        await c.wait_for(back, "the first instance healthy on v1 again")
        c.advance(1)
        found = await wait_phase(c, "web@.service", "reverted")
        assert "unhealthy: HTTP 503 Service Unavailable" in found["failure"]
        assert http.requests.get("/v2/web@2", 0) == 0


GLOBAL = "\n[X-Fleet]\nGlobal=true\n"


async def entry_hashes(c: Cluster, name: str) -> dict[str, str]:
    return {e.machine: e.hash for e in await c.store.list_all_schedule() if e.name == name}


async def test_a_global_unit_rolls_machine_by_machine(tmp_path: Path) -> None:
    async with manual(tmp_path, machines=3) as c:
        await c.submit("g.service", V1 + GLOBAL)
        await c.wait_for(lambda: len(c.running("g.service")) == 3, "g on every machine")
        old, new = hash_of(V1 + GLOBAL), hash_of(V2 + GLOBAL)
        started = await rollout(c, "g.service", V2 + GLOBAL, minHealthyTime=2, healthyDeadline=30)
        assert [t["name"] for t in started["targets"]] == ["m1", "m2", "m3"]
        unit = await c.store.get_unit("g.service")
        assert unit is not None and unit.hash == new
        for moved in range(1, 4):

            async def one_more(moved: int = moved) -> bool:
                found = await record(c, "g.service")
                healthy = [t["name"] for t in found["targets"] if t["state"] == "healthy"]
                return (
                    len(healthy) == 1
                    and list((await entry_hashes(c, "g.service")).values()).count(new) == moved
                )

            await c.wait_for(one_more, f"{moved} machine(s) on the new file")
            assert sorted((await entry_hashes(c, "g.service")).values()) == sorted(
                [new] * moved + [old] * (3 - moved)
            )
            assert len(c.running("g.service")) == 3
            c.advance(2)
        found = await wait_phase(c, "g.service", "succeeded")
        assert set((await entry_hashes(c, "g.service")).values()) == {new}
        unit = await c.store.get_unit("g.service")
        assert unit is not None and unit.pinned == ()
        states = await c.states("g.service")
        assert {s.hash for s in states.values()} == {new} and len(states) == 3
        assert found["message"] == "3 of 3 updated: all on version 2"


async def test_a_global_unit_s_broken_version_is_reverted(tmp_path: Path) -> None:
    async with manual(tmp_path, machines=3) as c:
        await c.submit("g.service", V1 + GLOBAL)
        await c.wait_for(lambda: len(c.running("g.service")) == 3, "g on every machine")
        old = hash_of(V1 + GLOBAL)
        await rollout(
            c,
            "g.service",
            BROKEN + GLOBAL,
            minHealthyTime=1,
            healthyDeadline=20,
            autoRevert=True,
        )

        async def m1_failing() -> bool:
            found = await record(c, "g.service")
            return "failed/failed on m1" in found["targets"][0]["message"]

        await c.wait_for(m1_failing, "the broken file failing on m1")
        assert sorted(c.running("g.service")) == ["m2", "m3"]
        c.advance(20)
        await c.wait_for(lambda: len(c.running("g.service")) == 3, "m1 back on the old file")

        async def m1_healthy() -> bool:
            return (await record(c, "g.service"))["targets"][0]["state"] == "healthy"

        await c.wait_for(m1_healthy, "m1 healthy again in the revert")
        c.advance(1)
        found = await wait_phase(c, "g.service", "reverted")
        assert set((await entry_hashes(c, "g.service")).values()) == {old}
        unit = await c.store.get_unit("g.service")
        assert unit is not None and unit.hash == old and unit.pinned == ()
        assert states_of(found) == {"m1": "done", "m2": "skipped", "m3": "skipped"}


async def schedule_history(c: Cluster, since: int, name: str) -> list[tuple[str, str, str]]:
    """The schedule writes of ``name`` after revision ``since``: (put|delete, machine, the
    machine its entry says it moves from)."""
    _, now = await c.registry.get_prefix("/fleet/version")
    found: list[tuple[str, str, str]] = []
    # The whole prefix, so the watch reaches revision ``now`` whichever key was written last.
    async for batch in c.registry.watch_prefix(c.store.keys.prefix, since + 1):
        for event in batch:
            if not event.key.startswith(c.store.keys.schedule):
                continue
            machine, unit = c.store.keys.split(event.key, c.store.keys.schedule)
            if unit != name:
                continue
            if event.value:
                entry = c.store.schedule_from(event.key, event.value)
                found.append(("put", machine, entry.moving_from))
            else:
                found.append(("delete", machine, ""))
        if batch[-1].mod_revision >= now:
            break
    return found


async def test_start_first_runs_the_new_copy_elsewhere_before_the_old_one_stops(
    tmp_path: Path,
) -> None:
    async with manual(tmp_path, machines=2) as c:
        await c.submit("db.service", V1)
        await c.wait_for(lambda: len(c.running("db.service")) == 1, "db running")
        [old] = c.running("db.service")
        _, since = await c.registry.get_prefix("/fleet/version")
        started = await rollout(
            c, "db.service", V2, startFirst=True, minHealthyTime=5, healthyDeadline=60
        )
        assert started["startFirst"] is True
        fewest = 1

        async def healthy() -> bool:
            nonlocal fewest
            fewest = min(fewest, len(c.running("db.service")))
            return states_of(await record(c, "db.service")) == {"db.service": "healthy"}

        await c.wait_for(healthy, "the new copy healthy")
        c.advance(5)
        await wait_phase(c, "db.service", "succeeded")
        c.advance(1)  # the engine looks at moves in flight on its clock
        await c.wait_for(lambda: len(c.running("db.service")) == 1, "the old copy stopped")
        [new] = c.running("db.service")
        assert new != old and fewest == 1  # never down
        assert await entry_hashes(c, "db.service") == {new: hash_of(V2)}
        # The new copy was scheduled first, marked as moving from the old machine, and
        # the old entry went after it.
        history = await schedule_history(c, since, "db.service")
        assert history.index(("put", new, old)) < history.index(("delete", old, ""))
        unit = await c.store.get_unit("db.service")
        assert unit is not None and unit.pinned == () and unit.hash == hash_of(V2)


async def test_a_broken_start_first_keeps_the_unit_up_on_its_old_file(tmp_path: Path) -> None:
    async with manual(tmp_path, machines=2) as c:
        await c.submit("db.service", V1)
        await c.wait_for(lambda: len(c.running("db.service")) == 1, "db running")
        [old] = c.running("db.service")
        await rollout(
            c, "db.service", BROKEN, startFirst=True, minHealthyTime=1, healthyDeadline=20
        )
        fewest = 1

        async def failing() -> bool:
            nonlocal fewest
            fewest = min(fewest, len(c.running("db.service")))
            found = await record(c, "db.service")
            return "failed/failed" in found["targets"][0]["message"]

        await c.wait_for(failing, "the new copy failing on the other machine")
        assert c.running("db.service") == [old]
        c.advance(20)

        async def back() -> bool:
            nonlocal fewest
            fewest = min(fewest, len(c.running("db.service")))
            return states_of(await record(c, "db.service")) == {"db.service": "healthy"}

        await c.wait_for(back, "the unit counted on its old file again")
        c.advance(1)
        found = await wait_phase(c, "db.service", "reverted")
        assert found["failure"].startswith("db.service: not healthy within 20s")
        c.advance(1)

        async def one_left() -> bool:
            # The failed copy is not active: one runs before its entry is dropped.
            entries = await entry_hashes(c, "db.service")
            return len(c.running("db.service")) == 1 and set(entries.values()) == {hash_of(V1)}

        await c.wait_for(one_left, "one copy left, every entry on the old file")
        assert fewest == 1  # the old copy ran until a copy on the old file was up


async def test_start_first_is_refused_where_it_cannot_apply(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=2) as c:
        await c.submit("once.service", V1 + "\n[X-Fleet]\nAtMostOnce=true\n")
        await start_instances(c, 1)
        for unit, text, words in (
            ("once.service", V2 + "\n[X-Fleet]\nAtMostOnce=true\n", "which AtMostOnce forbids"),
            ("web@.service", V2, "start-first applies to a plain unit"),
            ("web@1.service", V2 + "\n[X-Fleet]\nMachineOf=once.service\n", "MachineOf="),
        ):
            response = await c.api.post(
                "/rollouts", json={"unit": unit, "options": options(text), "startFirst": True}
            )
            assert response.status_code == 400, response.text
            assert words in response.json()["error"]["message"]
