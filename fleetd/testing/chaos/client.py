"""The chaos run's client: unit creates and destroys through fleet's v1 API, every
attempt recorded with its answer (a ``write`` record, ``history.py``).

An answer is ``ok`` (2xx; a destroy's 404: already gone), ``fail`` when the
request certainly changed nothing (refused with a 4xx, or no connection made), or
``unknown`` (a 5xx, a timeout, a connection lost mid-request: it may have been
written).  A write that is not ``ok`` is tried again on the next machine's API, up
to ``attempts`` times, each attempt a record of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import quote

import httpx

from fleetd.testing.chaos.history import Record
from fleetd.testing.chaos.workload import ChaosUnit

PREFIX = "/fleet/v1"


class Client:
    def __init__(
        self,
        endpoints: Sequence[str],
        token: str | None,
        record: Callable[[Record], None],
        timeout: float = 10.0,
        attempts: int = 3,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(headers=headers, timeout=timeout)
        self._endpoints = list(endpoints)
        self._record = record
        self._attempts = attempts
        self._next = 0

    async def close(self) -> None:
        await self._http.aclose()

    async def _send(self, method: str, path: str, body: Record | None) -> tuple[str, str]:
        """(outcome, details) of one attempt on the next endpoint."""
        endpoint = self._endpoints[self._next % len(self._endpoints)]
        self._next += 1
        try:
            response = await self._http.request(method, endpoint + PREFIX + path, json=body)
        except httpx.ConnectError as exc:
            return "fail", f"{endpoint}: {exc!r}"
        except httpx.HTTPError as exc:
            return "unknown", f"{endpoint}: {exc!r}"
        detail = f"{endpoint}: {response.status_code}"
        if response.is_success or (method == "DELETE" and response.status_code == 404):
            return "ok", detail
        if response.status_code >= 500:
            return "unknown", f"{detail} {response.text[:200]}"
        return "fail", f"{detail} {response.text[:200]}"

    async def _write(
        self, op: str, name: str, extra: Record, method: str, body: Record | None = None
    ) -> str:
        outcome = "fail"
        for _ in range(self._attempts):
            began = time.monotonic()
            outcome, details = await self._send(method, f"/units/{quote(name)}", body)
            self._record(
                {
                    "kind": "write",
                    "t": time.monotonic(),
                    "sent": began,
                    "op": op,
                    "name": name,
                    "outcome": outcome,
                    "details": details,
                    **extra,
                }
            )
            if outcome == "ok":
                break
        return outcome

    async def create(self, unit: ChaosUnit) -> str:
        body = {
            "name": unit.name,
            "desiredState": "launched",
            "options": [{"section": s, "name": n, "value": v} for s, n, v in unit.options],
        }
        extra = {"hash": unit.hash, "description": unit.description}
        return await self._write("create", unit.name, extra, "PUT", body)

    async def destroy(self, name: str) -> str:
        return await self._write("destroy", name, {}, "DELETE")

    async def run(self, creates: Sequence[ChaosUnit], destroys: Sequence[str], width: int) -> None:
        """Every write, ``width`` at a time."""
        gate = asyncio.Semaphore(width)

        async def limited(write: Awaitable[str]) -> str:
            async with gate:
                return await write

        await asyncio.gather(
            *(limited(self.create(u)) for u in creates),
            *(limited(self.destroy(n)) for n in destroys),
        )
