"""The agent's HealthMonitor (fleetd/agent/health.py) running real checks against local
services, on a manual clock: intervals, grace, inactive units, changes reported once,
bounded concurrency and one timer heap."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from healthkit import HttpService, closed_port

from fleetd.agent.health import HealthMonitor
from fleetd.healthcheck import HealthCheck, Probe
from fleetd.model import Health, UnitHealth
from fleetd.specifiers import HostFacts
from fleetd.testing.polling import until
from fleetd.unithealth import CheckResult

HOST = HostFacts("node1", "a" * 32, "b" * 32, "6.1")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.wall = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class Harness:
    def __init__(self, concurrency: int = 100, runner: object = None) -> None:
        self.clock = Clock()
        self.changes: list[tuple[str, UnitHealth]] = []
        kwargs = {"runner": runner} if runner is not None else {}
        self.monitor = HealthMonitor(
            host=HOST,
            on_change=lambda name, health: self.changes.append((name, health)),
            clock=self.clock,
            wall=lambda: self.clock.wall,
            concurrency=concurrency,
            **kwargs,  # type: ignore[arg-type]
        )

    def advance(self, seconds: float) -> None:
        self.clock.now += seconds
        self.clock.wall += seconds
        self.monitor.nudge()

    def health(self, name: str) -> Health:
        return self.monitor.health.get(name, UnitHealth()).health

    def of(self, name: str) -> list[UnitHealth]:
        return [h for n, h in self.changes if n == name]


@contextlib.asynccontextmanager
async def running(harness: Harness) -> AsyncIterator[Harness]:
    task = asyncio.create_task(harness.monitor.run())
    try:
        yield harness
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def http() -> AsyncIterator[HttpService]:
    service = HttpService()
    async with service.running():
        yield service


async def test_checks_run_at_activation_then_every_interval(http: HttpService) -> None:
    h = Harness()
    check = HealthCheck(f"http://127.0.0.1:{http.port}/", interval=5.0)
    async with running(h):
        h.monitor.observe("web.service", True, check)
        await until(lambda: h.health("web.service") is Health.HEALTHY, "healthy at once")
        assert http.requests == {"/": 1}
        h.advance(4.9)
        await asyncio.sleep(0.05)
        assert h.monitor.checks_run == 1  # not due yet
        h.advance(0.1)
        await until(lambda: h.monitor.checks_run == 2, "the second check after 5s")
        assert http.requests == {"/": 2}
        # passing again changes nothing: reported once
        assert h.of("web.service") == [UnitHealth(Health.HEALTHY, "", 1_700_000_000.0)]


async def test_a_failing_check_is_unhealthy_with_its_message_and_recovers(
    http: HttpService,
) -> None:
    h = Harness()
    async with running(h):
        h.monitor.observe("web.service", True, HealthCheck(f"http://127.0.0.1:{http.port}/"))
        await until(lambda: h.health("web.service") is Health.HEALTHY, "healthy")
        http.default = "503 Service Unavailable"
        for _ in range(3):  # three failures: one change
            h.advance(5.0)
            runs = h.monitor.checks_run
            await until(lambda runs=runs: h.monitor.checks_run == runs + 1, "a check ran")
        assert h.monitor.health["web.service"] == UnitHealth(
            Health.UNHEALTHY, "HTTP 503 Service Unavailable", 1_700_000_005.0
        )
        http.default = "200 OK"
        h.advance(5.0)
        await until(lambda: h.health("web.service") is Health.HEALTHY, "healthy again")
        assert [x.health for x in h.of("web.service")] == [
            Health.HEALTHY,
            Health.UNHEALTHY,
            Health.HEALTHY,
        ]


async def test_failures_within_grace_do_not_count() -> None:
    h = Harness()
    check = HealthCheck(f"tcp://127.0.0.1:{closed_port()}", interval=2.0, grace=5.0)
    async with running(h):
        h.monitor.observe("db.service", True, check)
        await until(lambda: h.monitor.checks_run == 1, "first check")
        assert h.monitor.health["db.service"] == UnitHealth(
            Health.UNKNOWN, "connection refused", 0.0
        )
        h.advance(2.0)
        await until(lambda: h.monitor.checks_run == 2, "second check, still in grace")
        assert h.health("db.service") is Health.UNKNOWN
        h.advance(3.0)  # 5 s after activation
        await until(lambda: h.health("db.service") is Health.UNHEALTHY, "unhealthy after grace")
        assert h.monitor.health["db.service"].message == "connection refused"


async def test_an_inactive_unit_is_unknown_and_not_checked(http: HttpService) -> None:
    h = Harness()
    async with running(h):
        h.monitor.observe("web.service", True, HealthCheck(f"http://127.0.0.1:{http.port}/"))
        await until(lambda: h.health("web.service") is Health.HEALTHY, "healthy")
        h.monitor.observe("web.service", False, HealthCheck(f"http://127.0.0.1:{http.port}/"))
        assert h.of("web.service")[-1] == UnitHealth(Health.UNKNOWN, "", 1_700_000_000.0)
        for _ in range(3):
            h.advance(5.0)
            await asyncio.sleep(0.02)
        assert http.requests == {"/": 1}
        assert h.monitor.checks_run == 1
        # active again: checked again, grace counted from now
        h.monitor.observe("web.service", True, HealthCheck(f"http://127.0.0.1:{http.port}/"))
        await until(lambda: h.health("web.service") is Health.HEALTHY, "healthy again")
        assert http.requests == {"/": 2}


async def test_a_unit_without_a_check_is_healthy_while_active() -> None:
    h = Harness()
    async with running(h):
        h.monitor.observe("plain.service", True, None)
        assert h.health("plain.service") is Health.HEALTHY
        h.monitor.observe("plain.service", True, None)
        h.monitor.observe("plain.service", False, None)
        h.monitor.observe("plain.service", False, None)
        assert [x.health for x in h.of("plain.service")] == [Health.HEALTHY, Health.UNKNOWN]
        assert h.monitor.checks_run == 0


async def test_a_stale_result_is_dropped_when_the_unit_stopped_meanwhile() -> None:
    gate = asyncio.Event()

    async def slow(probe: Probe, within: float) -> CheckResult:
        await gate.wait()
        return CheckResult(False, "boom")

    h = Harness(runner=slow)
    async with running(h):
        h.monitor.observe("web.service", True, HealthCheck("tcp://127.0.0.1:1"))
        await asyncio.sleep(0.02)
        h.monitor.observe("web.service", False, None)
        gate.set()
        await until(lambda: h.monitor.checks_run == 1, "the check finished")
        assert h.of("web.service") == []  # never judged: the result came too late


async def test_a_value_that_is_not_valid_on_this_machine_fails_the_check() -> None:
    h = Harness()
    h.monitor.host = HostFacts("bad host!", "a" * 32, "", "")
    async with running(h):
        h.monitor.observe("web.service", True, HealthCheck("tcp://%H:80"))
        await until(lambda: h.health("web.service") is Health.UNHEALTHY, "unhealthy")
        assert "bad host 'bad host!'" in h.monitor.health["web.service"].message


async def test_concurrency_is_bounded_and_waiting_is_one_heap() -> None:
    in_flight = 0
    most = 0
    release = asyncio.Event()

    async def counting(probe: Probe, within: float) -> CheckResult:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await release.wait()
        in_flight -= 1
        return CheckResult(True)

    h = Harness(concurrency=8, runner=counting)
    async with running(h):
        for i in range(200):
            h.monitor.observe(f"u{i}.service", True, HealthCheck("tcp://127.0.0.1:1"))
        await until(lambda: in_flight == 8, "8 checks in flight")
        await asyncio.sleep(0.02)
        assert most == 8
        release.set()
        await until(lambda: h.monitor.checks_run == 200, "every unit checked")
        assert most == 8
        # between checks nothing waits per unit: the monitor is one task
        before = len(asyncio.all_tasks())
        h.advance(1.0)  # nothing due
        await asyncio.sleep(0.02)
        assert len(asyncio.all_tasks()) == before
        assert len([t for t in asyncio.all_tasks() if "health" in t.get_name()]) == 0
