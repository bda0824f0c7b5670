"""Forwarding ``status``/``journal`` to the fleetd API of the machine that runs the unit.

Every fleetd serves the same API; the peer's address is its ``public_ip`` and
the cluster's API port (the same configuration on every machine).  The request
carries the caller's own bearer token (the same tokens are valid on every
machine, so the peer checks the same role and audits the same name), or, for
a caller without one (the unix socket), this machine's ``api_token_file`` token.
A forwarded request carries ``FORWARD_HEADER`` so a peer never forwards again
(no loops when machines disagree).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from fleetd import model
from fleetd.errors import FleetError

FORWARD_HEADER = "X-Fleetd-Forwarded"
TIMEOUT = httpx.Timeout(15.0, read=None)


class PeerError(FleetError):
    """A peer fleetd could not be reached or refused; ``status`` is what to answer."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Peers:
    """How to reach other machines' APIs; ``port=None`` means forwarding is off."""

    port: int | None = None
    token: str | None = None
    # HTTPS to the peers (fleetd/tls.py), None: plain HTTP.
    tls: ssl.SSLContext | None = None
    transport_for: Callable[[model.Machine], httpx.AsyncBaseTransport] | None = None

    def _client(self, machine: model.Machine, bearer: str | None) -> httpx.AsyncClient:
        if self.port is None and self.transport_for is None:
            raise PeerError(
                f"unit is on machine {machine.id}, and this fleetd has no TCP API port "
                "configured to reach other machines",
                503,
            )
        if not machine.public_ip and self.transport_for is None:
            raise PeerError(f"machine {machine.id} published no IP address", 503)
        host = machine.public_ip or machine.id
        if ":" in host:
            host = f"[{host}]"
        headers = {FORWARD_HEADER: "1"}
        token = bearer or self.token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        transport = self.transport_for(machine) if self.transport_for else None
        scheme = "https" if self.tls is not None else "http"
        return httpx.AsyncClient(
            base_url=f"{scheme}://{host}:{self.port or 80}",
            headers=headers,
            timeout=TIMEOUT,
            transport=transport,
            verify=self.tls if self.tls is not None else False,
        )

    async def get_json(
        self,
        machine: model.Machine,
        path: str,
        params: dict[str, str],
        bearer: str | None = None,
    ) -> dict[str, Any]:
        """GET ``path`` from ``machine``'s API as the caller with token ``bearer``."""
        async with self._client(machine, bearer) as client:
            try:
                response = await client.get(path, params=params)
            except httpx.HTTPError as exc:
                raise PeerError(f"cannot reach fleetd on {machine.id}: {exc}") from exc
            _raise_for(response, machine)
            data = response.json()
            if not isinstance(data, dict):
                raise PeerError(f"fleetd on {machine.id} sent an unexpected answer")
            return data

    async def stream(
        self,
        machine: model.Machine,
        path: str,
        params: dict[str, str],
        bearer: str | None = None,
    ) -> AsyncIterator[bytes]:
        async with self._client(machine, bearer) as client:
            try:
                async with client.stream("GET", path, params=params) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        _raise_for(response, machine)
                    async for chunk in response.aiter_bytes():
                        yield chunk
            except httpx.HTTPError as exc:
                raise PeerError(f"cannot reach fleetd on {machine.id}: {exc}") from exc


def _raise_for(response: httpx.Response, machine: model.Machine) -> None:
    if response.status_code < 400:
        return
    message = f"fleetd on {machine.id} answered {response.status_code}"
    try:
        body = response.json()
        message = str(body["error"]["message"])
    except (ValueError, KeyError, TypeError):
        pass
    raise PeerError(message, response.status_code if response.status_code < 500 else 502)
