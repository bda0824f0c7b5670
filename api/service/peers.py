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
from fleetd.errors import FleetError, PeerUnreachable, Unavailable, error_for_status

from .answers import raise_for

FORWARD_HEADER = "X-Fleetd-Forwarded"
TIMEOUT = httpx.Timeout(15.0, read=None)


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
            raise Unavailable(
                f"unit is on machine {machine.id}, and this fleetd has no TCP API port "
                "configured to reach other machines"
            )
        if not machine.public_ip and self.transport_for is None:
            raise Unavailable(f"machine {machine.id} published no IP address")
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
                raise PeerUnreachable(f"cannot reach fleetd on {machine.id}: {exc}") from exc
            raise_for(response, _answer_of(machine))
            data = response.json()
            if not isinstance(data, dict):
                raise PeerUnreachable(f"fleetd on {machine.id} sent an unexpected answer")
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
                        raise_for(response, _answer_of(machine))
                    async for chunk in response.aiter_bytes():
                        yield chunk
            except httpx.HTTPError as exc:
                raise PeerUnreachable(f"cannot reach fleetd on {machine.id}: {exc}") from exc


def _answer_of(machine: model.Machine) -> Callable[[int, str], FleetError]:
    """A peer's refusal is answered as the peer answered it (the caller asked for that
    unit there); a peer's own failure is this request's failed gateway."""

    def error(status: int, message: str) -> FleetError:
        if status >= 500:
            return PeerUnreachable(f"fleetd on {machine.id} answered {status}: {message}")
        return error_for_status(status, message)

    return error
