"""``/metrics``: what the exposition names and counts, that prometheus-client's parser reads
it, and that a scrape reads no range of the registry where the engine leads (and at most
one set per TTL elsewhere).

The engine is the real one over the in-memory registry (engine_harness.py); the agent is
the real one in the in-process cluster, on fake systemd (fleetd/testing/cluster.py).
Range reads are counted by wrapping the registry's ``get_prefix``, the only range read
the Registry protocol has, in the scrape's context only (a running engine reads too).
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from pathlib import Path

import pytest
from apikit import add_machine, client_for, make_app, new_store, samples, submit
from prometheus_client.parser import text_string_to_metric_families

from fleetd.agent.agent import Agent
from fleetd.model import DesiredState, MachineFlags
from fleetd.readings import EngineReadings, agent_reading
from fleetd.registry.base import KeyValue
from fleetd.registry.memory import MemoryRegistry
from fleetd.testing.cluster import ManualClock, cluster
from tests.component.engine_harness import Harness, harness, unit_text

UNIT = "a.service"
ROUTE = "/fleet/v1/units/{name}"


def range_reads(registry: MemoryRegistry, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The prefixes ``registry`` is range-read under from now on by the calling task and
    the tasks it starts (appended as they are).  Tasks started before, such as a running
    engine's maintenance driver taking a step, read on their own schedule: not counted."""
    reads: list[str] = []
    read = registry.get_prefix
    mine = ContextVar("range_reads", default=False)  # one per call: nothing carries over
    mine.set(True)

    async def counted(prefix: str) -> tuple[list[KeyValue], int]:
        if mine.get():
            reads.append(prefix)
        return await read(prefix)

    monkeypatch.setattr(registry, "get_prefix", counted)
    return reads


async def test_requests_are_counted_and_timed_by_route_template_in_each_apps_registry() -> None:
    store = new_store()
    app, other = make_app(store), make_app(store)
    async with client_for(app) as client, client_for(other) as other_client:
        assert (await client.get(f"/fleet/v1/units/{UNIT}")).status_code == 404
        assert (await submit(client, UNIT)).status_code == 201
        assert (await client.get(f"/fleet/v1/units/{UNIT}")).status_code == 200
        assert (await client.get("/no/such/path")).status_code == 404
        text = (await client.get("/metrics")).text
        other_text = (await other_client.get("/metrics")).text

    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["fleetd_api_requests"].type == "counter"
    assert families["fleetd_api_request_duration_seconds"].type == "histogram"
    metrics = samples(text)
    for code, method in (("404", "GET"), ("201", "PUT"), ("200", "GET")):
        labels = f'code="{code}",method="{method}",route="{ROUTE}"'
        assert metrics[f"fleetd_api_requests_total{{{labels}}}"] == 1
        assert metrics[f"fleetd_api_request_duration_seconds_count{{{labels}}}"] == 1
        bucket = f'code="{code}",le="+Inf",method="{method}",route="{ROUTE}"'
        assert metrics[f"fleetd_api_request_duration_seconds_bucket{{{bucket}}}"] == 1
    assert metrics['fleetd_api_requests_total{code="404",method="GET",route="other"}'] == 1
    routes = {
        s.labels["route"] for f in families.values() for s in f.samples if "route" in s.labels
    }
    assert routes == {ROUTE, "other"}  # never a raw path (no unbounded label values)
    assert not any(name.endswith("_created") for name in metrics)
    # This process, from prometheus-client's collectors.
    assert metrics["process_cpu_seconds_total"] > 0
    assert metrics["process_resident_memory_bytes"] > 0
    assert any(name.startswith("python_info{") for name in metrics)
    # The other app counted only its own scrape.
    other_routes = {
        key for key in samples(other_text) if key.startswith("fleetd_api_requests_total")
    }
    assert other_routes == set()


async def started(h: Harness) -> EngineReadings:
    """Two machines, four units (one not placeable), an engine that placed them."""
    await h.machine("m1")
    await h.machine("m2")
    for i in range(3):
        await h.submit(f"web@{i}.service", unit_text(Conflicts="web@*"))
    await h.submit("idle.service", desired=DesiredState.LOADED)
    engine = h.engine()
    h.start(engine)

    async def settled() -> bool:
        done = engine.metrics.reconciles_total > 0
        return done and len(await h.where()) == 3 and len(await h.reasons()) == 1

    await h.wait_for(settled, "3 units placed, 1 with a reason")
    return EngineReadings(engine)


