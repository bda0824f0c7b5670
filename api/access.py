"""Who may call which route: the one table of every route's role, and its enforcement.

``ACCESS`` maps each route (method, path template) to the role a caller
needs (``fleetd.caller.Role``): ``read`` for every GET and for ``POST /plan``
(a dry run, which writes nothing); ``operate`` for
desired-state changes (start, stop, load, unload; ``PUT /units...`` without a
unit file), cordon/uncordon/drain, the control of rollouts (pause, resume,
promote, abort) and maintenance of machines (reboots, commands, reboot
requests); ``admin`` for unit files (a ``PUT`` whose body carries ``options``,
``DELETE``, starting a rollout), machine metadata and the cluster settings.  ``None``
(``PUBLIC``) is the API's description and its docs page, served without a
token so that ``/docs`` opens in a browser (they describe the API, no data),
and the dashboard's files (``/ui/``: its data comes through ``/ui/api``).
A route missing from the table is answered as absent (404/405) to every caller
below admin, and ``check_table`` (run by the tests over ``app.routes_of``) names it.

The listener's authentication (api/auth.py) answers 401 to a request without
a valid token to any route that is not public; ``Authorize`` (an ASGI wrapper
inside the app) reads the caller it put in the scope and answers 403, naming
the role needed, to a caller whose role is too low, in fleet's error shape,
before anything reads the registry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleetd.caller import Role

from .errors import send_error

PREFIX = "/fleet/v1"
CALLER = "fleetd.caller"
"""The ASGI scope key holding the request's Caller (set by the listener, api/auth.py)."""


@dataclass(frozen=True, slots=True)
class Access:
    """``role`` needed for the route (None: public); ``unit_file``: the role needed
    instead when the request's body carries a unit file (``options``)."""

    role: Role | None
    unit_file: Role | None = None


READ = Access(Role.READ)
OPERATE = Access(Role.OPERATE)
ADMIN = Access(Role.ADMIN)
PUBLIC = Access(None)
UNIT_WRITE = Access(Role.OPERATE, unit_file=Role.ADMIN)

ACCESS: dict[tuple[str, str], Access] = {
    # units
    ("GET", f"{PREFIX}/units"): READ,
    ("PUT", f"{PREFIX}/units"): UNIT_WRITE,
    ("GET", f"{PREFIX}/units/{{name}}"): READ,
    ("PUT", f"{PREFIX}/units/{{name}}"): UNIT_WRITE,
    ("DELETE", f"{PREFIX}/units/{{name}}"): ADMIN,
    ("GET", f"{PREFIX}/units/{{name}}/placement"): READ,
    ("GET", f"{PREFIX}/units/{{name}}/status"): READ,
    ("GET", f"{PREFIX}/units/{{name}}/journal"): READ,
    ("GET", f"{PREFIX}/units/{{name}}/versions"): READ,
    ("GET", f"{PREFIX}/units/{{name}}/versions/{{version}}"): READ,
    ("GET", f"{PREFIX}/placements"): READ,
    # rollouts: starting one writes a unit file (a new one, or a kept version's)
    ("POST", f"{PREFIX}/rollouts"): ADMIN,
    ("GET", f"{PREFIX}/rollouts"): READ,
    ("GET", f"{PREFIX}/rollouts/{{unit}}"): READ,
    ("POST", f"{PREFIX}/rollouts/{{unit}}/pause"): OPERATE,
    ("POST", f"{PREFIX}/rollouts/{{unit}}/resume"): OPERATE,
    ("POST", f"{PREFIX}/rollouts/{{unit}}/promote"): OPERATE,
    ("POST", f"{PREFIX}/rollouts/{{unit}}/abort"): OPERATE,
    ("POST", f"{PREFIX}/plan"): READ,  # a dry run: it writes nothing
    # maintenance of machines: cordons, drains, reboots or runs a command on them
    ("POST", f"{PREFIX}/maintenance"): OPERATE,
    ("GET", f"{PREFIX}/maintenance"): READ,
    ("POST", f"{PREFIX}/maintenance/cancel"): OPERATE,
    ("GET", f"{PREFIX}/reboot-requests"): READ,
    ("POST", f"{PREFIX}/machines/{{machine_id}}/reboot-request"): OPERATE,
    ("GET", f"{PREFIX}/state"): READ,
    ("GET", f"{PREFIX}/events"): READ,
    ("GET", f"{PREFIX}/discovery"): READ,
    ("GET", f"{PREFIX}/cluster"): READ,
    # cluster settings (strategy, max_unavailable, the mass-loss guard): every engine's
    ("GET", f"{PREFIX}/config"): READ,
    ("PATCH", f"{PREFIX}/config"): ADMIN,
    # machines
    ("GET", f"{PREFIX}/machines"): READ,
    ("PATCH", f"{PREFIX}/machines"): ADMIN,
    ("GET", f"{PREFIX}/machines/{{machine_id}}"): READ,
    ("POST", f"{PREFIX}/machines/{{machine_id}}/cordon"): OPERATE,
    ("POST", f"{PREFIX}/machines/{{machine_id}}/uncordon"): OPERATE,
    ("POST", f"{PREFIX}/machines/{{machine_id}}/drain"): OPERATE,
    # operations
    ("GET", "/healthz"): READ,
    ("GET", "/metrics"): READ,
    # the API's description and docs
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/docs/assets/{path:path}"): PUBLIC,
    # the dashboard's files (its data comes through /ui/api, api/ui/gate.py)
    ("GET", "/ui"): PUBLIC,
    ("GET", "/ui/"): PUBLIC,
    ("GET", "/ui/{path:path}"): PUBLIC,
}
WRITE_METHODS = frozenset({"PUT", "PATCH", "POST", "DELETE"})


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    out = []
    for part in parts:
        if part.startswith("{"):
            out.append(".+" if part.endswith(":path}") else "[^/]+")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out) + r"\Z")


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    template: str
    access: Access


