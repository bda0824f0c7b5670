"""Health checks in the in-process cluster (fleetd/testing/cluster.py): the real agent
runs a unit's HealthCheck= against a real local server while the unit is active, and
publishes its health in ``states/<machine>/<name>``, from where the API's ``/state`` and
the event stream carry it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from healthkit import HttpService, closed_port

from fleetd.api.routes.events import classify
from fleetd.model import DesiredState, Health, UnitState
from fleetd.registry.base import WatchEvent
from fleetd.testing.cluster import Cluster, cluster

SERVICE = "[Unit]\nDescription=web\n\n[Service]\nExecStart=/bin/sleep 1000\n"


def unit(*fleet: str) -> str:
    return SERVICE + "\n[X-Fleet]\n" + "\n".join(fleet) + "\n" if fleet else SERVICE


@pytest.fixture
async def http() -> AsyncIterator[HttpService]:
    service = HttpService()
    async with service.running():
        yield service


async def state_of(c: Cluster, name: str) -> UnitState | None:
    states = list((await c.states(name)).values())
    return states[0] if states else None


async def health_is(c: Cluster, name: str, health: Health) -> bool:
    state = await state_of(c, name)
    return state is not None and state.health is health


async def test_a_passing_check_is_healthy_a_failing_one_unhealthy_with_its_message(
    tmp_path: Path, http: HttpService
) -> None:
    async with cluster(tmp_path, machines=1) as c:
        await c.submit("web.service", unit(f"HealthCheck=http://127.0.0.1:{http.port}/health"))
        await c.wait_for(lambda: health_is(c, "web.service", Health.HEALTHY), "web healthy")
        state = await state_of(c, "web.service")
        assert state is not None and state.active_state == "active"
        assert state.health_message == "" and state.health_since > 0

        http.status["/health"] = "500 Internal Server Error"
        c.advance(5.0)
        await c.wait_for(lambda: health_is(c, "web.service", Health.UNHEALTHY), "unhealthy")
        state = await state_of(c, "web.service")
        assert state is not None
        assert state.health_message == "HTTP 500 Internal Server Error"

        body = (await c.api.get("/state", params={"unitName": "web.service"})).json()
        [view] = body["states"]
        assert view["health"] == "unhealthy"
        assert view["healthMessage"] == "HTTP 500 Internal Server Error"
        assert view["healthSince"].endswith("Z")
        assert view["systemdActiveState"] == "active"


async def test_a_unit_without_a_check_is_healthy_and_a_stopped_one_unknown_and_unchecked(
    tmp_path: Path, http: HttpService
) -> None:
    async with cluster(tmp_path, machines=1) as c:
        await c.submit("plain.service", unit())
        await c.submit("web.service", unit(f"HealthCheck=http://127.0.0.1:{http.port}/"))
        # Checked on the same interval: each of its checks shows a round of due checks ran.
        await c.submit("beat.service", unit(f"HealthCheck=http://127.0.0.1:{http.port}/beat"))
        await c.wait_for(lambda: health_is(c, "plain.service", Health.HEALTHY), "plain healthy")
        await c.wait_for(lambda: health_is(c, "web.service", Health.HEALTHY), "web healthy")
        await c.wait_for(lambda: health_is(c, "beat.service", Health.HEALTHY), "beat healthy")
        await c.set_desired("web.service", DesiredState.LOADED)
        await c.wait_for(lambda: health_is(c, "web.service", Health.UNKNOWN), "stopped: unknown")
        checked = http.requests.get("/", 0)
        for _ in range(3):
            beats = http.requests["/beat"]
            c.advance(5.0)
            await c.wait_for(lambda b=beats: http.requests["/beat"] > b, "beat checked again")
        assert http.requests.get("/", 0) == checked
        state = await state_of(c, "web.service")
        assert state is not None and state.active_state == "inactive"


async def test_health_is_published_on_change_only_and_the_event_stream_carries_it(
    tmp_path: Path, http: HttpService
) -> None:
    async with cluster(tmp_path, machines=1) as c:
        _, revision = await c.store.registry.get_prefix(c.store.keys.states)
        await c.submit("web.service", unit(f"HealthCheck=http://127.0.0.1:{http.port}/"))
        await c.wait_for(lambda: health_is(c, "web.service", Health.HEALTHY), "healthy")
        agent = c.nodes["m1"].agent
        assert agent is not None
        batches = agent.publisher.batches
        for i in range(3):  # three more passing checks: nothing to write
            c.advance(5.0)
            await c.wait_for(lambda i=i: http.requests["/"] == i + 2, "a check ran")
        # Then one that fails: its change is the first thing written since "healthy".
        http.status["/"] = "500 Internal Server Error"
        c.advance(5.0)
        await c.wait_for(lambda: health_is(c, "web.service", Health.UNHEALTHY), "unhealthy")
        assert agent.publisher.batches == batches + 1

        events: list[WatchEvent] = []

        async def collect() -> None:
            async for batch in c.store.registry.watch_prefix(c.store.keys.states, revision + 1):
                events.extend(batch)

        watcher = asyncio.create_task(collect())
        try:
            await c.wait_for(
                lambda: any(
                    (e := classify(c.store, ev)) is not None and e[1].get("health") == "healthy"
                    for ev in events
                ),
                "a state event saying healthy",
            )
        finally:
            watcher.cancel()
        kind, data = next(
            e
            for ev in events
            if (e := classify(c.store, ev)) is not None and e[1].get("health") == "healthy"
        )
        assert kind == "state"
        assert data["name"] == "web.service" and "healthMessage" not in data
        assert data["healthSince"].endswith("Z")
        assert data["systemdActiveState"] == "active" and data["action"] == "put"


async def test_grace_and_a_tcp_check_in_the_agent(tmp_path: Path) -> None:
    port = closed_port()
    async with cluster(tmp_path, machines=1) as c:
        await c.submit(
            "db.service",
            unit(f"HealthCheck=tcp://127.0.0.1:{port}", "HealthCheckGrace=10s"),
        )

        async def failing_in_grace() -> bool:
            state = await state_of(c, "db.service")
            return state is not None and state.health_message == "connection refused"

        await c.wait_for(failing_in_grace, "a failed check within grace")
        assert await health_is(c, "db.service", Health.UNKNOWN)
        c.advance(10.0)
        await c.wait_for(lambda: health_is(c, "db.service", Health.UNHEALTHY), "unhealthy")


async def test_the_openapi_describes_the_health_fields(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=1, engine=False) as c:
        spec = (await c.api.get("http://fleetd/openapi.json")).json()
        fields = spec["components"]["schemas"]["UnitState"]["properties"]
        health = fields["health"]["anyOf"][0]
        assert health["enum"] == ["healthy", "unhealthy", "unknown"]
        assert "HealthCheckGrace" in fields["health"]["description"]
        assert {"healthMessage", "healthSince"} <= fields.keys()
