"""The audit log: one record for every write sent to the API, on this machine's journal.

A write is a request with a method that may change something (PUT, PATCH,
POST, DELETE), whatever its outcome: done, refused (401, 403) or failed;
``POST /plan``, a read for roles (it writes nothing), is not one.
Its record names the caller (the token's name, ``unix socket``, or ``-``
when no valid token came), the client's address, the method, the path, the
units it names (the path's unit, each item's name of a ``PUT /units``, the
unit of a ``POST /rollouts``) and the status answered.  It is logged on the
``fleetd.audit`` logger as one line of ``key=value`` pairs (values with blanks
or quotes JSON-quoted)::

    audit caller=ci remote=10.0.0.5 method=PUT path=/fleet/v1/units/web.service
      units=web.service status=204

and, under systemd, as one journal entry with the fields ``FLEETD_CALLER``,
``FLEETD_REMOTE``, ``FLEETD_METHOD``, ``FLEETD_PATH``, ``FLEETD_UNITS``,
``FLEETD_STATUS`` and ``MESSAGE_ID`` = ``AUDIT_MESSAGE_ID``
(``journalctl MESSAGE_ID=... FLEETD_CALLER=ci``; fleetd/journald.py).
Each record is also counted in ``/metrics`` as ``fleetd_api_writes_total``.
Tokens are never part of a record: only their names.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleetd.caller import Caller

from .access import CALLER, READ, WRITE_METHODS, RouteTable
from .auth import remote_of
from .errors import printable
from .metrics import Metrics

log = logging.getLogger("fleetd.audit")
AUDIT_MESSAGE_ID = "6c1f0b7e3a2d4c59a8e1f2b3c4d5e6f7"
NO_CALLER = "-"
MAX_UNITS = 50
_BARE = re.compile(r"^[A-Za-z0-9_.:@/\\%+,=-]*$")
_BATCH = "/fleet/v1/units"
_ROLLOUTS = "/fleet/v1/rollouts"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    caller: str
    remote: str
    method: str
    path: str
    units: tuple[str, ...]
    status: int
    route: str = "other"

    def pairs(self) -> list[tuple[str, str]]:
        shown = list(self.units[:MAX_UNITS])
        if len(self.units) > MAX_UNITS:
            shown.append(f"+{len(self.units) - MAX_UNITS} more")
        return [
            ("caller", self.caller),
            ("remote", self.remote or "-"),
            ("method", self.method),
            ("path", self.path),
            ("units", ",".join(shown) or "-"),
            ("status", str(self.status)),
        ]

    def message(self) -> str:
        return "audit " + " ".join(f"{k}={_value(v)}" for k, v in self.pairs())

    def journal_fields(self) -> dict[str, str]:
        fields = {f"FLEETD_{k.upper()}": printable(v) for k, v in self.pairs()}
        fields["MESSAGE_ID"] = AUDIT_MESSAGE_ID
        return fields


def _value(text: str) -> str:
    text = printable(text)
    return text if text and _BARE.match(text) else json.dumps(text)


class AuditLog:
    """Logs and counts audit records (one per app, shared by its listeners)."""

    def __init__(self, metrics: Metrics, routes: RouteTable | None = None) -> None:
        self.metrics = metrics
        self.routes = routes or RouteTable()

    def record(self, scope: Scope, status: int, units: Sequence[str] = ()) -> None:
        caller = scope.get(CALLER)
        route = self.routes.match(scope["method"], scope["path"])
        entry = AuditRecord(
            caller=caller.name if isinstance(caller, Caller) else NO_CALLER,
            remote=caller.remote if isinstance(caller, Caller) else remote_of(scope),
            method=scope["method"],
            path=scope["path"],
            units=tuple(units) or _path_units(route.template if route else "", scope["path"]),
            status=status,
            route=route.template if route else "other",
        )
        self.metrics.write(entry.caller, entry.method, entry.route, entry.status)
        log.info("%s", entry.message(), extra={"journal_fields": entry.journal_fields()})

    def refused(self, scope: Scope, status: int) -> None:
        """A write refused before it reached the app (no valid token)."""
        self.record(scope, status)


def _path_units(template: str, path: str) -> tuple[str, ...]:
    for marker, collection in (("/units/{name}", "/units/"), ("/rollouts/{unit}", "/rollouts/")):
        if marker in template:
            rest = path.split(collection, 1)[1]
            return (rest.split("/", 1)[0],)
    return ()


def rollout_unit(body: bytes) -> tuple[str, ...]:
    """The unit of a ``POST /rollouts`` body (none if it names none)."""
    try:
        data = json.loads(body)
    except ValueError:
        return ()
    unit = data.get("unit") if isinstance(data, dict) else None
    return (unit,) if isinstance(unit, str) else ()


def batch_names(body: bytes) -> tuple[str, ...]:
    """The unit names of a ``PUT /units`` body (none if it is not one)."""
    try:
        data = json.loads(body)
    except ValueError:
        return ()
    items = data.get("units") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return ()
    return tuple(
        str(item["name"])
        for item in items
        if isinstance(item, dict) and isinstance(item.get("name"), str)
    )


class Audit:
    """ASGI wrapper: an audit record for each write request that reaches the app."""

    def __init__(self, app: ASGIApp, audit: AuditLog) -> None:
        self.app = app
        self.audit = audit

    def _writes(self, scope: Scope) -> bool:
        """A write method, to a route that is not a read (``POST /plan`` writes nothing)."""
        if scope["method"] not in WRITE_METHODS:
            return False
        route = self.audit.routes.match(scope["method"], scope["path"])
        return route is None or route.access != READ

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._writes(scope):
            await self.app(scope, receive, send)
            return
        status = 500
        body: list[bytes] = []
        path = scope["path"].rstrip("/")
        batch = scope["method"] == "PUT" and path == _BATCH
        started = scope["method"] == "POST" and path == _ROLLOUTS
        keep = batch or started

        async def tee() -> Message:
            message = await receive()
            if keep and message["type"] == "http.request":
                body.append(message.get("body", b""))
            return message

        async def seen(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, tee if keep else receive, seen)
        finally:
            units = batch_names(b"".join(body)) if batch else ()
            if started:
                units = rollout_unit(b"".join(body))
            self.audit.record(scope, status, units)