class RouteTable:
    """Finds the table entry of a request (HEAD is GET's)."""

    def __init__(self, table: dict[tuple[str, str], Access] | None = None) -> None:
        entries = ACCESS if table is None else table
        self._entries = [
            (method, _pattern(template), Route(method, template, access))
            for (method, template), access in entries.items()
        ]

    def match(self, method: str, path: str) -> Route | None:
        wanted = "GET" if method == "HEAD" else method
        for entry_method, pattern, route in self._entries:
            if entry_method == wanted and pattern.match(path):
                return route
        return None

    def known_path(self, path: str) -> bool:
        return any(pattern.match(path) for _, pattern, _ in self._entries)

    def public(self, method: str, path: str) -> bool:
        route = self.match(method, path)
        return route is not None and route.access.role is None


def check_table(routes: Iterable[tuple[str, str]]) -> None:
    """Raise if a route of the app (method, template) has no role in ``ACCESS``."""
    missing = sorted(
        f"{method} {path}"
        for method, path in routes
        if method not in ("HEAD", "OPTIONS") and (method, path) not in ACCESS
    )
    if missing:
        raise RuntimeError(f"routes without a role in api/access.py ACCESS: {', '.join(missing)}")


def carries_unit_file(body: bytes) -> bool:
    """Whether a ``PUT /units[/{name}]`` body holds unit options (a file to write)."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        return False  # the route answers 400; nothing is written
    if not isinstance(data, dict):
        return False
    if data.get("options") is not None:
        return True
    items = data.get("units")
    return isinstance(items, list) and any(
        isinstance(item, dict) and item.get("options") is not None for item in items
    )


def _refusal(caller_role: Role, needed: Role, name: str, what: str, detail: str = "") -> str:
    return (
        f"{what} needs the {needed.label} role{detail}; the caller {name!r} has the "
        f"{caller_role.label} role"
    )


class Authorize:
    """Refuses a request whose caller lacks the route's role (see the module doc)."""

    def __init__(self, app: ASGIApp, max_body: int, table: RouteTable | None = None) -> None:
        self.app = app
        self.max_body = max_body
        self.table = table or RouteTable()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = self.table.match(scope["method"], scope["path"])
        if route is not None and route.access.role is None:
            await self.app(scope, receive, send)
            return
        caller = scope.get(CALLER)
        role = caller.role if caller is not None else Role.ADMIN  # in-process: no listener
        name = caller.name if caller is not None else "unidentified"
        if route is None:
            if role >= Role.ADMIN:
                await self.app(scope, receive, send)  # the app answers 404 or 405
                return
            # Fail closed: a route missing from the table is as absent as an unknown one.
            if self.table.known_path(scope["path"]):
                await send_error(send, 405, "method not allowed")
            else:
                await send_error(send, 404, "not found")
            return
        needed = route.access.role
        assert needed is not None
        what = f"{route.method} {route.template}"
        if role < needed:
            unit_file = route.access.unit_file
            detail = f" ({unit_file.label} with a unit file)" if unit_file else ""
            await send_error(send, 403, _refusal(role, needed, name, what, detail))
            return
        unit_file = route.access.unit_file
        if unit_file is None or role >= unit_file:
            await self.app(scope, receive, send)
            return
        body, ended = await _read_some(receive, self.max_body)
        if ended and carries_unit_file(body):
            await send_error(
                send, 403, _refusal(role, unit_file, name, f"{what} with a unit file (options)")
            )
            return
        # Not all read (too large: the guards answer 413) or no unit file: on to the app.
        await self.app(scope, _replay(body, not ended, receive), send)


async def _read_some(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """Up to ``limit`` + 1 bytes of the body; whether that was all of it."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True
        if size > limit:
            return b"".join(chunks), False


def _replay(body: bytes, more: bool, receive: Receive) -> Receive:
    """A receive that gives ``body`` (already read) and then whatever ``receive`` has."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return replay
