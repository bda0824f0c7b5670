"""The audit log: one record per write request (done or refused), none for reads (``POST
/plan`` included), and a count per caller in /metrics; a record names the token, never holds
its secret."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import leakcheck
import pytest
from apikit import make_app, new_store, options_of, samples
from hostile import M1, SERVICE, seed

from fleetd.api.audit import AUDIT_MESSAGE_ID
from fleetd.api.serve import ApiServer
from fleetd.tokens import TokenSource, digest

V1 = "/fleet/v1"
OPS = leakcheck.secret("operate-secret-0123456789abcdef")
VIEWER = leakcheck.secret("read-secret-0123456789abcdef")


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"ops operate sha256:{digest(OPS)}\nviewer read {VIEWER}\n")
    store = new_store()
    await seed(store)
    app = make_app(store)
    sock = f"{tmp_path}/api.sock"
    server = ApiServer(
        app,
        [f"unix://{sock}", "tcp://127.0.0.1:0"],
        tokens=TokenSource(str(tokens)),
        refused=app.state.audit.refused,
        insecure_http=True,
    )
    server.bind()
    tcp = next(a for a in server.addresses if a.startswith("tcp://"))
    task = asyncio.create_task(server.run())
    try:
        yield "http://" + tcp[len("tcp://") :], sock
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "fleetd.audit"]


async def test_writes_are_audited_reads_are_not(
    api: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    base, sock = api
    caplog.set_level(logging.INFO, logger="fleetd.audit")
    async with httpx.AsyncClient(base_url=base, verify=False) as client:
        as_ops = {"Authorization": f"Bearer {OPS}"}
        assert (await client.get(f"{V1}/units", headers=as_ops)).status_code == 200
        r = await client.post(
            f"{V1}/plan",
            json={"units": [{"name": "web.service", "desiredState": "launched"}]},
            headers={"Authorization": f"Bearer {VIEWER}"},
        )
        assert r.status_code == 200, r.text  # a plan is a read: it writes nothing
        assert records(caplog) == []
        r = await client.put(
            f"{V1}/units/web.service", json={"desiredState": "launched"}, headers=as_ops
        )
        assert r.status_code == 204
        r = await client.put(
            f"{V1}/units/web.service",
            json={"desiredState": "inactive"},
            headers={"Authorization": f"Bearer {VIEWER}"},
        )
        assert r.status_code == 403
        r = await client.delete(f"{V1}/units/web.service")
        assert r.status_code == 401
        r = await client.put(
            f"{V1}/units",
            json={
                "units": [{"name": "web.service", "desiredState": "loaded"}, {"name": "x.service"}]
            },
            headers=as_ops,
        )
        assert r.status_code == 409
        r = await client.post(f"{V1}/machines/{M1}/cordon", headers=as_ops)
        assert r.status_code == 200
        r = await client.post(f"{V1}/rollouts", json={"unit": "web.service"}, headers=as_ops)
        assert r.status_code == 403
        r = await client.post(f"{V1}/rollouts/web.service/pause", headers=as_ops)
        assert r.status_code == 404
        r = await client.patch(f"{V1}/config", json={"strategy": "spread"}, headers=as_ops)
        assert r.status_code == 403  # the cluster settings need the admin role
        metrics = (await client.get("/metrics", headers=as_ops)).text
    transport = httpx.AsyncHTTPTransport(uds=sock)
    async with httpx.AsyncClient(transport=transport, base_url="http://fleet") as client:
        r = await client.put(f"{V1}/units/new.service", json={"options": options_of(SERVICE)})
        assert r.status_code == 201
        r = await client.post(f"{V1}/rollouts", json={"unit": "new.service", "maxParallel": 0})
        assert r.status_code == 400
        r = await client.patch(f"{V1}/config", json={"guard_hold": 40})
        assert r.status_code == 200

    messages = [r.getMessage() for r in records(caplog)]
    assert messages == [
        f"audit caller=ops remote=127.0.0.1 method=PUT path={V1}/units/web.service "
        "units=web.service status=204",
        f"audit caller=viewer remote=127.0.0.1 method=PUT path={V1}/units/web.service "
        "units=web.service status=403",
        f"audit caller=- remote=127.0.0.1 method=DELETE path={V1}/units/web.service "
        "units=web.service status=401",
        f"audit caller=ops remote=127.0.0.1 method=PUT path={V1}/units "
        "units=web.service,x.service status=409",
        f"audit caller=ops remote=127.0.0.1 method=POST path={V1}/machines/{M1}/cordon "
        "units=- status=200",
        f"audit caller=ops remote=127.0.0.1 method=POST path={V1}/rollouts units=- status=403",
        f"audit caller=ops remote=127.0.0.1 method=POST path={V1}/rollouts/web.service/pause "
        "units=web.service status=404",
        f"audit caller=ops remote=127.0.0.1 method=PATCH path={V1}/config units=- status=403",
        f'audit caller="unix socket" remote=- method=PUT path={V1}/units/new.service '
        "units=new.service status=201",
        f'audit caller="unix socket" remote=- method=POST path={V1}/rollouts '
        "units=new.service status=400",
        f'audit caller="unix socket" remote=- method=PATCH path={V1}/config units=- status=200',
    ]
    fields = records(caplog)[0].journal_fields  # type: ignore[attr-defined]
    assert fields == {
        "FLEETD_CALLER": "ops",
        "FLEETD_REMOTE": "127.0.0.1",
        "FLEETD_METHOD": "PUT",
        "FLEETD_PATH": f"{V1}/units/web.service",
        "FLEETD_UNITS": "web.service",
        "FLEETD_STATUS": "204",
        "MESSAGE_ID": AUDIT_MESSAGE_ID,
    }
    written = samples(metrics)
    route = f'method="PUT",route="{V1}/units/{{name}}"'
    assert written[f'fleetd_api_writes_total{{caller="ops",code="204",{route}}}'] == 1
    assert 'fleetd_api_writes_total{caller="-",code="401",method="DELETE"' in metrics
    for secret in (OPS, VIEWER):
        assert all(secret not in m for m in messages)
        assert secret not in metrics
