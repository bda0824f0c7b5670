"""fleetctl writes many units with ``PUT /units`` (chunked), and one PUT each without it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from apikit import make_app, new_store
from clikit import ServerThread
from clirun import serving
from starlette.types import Receive, Scope, Send
from typer.testing import CliRunner

from fleetd.api.service.commands import UnitChange
from fleetd.api.wire import UnitOption
from fleetd.cli import backend as backend_module
from fleetd.cli.backend import ApiBackend, StoreBackend
from fleetd.cli.main import app
from fleetd.errors import InvalidInput
from fleetd.model import DesiredState

TEMPLATE = "[Unit]\nDescription=App %i\n\n[Service]\nExecStart=/bin/sleep %i\n"
OPTIONS = [UnitOption(section="Service", name="ExecStart", value="/bin/sleep 1000")]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    with serving(tmp_path, inspected=False, page_size=100) as thread:
        yield thread


def _requests(server: ServerThread, method: str, route: str) -> int:
    with server.client() as client:
        text = client.get("/metrics").text
    total = 0
    for line in text.splitlines():
        wanted = f'method="{method}"' in line and f'route="{route}"' in line
        if line.startswith("fleetd_api_requests_total{") and wanted:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def test_start_of_many_instances_uses_bulk_requests(
    server: ServerThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backend_module, "BATCH_UNITS", 16)
    template = tmp_path / "app@.service"
    template.write_text(TEMPLATE)
    runner = CliRunner()
    args = ["--endpoint", server.endpoint]
    r = runner.invoke(app, [*args, "submit", str(template)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    names = [f"app@{i}.service" for i in range(40)]
    singles = _requests(server, "PUT", "/fleet/v1/units/{name}")
    r = runner.invoke(app, [*args, "start", "--block-attempts", "100", *names])
    assert r.exit_code == 0, r.output
    units = server.call(server.store.list_units())
    assert {u.name for u in units if u.desired is DesiredState.LAUNCHED} == set(names)
    assert _requests(server, "PUT", "/fleet/v1/units") == 3  # 40 in chunks of 16
    assert _requests(server, "PUT", "/fleet/v1/units/{name}") == singles
    r = runner.invoke(app, [*args, "stop", "--block-attempts", "100", *names])
    assert r.exit_code == 0, r.output
    assert _requests(server, "PUT", "/fleet/v1/units") == 6
    units = server.call(server.store.list_units())
    assert {u.desired for u in units if u.name in names} == {DesiredState.LOADED}


def test_bad_item_in_bulk_start_changes_nothing(server: ServerThread, tmp_path: Path) -> None:
    template = tmp_path / "app@.service"
    template.write_text(TEMPLATE)
    runner = CliRunner()
    args = ["--endpoint", server.endpoint]
    instances = ["app@1.service", "app@2.service"]
    for arg in (str(template), *instances):
        r = runner.invoke(app, [*args, "submit", arg], catch_exceptions=False)
        assert r.exit_code == 0, r.output
    r = runner.invoke(app, [*args, "start", *instances, "app@.service"])
    assert r.exit_code == 1
    assert "cannot start template app@.service" in r.output
    units = server.call(server.store.list_units())
    assert [u.name for u in units] == ["app@.service", *instances]
    assert {u.desired for u in units} == {DesiredState.INACTIVE}


class NoBulkRoute:
    """A fleetd without the extension: ``PUT /fleet/v1/units`` answers 405."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.refused = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (scope["method"], scope["path"]) == (
            "PUT",
            "/fleet/v1/units",
        ):
            self.refused += 1
            await send({"type": "http.response.start", "status": 405, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await self.inner(scope, receive, send)


async def test_api_backend_falls_back_to_one_put_each() -> None:
    store = new_store()
    wrapped = NoBulkRoute(make_app(store))
    backend = ApiBackend("http://fleet", transport=httpx.ASGITransport(app=wrapped))
    try:
        changes = [UnitChange(f"u{i}.service", OPTIONS, DesiredState.LOADED) for i in range(5)]
        await backend.write_units(changes, replace=False)
    finally:
        await backend.close()
    assert wrapped.refused == 1
    assert {u.desired for u in await store.list_units()} == {DesiredState.LOADED}
    assert len(await store.list_units()) == 5


async def test_api_backend_chunks_by_size(monkeypatch: pytest.MonkeyPatch) -> None:
    store = new_store()
    monkeypatch.setattr(backend_module, "BATCH_BYTES", 2000)
    backend = ApiBackend("http://fleet", transport=httpx.ASGITransport(app=make_app(store)))
    try:
        big = [UnitOption(section="Service", name="ExecStart", value="/bin/echo " + "x" * 900)]
        await backend.write_units([UnitChange(f"u{i}.service", big) for i in range(6)], False)
    finally:
        await backend.close()
    assert len(await store.list_units()) == 6
    assert len(backend_module._chunks([{"v": "x" * 900}] * 6, 500, 2000)) == 3


async def test_store_backend_writes_more_than_one_request_holds() -> None:
    store = new_store()
    backend = StoreBackend(store)
    changes = [UnitChange(f"u{i}.service", OPTIONS, DesiredState.LAUNCHED) for i in range(1100)]
    await backend.write_units(changes, replace=False)
    units = await store.list_units()
    assert len(units) == 1100 and {u.desired for u in units} == {DesiredState.LAUNCHED}
    with pytest.raises(InvalidInput, match="listed twice"):
        await backend.write_units([changes[0], changes[0]], replace=False)
