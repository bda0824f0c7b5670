"""The API answers each error of the tree with the table's status, and fleetctl's
backend and a forwarding peer read the answer back as the same error, its cause kept."""

from __future__ import annotations

import httpx
import pytest
from apikit import SERVICE, add_machine, client_for, make_app, new_store, options_of
from fastapi import FastAPI

from fleetd.api.errors import install_error_handlers
from fleetd.api.service.peers import Peers
from fleetd.cli.backend import ApiBackend
from fleetd.errors import (
    ApiError,
    Conflict,
    FleetError,
    Forbidden,
    InvalidInput,
    NotFound,
    PeerUnreachable,
    Unauthenticated,
    Unavailable,
    http_status,
)

RAISED: list[FleetError] = [
    InvalidInput("bad input"),
    Unauthenticated("who are you"),
    Forbidden("not you"),
    NotFound("no such thing"),
    Conflict("lost a race"),
    PeerUnreachable("the peer is down"),
    Unavailable("try later"),
    ApiError(429, "slow down"),
]


def _app_raising(error: FleetError) -> FastAPI:
    """An app whose every unit placement raises ``error``, with the API's error handlers."""
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/fleet/v1/units/{name}/placement")
    async def _raise(name: str) -> None:
        raise error

    return app


@pytest.mark.parametrize("error", RAISED, ids=lambda e: type(e).__name__)
async def test_the_api_answers_the_tables_status_in_fleets_shape(error: FleetError) -> None:
    async with client_for(_app_raising(error)) as client:
        response = await client.get("/fleet/v1/units/web.service/placement")
    assert response.status_code == http_status(error)
    assert response.json() == {"error": {"code": http_status(error), "message": str(error)}}


@pytest.mark.parametrize("error", RAISED, ids=lambda e: type(e).__name__)
async def test_fleetctl_reads_the_answer_back_as_the_same_error(error: FleetError) -> None:
    transport = httpx.ASGITransport(app=_app_raising(error))
    backend = ApiBackend("http://fleet:1", transport=transport)
    try:
        with pytest.raises(FleetError) as caught:
            await backend.placement("web.service")
    finally:
        await backend.close()
    assert type(caught.value) is type(error)
    assert http_status(caught.value) == http_status(error)
    assert str(error) in str(caught.value)
    cause = caught.value.__cause__
    assert isinstance(cause, httpx.HTTPStatusError)
    assert cause.response.status_code == http_status(error)


async def test_a_peers_refusal_is_answered_as_the_peer_answered_it() -> None:
    refusal = NotFound("no unit there")
    peers = Peers(port=1, transport_for=lambda _m: httpx.ASGITransport(app=_app_raising(refusal)))
    machine = await add_machine(new_store(), "b" * 32, ip="10.0.0.2")
    with pytest.raises(NotFound) as caught:
        await peers.get_json(machine, "/fleet/v1/units/web.service/placement", {})
    assert str(caught.value) == "no unit there"
    assert isinstance(caught.value.__cause__, httpx.HTTPStatusError)


async def test_a_peers_failure_is_a_failed_gateway() -> None:
    peers = Peers(
        port=1,
        transport_for=lambda _m: httpx.ASGITransport(app=_app_raising(Unavailable("etcd"))),
    )
    machine = await add_machine(new_store(), "b" * 32, ip="10.0.0.2")
    with pytest.raises(PeerUnreachable) as caught:
        await peers.get_json(machine, "/fleet/v1/units/web.service/placement", {})
    assert http_status(caught.value) == 502 and "answered 503: etcd" in str(caught.value)


async def test_a_unit_on_no_machine_is_a_conflict_from_the_status_route() -> None:
    store = new_store()
    async with client_for(make_app(store)) as client:
        put = await client.put(
            "/fleet/v1/units/web.service",
            json={"desiredState": "loaded", "options": options_of(SERVICE)},
        )
        assert put.status_code == 201
        response = await client.get("/fleet/v1/units/web.service/status")
    assert response.status_code == 409
    assert "not scheduled" in response.json()["error"]["message"]
