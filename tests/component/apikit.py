"""Helpers for the API and CLI component tests: a Store over MemoryRegistry, the real
app on an in-process transport, and the writes engine and agents would make."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from fleetd import model
from fleetd.api.app import create_app
from fleetd.registry.memory import MemoryRegistry
from fleetd.registry.store import Store
from fleetd.unitfile import UnitFile

SERVICE = "[Unit]\nDescription=demo\n\n[Service]\nExecStart=/bin/sleep 1000\n"
JSON = {"Content-Type": "application/json"}


def options_of(text: str) -> list[dict[str, str]]:
    return UnitFile.from_text(text).to_dicts()


def samples(text: str) -> dict[str, float]:
    """A Prometheus text exposition, parsed by prometheus-client's parser: each sample as
    ``name{label="value",...}`` (labels sorted; no braces without labels) -> value."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            pairs = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{pairs}}}" if pairs else sample.name] = sample.value
    return found


def new_store() -> Store:
    return Store(MemoryRegistry())


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fleet")


def make_app(store: Store, **kwargs: Any) -> Any:
    return create_app(store, **kwargs)


async def add_machine(
    store: Store,
    machine_id: str,
    ip: str = "",
    metadata: Sequence[tuple[str, str]] = (),
    cpu: int = 2000,
    memory: int = 4 << 30,
    systemd_connected: bool = True,
) -> model.Machine:
    machine = model.Machine(
        id=machine_id,
        hostname=f"host-{machine_id[:4]}",
        public_ip=ip,
        metadata=tuple(metadata),
        capacity=model.Capacity(cpu, memory),
        version="0.1.0",
        systemd_connected=systemd_connected,
    )
    lease = await store.registry.grant_lease(60)
    await store.register_machine(machine, lease)
    return machine


async def schedule(
    store: Store,
    machine: str,
    name: str,
    desired: model.DesiredState = model.DesiredState.LAUNCHED,
) -> None:
    unit = await store.get_unit(name)
    assert unit is not None
    entry = model.ScheduleEntry(machine, name, unit.hash, desired)
    await store.registry.batch([store.schedule_op(entry)])


async def report(
    store: Store, machine: str, name: str, active: str = "active", sub: str = "running"
) -> None:
    unit = await store.get_unit(name)
    state = model.UnitState(machine, name, unit.hash if unit else "", "loaded", active, sub)
    lease = await store.registry.grant_lease(60)
    await store.put_states(machine, [state], lease)


async def unplaceable(store: Store, name: str, summary: str, **reasons: str) -> None:
    placement = model.Placement(name, summary, tuple(reasons.items()))
    await store.registry.batch([store.placement_op(placement)])


async def submit(
    client: httpx.AsyncClient, name: str, text: str = SERVICE, desired: str = "inactive"
) -> httpx.Response:
    return await client.put(
        f"/fleet/v1/units/{name}",
        json={"desiredState": desired, "options": options_of(text)},
    )


def error_of(response: httpx.Response) -> tuple[int, str]:
    """Asserts fleet's error shape and returns (code, message)."""
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == response.status_code
    assert body["error"]["message"]
    return body["error"]["code"], body["error"]["message"]