async def test_where_the_engine_leads_a_scrape_reads_no_range_of_the_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with harness() as h:
        readings = await started(h)
        app = make_app(h.store, engine=readings)
        await h.flag("m2", MachineFlags(unschedulable=True))
        async with client_for(app) as client:

            async def flagged() -> bool:
                text = (await client.get("/metrics")).text
                return samples(text).get("fleetd_machines_unschedulable") == 1

            await h.wait_for(flagged, "the engine's model has m2 cordoned")
            reads = range_reads(h.registry, monkeypatch)
            metrics = samples((await client.get("/metrics")).text)
            assert reads == []
            assert metrics['fleetd_units{desired="launched"}'] == 3
            assert metrics['fleetd_units{desired="loaded"}'] == 1
            assert metrics['fleetd_units{desired="inactive"}'] == 0
            assert metrics["fleetd_machines"] == 2
            assert metrics["fleetd_scheduled_units"] == 3
            assert metrics["fleetd_units_unplaceable"] == 1
            assert metrics["fleetd_registry_up"] == 1
            assert metrics["fleetd_engine_leader"] == 1
            assert metrics["fleetd_engine_leader_changes_total"] == 1
            assert metrics["fleetd_engine_units_placed_total"] == 3
            assert metrics["fleetd_engine_units_unplaceable"] == 1
            assert metrics["fleetd_engine_tasks_applied_total"] == 4  # 3 entries, 1 reason

            await h.submit("b.service")

            async def placed() -> bool:
                return "b.service" in await h.where()

            await h.wait_for(placed, "b.service placed")
            reads.clear()
            metrics = samples((await client.get("/metrics")).text)
            assert reads == []
        m = readings.engine.metrics
        assert metrics['fleetd_units{desired="launched"}'] == 4
        assert metrics["fleetd_scheduled_units"] == 4
        assert metrics["fleetd_engine_units_placed_total"] == m.placements_total == 4
        full, scoped = m.full_reconciles_total, m.reconciles_total - m.full_reconciles_total
        assert metrics['fleetd_engine_passes_total{kind="full"}'] == full >= 1
        assert metrics['fleetd_engine_passes_total{kind="scoped"}'] == scoped
        assert metrics["fleetd_engine_pass_seconds_count"] == full + scoped
        assert metrics["fleetd_engine_pass_seconds_sum"] == pytest.approx(m.reconcile_seconds_total)
        assert metrics["fleetd_engine_write_transactions_total"] == m.write_transactions_total


async def test_elsewhere_the_cluster_is_read_once_per_ttl(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = new_store()
    clock = ManualClock()
    registry = store.registry
    assert isinstance(registry, MemoryRegistry)
    await add_machine(store, "1" * 32)
    async with harness() as h:  # an engine that never led: the registry is read
        app = make_app(store, engine=EngineReadings(h.engine()), cluster_ttl=10, monotonic=clock)
        async with client_for(app) as client:
            await submit(client, UNIT, desired="launched")
            reads = range_reads(registry, monkeypatch)
            first, second = await asyncio.gather(client.get("/metrics"), client.get("/metrics"))
            assert len(reads) == 5  # units, schedule, machines, flags, placements: once
            for r in (first, second):
                assert samples(r.text)['fleetd_units{desired="launched"}'] == 1

            await submit(client, "b.service", desired="launched")
            reads.clear()
            clock.advance(9.9)
            metrics = samples((await client.get("/metrics")).text)
            assert reads == []
            assert metrics['fleetd_units{desired="launched"}'] == 1  # as read 9.9 s ago

            clock.advance(0.1)
            metrics = samples((await client.get("/metrics")).text)
            assert len(reads) == 5
            assert metrics['fleetd_units{desired="launched"}'] == 2
            assert metrics["fleetd_engine_leader"] == 0

            registry.set_available(False)
            clock.advance(10)
            metrics = samples((await client.get("/metrics")).text)
            assert metrics["fleetd_registry_up"] == 0
            assert "fleetd_machines" not in metrics  # not counted, rather than stale


WEB = "[Unit]\nDescription=web\n\n[Service]\nExecStart=/bin/sleep 1000\n"


async def test_agent_metrics_follow_the_agent_and_its_systemd(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=1) as c:
        node = c.nodes["m1"]
        assert isinstance(c.clock, ManualClock) and c.engine is not None

        def agent() -> Agent:
            assert node.agent is not None
            return node.agent

        app = make_app(
            c.store,
            machine_id="m1",
            systemd=lambda: agent().systemd,
            agent=lambda: agent_reading(agent()),
            engine=EngineReadings(c.engine),
        )
        async with client_for(app) as client:

            async def scrape() -> dict[str, float]:
                return samples((await client.get("/metrics")).text)

            node.systemd.fail("LinkUnitFiles", "org.freedesktop.DBus.Error.AccessDenied")
            await c.submit("web.service", WEB)
            await c.wait_for(lambda: c.running("web.service") == ["m1"], "web runs after a retry")

            async def reported(state: str) -> bool:
                return (await scrape()).get(f'fleetd_agent_units{{active="{state}"}}') == 1

            await c.wait_for(lambda: reported("active"), "web active in m1's metrics")
            metrics = await scrape()
            assert metrics["fleetd_agent_systemd_connected"] == 1
            assert metrics["fleetd_agent_reconcile_errors_total"] == 1  # the failed link
            assert metrics["fleetd_agent_reconcile_passes_total"] == agent().reconciler.passes
            assert metrics["fleetd_agent_reconcile_passes_total"] >= 2
            assert metrics["fleetd_agent_lease_ttl_seconds"] == c.ttl
            age = metrics["fleetd_agent_lease_age_seconds"]
            assert 0 <= age < c.ttl / 2  # a keep-alive is due every TTL/2

            c.clock.advance(7.5)  # the manual clock: no keep-alive came meanwhile
            assert (await scrape())["fleetd_agent_lease_age_seconds"] == age + 7.5

            node.systemd.kill("web.service")
            await c.wait_for(lambda: reported("failed"), "web failed in m1's metrics")
            assert 'fleetd_agent_units{active="active"}' not in await scrape()

            node.systemd.set_bus(False)

            async def cut_off() -> bool:
                metrics = await scrape()
                return (
                    metrics["fleetd_agent_systemd_connected"] == 0
                    and metrics["fleetd_machines_systemd_unreachable"] == 1
                )

            await c.wait_for(cut_off, "m1 cut off from systemd, in the agent and the cluster")
