"""fleetctl's blocking wait rides out a fleetd that is briefly unreachable (a restart):
the real API app over an in-process transport that refuses some requests."""

from __future__ import annotations

import httpx
import pytest
from apikit import SERVICE, add_machine, make_app, new_store, options_of, report, schedule

from fleetd.cli import backend as backend_module
from fleetd.cli.backend import _RETRIES, ApiBackend
from fleetd.cli.progress import Outcome, Waiter
from fleetd.errors import ApiError, Unavailable
from fleetd.model import DesiredState

M1 = "a" * 32


class Flaky(httpx.AsyncBaseTransport):
    """The app, except that requests number ``down`` (1-based) fail as ``failure`` says."""

    def __init__(self, app: object, down: set[int], failure: str) -> None:
        self.inner = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        self.down = down
        self.failure = failure
        self.count = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.count += 1
        if self.count in self.down:
            if self.failure == "refused":
                raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
            status = int(self.failure)
            body = {"error": {"code": status, "message": "registry unavailable"}}
            return httpx.Response(status, json=body, request=request)
        return await self.inner.handle_async_request(request)


async def _launched_unit() -> tuple[object, str]:
    store = new_store()
    await add_machine(store, M1, ip="10.0.0.1")
    app = make_app(store)
    name = "web.service"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://f") as c:
        body = {"name": name, "desiredState": "launched", "options": options_of(SERVICE)}
        assert (await c.put(f"/fleet/v1/units/{name}", json=body)).status_code == 201
    await schedule(store, M1, name)
    await report(store, M1, name)
    return app, name


@pytest.mark.parametrize("failure", ["refused", "503"])
async def test_wait_retries_while_fleetd_is_unavailable(
    failure: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, name = await _launched_unit()
    monkeypatch.setattr(backend_module, "BUSY_PAUSES", (0.0, 0.0))
    # Both are retried inside one request (a refused connection _RETRIES times, a 503
    # once per BUSY_PAUSES) before the wait sees them, so the outage outlasts two requests.
    tries = _RETRIES if failure == "refused" else len(backend_module.BUSY_PAUSES) + 1
    down = set(range(1, 2 * tries + 1))
    transport = Flaky(app, down=down, failure=failure)
    backend = ApiBackend("http://fleet:1", transport=transport)
    done: list[Outcome] = []
    try:
        outcomes = await Waiter(backend, DesiredState.LAUNCHED, attempts=10).wait(
            [name], done.append
        )
    finally:
        await backend.close()
    assert [o.ok for o in outcomes] == [True] and done == outcomes
    assert outcomes[0].message.startswith(f"Unit {name} started on ")
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 1 and "still waiting" in warnings[0]  # one per outage


async def test_wait_gives_up_after_its_attempts_while_unavailable() -> None:
    app, name = await _launched_unit()
    backend = ApiBackend("http://fleet:1", transport=Flaky(app, set(range(100)), "refused"))
    try:
        outcomes = await Waiter(backend, DesiredState.LAUNCHED, attempts=3).wait(
            [name], lambda _o: None
        )
    finally:
        await backend.close()
    assert not outcomes[0].ok and "after 3 attempt(s)" in outcomes[0].message


async def test_other_errors_still_end_the_wait() -> None:
    app, name = await _launched_unit()
    backend = ApiBackend("http://fleet:1", transport=Flaky(app, {1}, "500"))
    try:
        with pytest.raises(ApiError) as caught:
            await Waiter(backend, DesiredState.LAUNCHED, attempts=10).wait([name], print)
    finally:
        await backend.close()
    assert not isinstance(caught.value, Unavailable) and caught.value.status == 500


async def test_a_503_is_retried_within_one_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """fleetd answers 503 while its etcd elects a leader: a GET tries again for a while."""
    monkeypatch.setattr(backend_module, "BUSY_PAUSES", (0.0,) * 5)
    app, name = await _launched_unit()
    transport = Flaky(app, down={1, 2, 3, 4, 5}, failure="503")
    backend = ApiBackend("http://fleet:1", transport=transport)
    try:
        unit = await backend.get_unit(name)
        assert unit is not None and unit.name == name
        transport.down, transport.count = set(range(1, 7)), 0  # one 503 too many
        with pytest.raises(Unavailable, match="registry unavailable"):
            await backend.get_unit(name)
    finally:
        await backend.close()


async def test_a_refused_connection_is_retried_within_one_request() -> None:
    app, name = await _launched_unit()
    transport = Flaky(app, down={1, 2}, failure="refused")
    backend = ApiBackend("http://fleet:1", transport=transport)
    try:
        unit = await backend.get_unit(name)
    finally:
        await backend.close()
    assert unit is not None and unit.name == name
