"""How fleetctl reaches the cluster: the REST API (httpx) or the registry directly.

Both backends speak the API's wire models (``fleetd.api.wire``), so the
commands do not care which one runs.  ``ApiBackend`` talks to
``unix:///path`` or ``http(s)://host:port`` (with a bearer token);
``StoreBackend`` (``--driver etcd``) uses the typed Store over etcd with the
same read/write rules the API applies.  Neither imports FastAPI.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from fleetd import model
from fleetd.api import wire
from fleetd.api.service import (
    answers,
    commands,
    config,
    history,
    maintenance,
    queries,
    rollouts,
    unitbatch,
)
from fleetd.api.service.unitwarnings import WARNINGS_HEADER, decode_warnings
from fleetd.caller import Caller
from fleetd.errors import ApiError, ConfigError, FleetError, NotFound, Unavailable, error_for_status
from fleetd.registry.store import Store
from fleetd.rollouts.control import Control
from fleetd.tls import TlsFiles, client_context

M = TypeVar("M", bound=BaseModel)
PREFIX = "/fleet/v1"


class CliError(FleetError):
    """A failure to report on stderr (exit status 1), without a traceback."""


_RETRIES = 4
BUSY_PAUSES = (0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
"""Pauses between the tries of a GET or PUT that fleetd answered 503 (its etcd has no
leader or is out of reach: an etcd member lost, a leader election): about 10 s in all."""
BATCH_UNITS = 500
BATCH_BYTES = 768 * 1024  # under the API's 1 MiB body limit, with room for framing


IN_PROCESS: dict[str, Callable[[], httpx.AsyncBaseTransport]] = {}
"""Endpoints served inside this process (an in-process cluster in tests, see
``fleetd.testing``): ``ApiBackend`` reaches them through the transport made here."""


class Backend(Protocol):
    async def list_units(self) -> list[wire.Unit]: ...

    async def get_unit(self, name: str) -> wire.Unit | None: ...

    async def create_unit(
        self,
        name: str,
        options: Sequence[wire.UnitOption],
        desired: model.DesiredState | None,
        replace: bool,
    ) -> tuple[str, ...]:
        """Create ``name`` or (``replace``) replace its options; Conflict if it differs.

        Returns the warnings fleetd gave about the unit file (none from fleet)."""
        ...

    async def set_desired(self, name: str, desired: model.DesiredState) -> None: ...

    async def write_units(
        self, changes: Sequence[commands.UnitChange], replace: bool
    ) -> dict[str, tuple[str, ...]]:
        """Many ``create_unit``/``set_desired`` at once (``PUT /units``), in chunks.

        Each chunk is checked whole before it is written: a bad change raises
        (naming it) and leaves that chunk and the ones after it unwritten.
        Returns the warnings about unit files, by unit name (only units with some)."""
        ...

    async def destroy(self, name: str) -> bool:
        """False if there was no such unit."""
        ...

    async def plan(
        self, changes: Sequence[commands.UnitChange], replace: bool
    ) -> wire.PlanResponse:
        """What ``write_units(changes, replace)`` would make the engine do; writes nothing."""
        ...

    async def list_states(self, names: Sequence[str] | None = None) -> list[wire.UnitState]: ...

    async def list_machines(self) -> list[wire.Machine]: ...

    async def machine_listing(self) -> tuple[list[wire.Machine], wire.Guard | None]:
        """The machines and the mass-loss guard, if it holds."""
        ...

    async def settings(self) -> wire.ClusterSettings:
        """Every cluster setting (``GET /config``)."""
        ...

    async def change_settings(
        self, changes: dict[str, wire.SettingValue | None]
    ) -> wire.ClusterSettings:
        """Change cluster settings, all or nothing (``PATCH /config``)."""
        ...

    async def placement(self, name: str) -> wire.Placement: ...

    async def machine_action(self, machine_id: str, action: str) -> wire.MachineFlags: ...

    async def status(self, name: str) -> wire.UnitStatus: ...

    def journal(
        self, name: str, lines: int, follow: bool, output: str = "short"
    ) -> AsyncIterator[str]: ...

    async def versions(self, name: str) -> wire.UnitVersionList:
        """The kept versions of unit ``name`` (NotFound if it has none and does not exist)."""
        ...

    async def version(self, name: str, number: int) -> wire.UnitVersion:
        """Version ``number`` of unit ``name`` with its text (NotFound if not kept)."""
        ...

    async def start_rollout(self, body: wire.RolloutRequest) -> wire.Rollout:
        """Start a rollout (the API's checks; nothing is written when it is refused)."""
        ...

    async def rollout(self, unit: str) -> wire.Rollout:
        """The last rollout of ``unit`` (NotFound if it never had one)."""
        ...

    async def rollouts(self) -> list[wire.Rollout]: ...

    async def control_rollout(self, unit: str, action: str) -> wire.Rollout:
        """pause, resume, promote or abort the rollout of ``unit``."""
        ...

    async def start_maintenance(self, body: wire.MaintenanceRequest) -> wire.Maintenance:
        """Start a maintenance (the API's checks; nothing is written when it is refused)."""
        ...

    async def maintenance(self) -> wire.Maintenance:
        """The current or last maintenance (NotFound if none was ever started)."""
        ...

    async def cancel_maintenance(self) -> wire.Maintenance:
        """Cancel the active maintenance (NotFound if none ever started, Conflict if it is
        over or already being cancelled)."""
        ...

    async def request_reboot(self, machine_id: str) -> wire.RebootRequest: ...

    async def close(self) -> None: ...


def _answer(status: int, message: str) -> FleetError:
    """fleetd's error answer as the error the API answered it for (the one table)."""
    if status == 401:
        message = f"{message} (pass --token or set FLEETCTL_TOKEN)"
    error = error_for_status(status, message)
    if status >= 500 or isinstance(error, ApiError):
        return error_for_status(status, f"fleetd answered {status}: {message}")
    return error


def _raise_for(response: httpx.Response) -> None:
    answers.raise_for(response, _answer)


class ApiBackend:
    def __init__(
        self,
        endpoint: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        self.endpoint = endpoint
        if transport is None and endpoint in IN_PROCESS:
            transport = IN_PROCESS[endpoint]()
        headers = {"User-Agent": "fleetctl (fleetd)"}
        if token:
            if not (token.isascii() and token.isprintable()) or " " in token:
                raise CliError(
                    "--token: a token is printable ASCII without spaces "
                    "(check FLEETCTL_TOKEN and the token file)"
                )
            headers["Authorization"] = f"Bearer {token}"
        if endpoint.startswith("unix://"):
            path = endpoint[len("unix://") :]
            if not path:
                raise CliError(f"--endpoint {endpoint!r}: no socket path")
            # Plain HTTP over the socket: no TLS, so no CA bundle to load (~140 ms a command).
            transport = transport or httpx.AsyncHTTPTransport(uds=path, verify=False)
            base = "http://fleetd"
        elif endpoint.startswith(("http://", "https://")):
            base = endpoint.rstrip("/")
            try:
                port = httpx.URL(base).port
            except httpx.InvalidURL as exc:
                raise CliError(f"--endpoint {endpoint!r}: {exc}") from exc
            if port is not None and not 0 < port < 65536:
                raise CliError(f"--endpoint {endpoint!r}: port {port} is not in 1..65535")
            if endpoint.startswith("https://") and transport is None:
                try:
                    verify = client_context(tls or TlsFiles())
                except ConfigError as exc:
                    raise CliError(str(exc)) from exc
                transport = httpx.AsyncHTTPTransport(verify=verify)
        else:
            raise CliError(f"--endpoint {endpoint!r}: expected unix:///path or http(s)://host:port")
        try:
            self._client = httpx.AsyncClient(
                base_url=base,
                headers=headers,
                timeout=httpx.Timeout(timeout, read=timeout),
                transport=transport,
            )
        except httpx.InvalidURL as exc:
            raise CliError(f"--endpoint {endpoint!r}: {exc}") from exc

    async def close(self) -> None:
        await self._client.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        # GET and PUT are idempotent in this API (a PUT sets a unit to a given file and
        # state), so a connection reset or refused mid-way is retried a few times: a
        # fleetd restarting or a pooled connection closed by the server is no failure.
        # A 503 (fleetd up, its etcd unavailable: electing a leader after a member was
        # lost) is tried again for about 10 s (BUSY_PAUSES).
        idempotent = method in ("GET", "PUT")
        attempts = _RETRIES if idempotent else 1
        busy = iter(BUSY_PAUSES if idempotent else ())
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._send(method, path, **kwargs)
            except Unavailable:
                if attempt >= attempts:
                    raise
                await asyncio.sleep(0.2 * attempt)
                continue
            pause = next(busy, None) if response.status_code == 503 else None
            if pause is None:
                return response
            await asyncio.sleep(pause)

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._client.request(method, PREFIX + path, **kwargs)
        except httpx.TimeoutException as exc:
            raise Unavailable(f"fleetd at {self.endpoint} did not answer in time") from exc
        except httpx.TransportError as exc:
            raise Unavailable(f"cannot reach fleetd at {self.endpoint}: {_reason(exc)}") from exc
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach fleetd at {self.endpoint}: {_reason(exc)}") from exc
        except httpx.InvalidURL as exc:
            raise CliError(f"cannot send this request: {exc}") from exc

    async def _get(self, path: str, kind: type[M], **params: Any) -> M:
        response = await self._request("GET", path, params=params)
        _raise_for(response)
        return _parse(kind, response)

    async def _pages(self, path: str, kind: type[M], **params: Any) -> list[M]:
        pages: list[M] = []
        token = None
        for _ in range(1_000_000):
            query = dict(params)
            if token:
                query["nextPageToken"] = token
            page = await self._get(path, kind, **query)
            pages.append(page)
            token = getattr(page, "nextPageToken", None)
            if not token:
                return pages
        raise CliError(f"fleetd at {self.endpoint} keeps sending pages of {path}")

    async def list_units(self) -> list[wire.Unit]:
        return [u for p in await self._pages("/units", wire.UnitPage) for u in p.units]

    async def get_unit(self, name: str) -> wire.Unit | None:
        try:
            return await self._get(f"/units/{quote(name)}", wire.Unit)
        except NotFound:
            return None

    async def create_unit(
        self,
        name: str,
        options: Sequence[wire.UnitOption],
        desired: model.DesiredState | None,
        replace: bool,
    ) -> tuple[str, ...]:
        body: dict[str, Any] = {"name": name, "options": [o.model_dump() for o in options]}
        if desired is not None:
            body["desiredState"] = desired.value
        response = await self._request(
            "PUT",
            f"/units/{quote(name)}",
            json=body,
            params={"replace": "true" if replace else "false"},
        )
        _raise_for(response)
        return decode_warnings(response.headers.get(WARNINGS_HEADER))

    async def set_desired(self, name: str, desired: model.DesiredState) -> None:
        response = await self._request(
            "PUT", f"/units/{quote(name)}", json={"name": name, "desiredState": desired.value}
        )
        _raise_for(response)

    async def write_units(
        self, changes: Sequence[commands.UnitChange], replace: bool
    ) -> dict[str, tuple[str, ...]]:
        items = [_batch_item(c) for c in changes]
        warnings: dict[str, tuple[str, ...]] = {}
        for chunk in _chunks(items, BATCH_UNITS, BATCH_BYTES):
            response = await self._request(
                "PUT",
                "/units",
                json={"units": chunk},
                params={"replace": "true" if replace else "false"},
            )
            if response.status_code == 405:
                # A fleetd without the extension (or fleet itself): one PUT per unit.
                return await self._write_each(changes, replace)
            _raise_for(response)
            for result in _parse(wire.UnitBatchResponse, response).units:
                if result.warnings:
                    warnings[result.name] = tuple(result.warnings)
        return warnings

    async def _write_each(
        self, changes: Sequence[commands.UnitChange], replace: bool
    ) -> dict[str, tuple[str, ...]]:
        gate = asyncio.Semaphore(32)
        warnings: dict[str, tuple[str, ...]] = {}

        async def one(change: commands.UnitChange) -> None:
            async with gate:
                if change.options:
                    found = await self.create_unit(
                        change.name, change.options, change.desired, replace
                    )
                    if found:
                        warnings[change.name] = found
                elif change.desired is not None:
                    await self.set_desired(change.name, change.desired)

        await asyncio.gather(*(one(c) for c in changes))
        return warnings

    async def plan(
        self, changes: Sequence[commands.UnitChange], replace: bool
    ) -> wire.PlanResponse:
        response = await self._request(
            "POST",
            "/plan",
            json={"units": [_batch_item(c) for c in changes]},
            params={"replace": "true" if replace else "false"},
        )
        if response.status_code in (404, 405):
            raise CliError(
                f"fleetd at {self.endpoint} cannot plan (no POST {PREFIX}/plan: an older "
                "fleetd, or fleet)"
            )
        _raise_for(response)
        return _parse(wire.PlanResponse, response)

    async def destroy(self, name: str) -> bool:
        response = await self._request("DELETE", f"/units/{quote(name)}")
        if response.status_code == 404:
            return False
        _raise_for(response)
        return True

    async def list_states(self, names: Sequence[str] | None = None) -> list[wire.UnitState]:
        params: dict[str, Any] = {"unitName": list(names)} if names else {}
        pages = await self._pages("/state", wire.UnitStatePage, **params)
        return [s for p in pages for s in p.states]

    async def list_machines(self) -> list[wire.Machine]:
        return (await self.machine_listing())[0]

    async def machine_listing(self) -> tuple[list[wire.Machine], wire.Guard | None]:
        pages = await self._pages("/machines", wire.MachinePage)
        return [m for p in pages for m in p.machines], pages[0].guard

    async def settings(self) -> wire.ClusterSettings:
        return await self._get("/config", wire.ClusterSettings)

    async def change_settings(
        self, changes: dict[str, wire.SettingValue | None]
    ) -> wire.ClusterSettings:
        response = await self._request("PATCH", "/config", json=changes)
        _raise_for(response)
        return _parse(wire.ClusterSettings, response)

    async def placement(self, name: str) -> wire.Placement:
        return await self._get(f"/units/{quote(name)}/placement", wire.Placement)

    async def machine_action(self, machine_id: str, action: str) -> wire.MachineFlags:
        response = await self._request("POST", f"/machines/{quote(machine_id)}/{action}")
        _raise_for(response)
        return _parse(wire.MachineFlags, response)

    async def status(self, name: str) -> wire.UnitStatus:
        return await self._get(f"/units/{quote(name)}/status", wire.UnitStatus)

    async def versions(self, name: str) -> wire.UnitVersionList:
        return await self._get(f"/units/{quote(name)}/versions", wire.UnitVersionList)

    async def version(self, name: str, number: int) -> wire.UnitVersion:
        return await self._get(f"/units/{quote(name)}/versions/{number}", wire.UnitVersion)

    async def start_rollout(self, body: wire.RolloutRequest) -> wire.Rollout:
        payload = body.model_dump(mode="json", exclude_none=True)
        response = await self._request("POST", "/rollouts", json=payload)
        _raise_for(response)
        return _parse(wire.Rollout, response)

    async def rollout(self, unit: str) -> wire.Rollout:
        return await self._get(f"/rollouts/{quote(unit)}", wire.Rollout)

    async def rollouts(self) -> list[wire.Rollout]:
        return (await self._get("/rollouts", wire.RolloutList)).rollouts

    async def control_rollout(self, unit: str, action: str) -> wire.Rollout:
        response = await self._request("POST", f"/rollouts/{quote(unit)}/{action}")
        _raise_for(response)
        return _parse(wire.Rollout, response)

    async def start_maintenance(self, body: wire.MaintenanceRequest) -> wire.Maintenance:
        payload = body.model_dump(mode="json", exclude_none=True)
        response = await self._request("POST", "/maintenance", json=payload)
        _raise_for(response)
        return _parse(wire.Maintenance, response)

    async def maintenance(self) -> wire.Maintenance:
        return await self._get("/maintenance", wire.Maintenance)

    async def cancel_maintenance(self) -> wire.Maintenance:
        response = await self._request("POST", "/maintenance/cancel")
        _raise_for(response)
        return _parse(wire.Maintenance, response)

    async def request_reboot(self, machine_id: str) -> wire.RebootRequest:
        response = await self._request("POST", f"/machines/{quote(machine_id)}/reboot-request")
        _raise_for(response)
        return _parse(wire.RebootRequest, response)

    async def journal(
        self, name: str, lines: int, follow: bool, output: str = "short"
    ) -> AsyncIterator[str]:
        params = {"lines": str(lines), "follow": "true" if follow else "false"}
        if output != "short":
            params["output"] = output
        # A followed journal may be quiet for hours: no read timeout then.
        timeout = httpx.Timeout(self._client.timeout.connect, read=None)
        try:
            async with self._client.stream(
                "GET",
                f"{PREFIX}/units/{quote(name)}/journal",
                params=params,
                timeout=timeout if follow else self._client.timeout,
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    _raise_for(response)
                async for line in response.aiter_lines():
                    yield line
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach fleetd at {self.endpoint}: {_reason(exc)}") from exc
        except httpx.InvalidURL as exc:
            raise CliError(f"cannot send this request: {exc}") from exc


def _batch_item(change: commands.UnitChange) -> dict[str, Any]:
    item: dict[str, Any] = {"name": change.name}
    if change.options:
        item["options"] = [o.model_dump() for o in change.options]
    if change.desired is not None:
        item["desiredState"] = change.desired.value
    return item


def _chunks(
    items: Sequence[dict[str, Any]], max_items: int, max_bytes: int
) -> list[list[dict[str, Any]]]:
    """Consecutive chunks of at most ``max_items`` and about ``max_bytes`` of JSON each
    (an item larger than that alone forms a chunk: the API then answers 413)."""
    chunks: list[list[dict[str, Any]]] = []
    chunk: list[dict[str, Any]] = []
    size = 0
    for item in items:
        n = len(json.dumps(item)) + 2
        if chunk and (len(chunk) >= max_items or size + n > max_bytes):
            chunks.append(chunk)
            chunk, size = [], 0
        chunk.append(item)
        size += n
    if chunk:
        chunks.append(chunk)
    return chunks


def _parse(kind: type[M], response: httpx.Response) -> M:
    try:
        return kind.model_validate(response.json())
    except (ValueError, ValidationError) as exc:
        raise CliError(f"unexpected answer from fleetd ({kind.__name__}): {exc}") from exc


def _reason(exc: httpx.HTTPError) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        cause = cause.__cause__ or cause.__context__
    return str(exc) or type(exc).__name__


def etcd_driver() -> Caller:
    """``fleetctl --driver etcd``: the local user and host, as honestly as they are known."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid {os.getuid()}"
    return Caller(f"etcd driver ({user}@{socket.gethostname()})")


SCHEDULING_NOTE = (
    "planned with the cluster settings and otherwise the engine's default settings "
    "(strategy binpack unless set with fleetctl config, default reservations): "
    "--driver etcd cannot read fleetd's configuration; a cluster configured "
    "otherwise may place differently (--driver api plans with fleetd's own)"
)


def _cluster_defaults() -> dict[str, wire.SettingValue]:
    """The defaults of a fleetd configured with fleet.conf's defaults."""
    from fleetd.config import Config
    from fleetd.engine.settings import cluster_defaults, settings_from_config

    return cluster_defaults(settings_from_config(Config()))


class StoreBackend:
    """``--driver etcd``: the registry directly, with the API's rules.  What it writes
    is recorded as written by ``caller`` (``etcd driver (user@host)``)."""

    def __init__(self, store: Store, caller: Caller | None = None) -> None:
        self.store = store
        self.caller = caller or etcd_driver()

    async def close(self) -> None:
        await self.store.registry.close()

    async def list_units(self) -> list[wire.Unit]:
        return await queries.list_units(self.store)

    async def get_unit(self, name: str) -> wire.Unit | None:
        try:
            return await queries.get_unit(self.store, name)
        except NotFound:
            return None

    async def create_unit(
        self,
        name: str,
        options: Sequence[wire.UnitOption],
        desired: model.DesiredState | None,
        replace: bool,
    ) -> tuple[str, ...]:
        change = commands.UnitChange(name=name, options=list(options), desired=desired)
        outcome = await commands.set_unit(
            self.store, change, caller=self.caller, replace_options=replace
        )
        return outcome.warnings

    async def set_desired(self, name: str, desired: model.DesiredState) -> None:
        change = commands.UnitChange(name=name, desired=desired)
        await commands.set_unit(self.store, change, caller=self.caller)

    async def write_units(
        self, changes: Sequence[commands.UnitChange], replace: bool
    ) -> dict[str, tuple[str, ...]]:
        step = unitbatch.MAX_BATCH_UNITS
        warnings: dict[str, tuple[str, ...]] = {}
        for start in range(0, len(changes), step):
            chunk = changes[start : start + step]
            outcomes = await unitbatch.set_units(
                self.store, chunk, caller=self.caller, replace_options=replace
            )
            for change, outcome in zip(chunk, outcomes, strict=True):
                if outcome.warnings:
                    warnings[change.name] = outcome.warnings
        return warnings

    async def plan(
        self, changes: Sequence[commands.UnitChange], replace: bool
    ) -> wire.PlanResponse:
        """Planned with the cluster settings over the engine's default settings: fleetd's
        configuration is not in the registry (``SCHEDULING_NOTE``)."""
        # The engine's modules load only for a plan: other commands start faster without.
        from fleetd.api.service import dryrun
        from fleetd.engine.settings import EngineSettings

        return await dryrun.plan_units(
            self.store,
            changes,
            settings=EngineSettings(),
            caller=self.caller,
            replace_options=replace,
        )

    async def destroy(self, name: str) -> bool:
        try:
            await commands.destroy_unit(self.store, name)
        except NotFound:
            return False
        return True

    async def list_states(self, names: Sequence[str] | None = None) -> list[wire.UnitState]:
        return await queries.list_states(self.store, None, list(names) if names else None)

    async def list_machines(self) -> list[wire.Machine]:
        return await queries.list_machines(self.store)

    async def machine_listing(self) -> tuple[list[wire.Machine], wire.Guard | None]:
        return await queries.list_machines(self.store), await config.read_guard(self.store)

    async def settings(self) -> wire.ClusterSettings:
        """Defaults are the engine's own (``SCHEDULING_NOTE``: fleet.conf is not here)."""
        return await config.read_settings(self.store, _cluster_defaults())

    async def change_settings(
        self, changes: dict[str, wire.SettingValue | None]
    ) -> wire.ClusterSettings:
        return await config.change_settings(self.store, changes, _cluster_defaults())

    async def placement(self, name: str) -> wire.Placement:
        return await queries.get_placement(self.store, name)

    async def machine_action(self, machine_id: str, action: str) -> wire.MachineFlags:
        flags = await commands.set_schedulable(self.store, machine_id, commands.FlagAction(action))
        return wire.MachineFlags(
            id=machine_id, unschedulable=flags.unschedulable, draining=flags.draining
        )

    async def versions(self, name: str) -> wire.UnitVersionList:
        return await history.version_list(self.store, name)

    async def version(self, name: str, number: int) -> wire.UnitVersion:
        return await history.get_version(self.store, name, number)

    async def start_rollout(self, body: wire.RolloutRequest) -> wire.Rollout:
        spec = rollouts.RolloutSpec(
            unit=body.unit,
            settings=rollouts.settings_of(body),
            options=body.options,
            version=body.version,
        )
        record = await rollouts.start_rollout(self.store, spec, caller=self.caller)
        return rollouts.view(record)

    async def rollout(self, unit: str) -> wire.Rollout:
        return await rollouts.get_rollout(self.store, unit)

    async def rollouts(self) -> list[wire.Rollout]:
        return (await rollouts.list_rollouts(self.store)).rollouts

    async def control_rollout(self, unit: str, action: str) -> wire.Rollout:
        record = await rollouts.control_rollout(
            self.store, unit, Control(action), caller=self.caller
        )
        return rollouts.view(record)

    async def start_maintenance(self, body: wire.MaintenanceRequest) -> wire.Maintenance:
        record = await maintenance.start_maintenance(
            self.store,
            body.machines,
            all_machines=body.all,
            max_unavailable=body.maxUnavailable,
            command=body.command,
            caller=self.caller,
        )
        return maintenance.view(record)

    async def maintenance(self) -> wire.Maintenance:
        return maintenance.view(await maintenance.get_maintenance(self.store))

    async def cancel_maintenance(self) -> wire.Maintenance:
        return maintenance.view(
            await maintenance.cancel_maintenance(self.store, caller=self.caller)
        )

    async def request_reboot(self, machine_id: str) -> wire.RebootRequest:
        found = await maintenance.request_reboot(self.store, machine_id, caller=self.caller)
        return maintenance.request_view(found)

    async def status(self, name: str) -> wire.UnitStatus:
        raise CliError("status needs the API (--driver api): it is served by the unit's machine")

    async def journal(
        self, name: str, lines: int, follow: bool, output: str = "short"
    ) -> AsyncIterator[str]:
        raise CliError("journal needs the API (--driver api): it is served by the unit's machine")
        yield ""  # pragma: no cover - makes this an async generator
