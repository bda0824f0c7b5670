"""fleetctl plan on real systemd machines: a unit that would push a running unit out
(``Replaces=``) is planned, nothing changes (systemd in the machine still runs the unit,
the registry's units, schedule and placement reasons are as they were), both drivers
give the same plan, and starting it then does what the plan said.  Every example unit
is planned, alone and all together, with the exit status its plan calls for, and
nothing changes."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cluster_helpers import fleetctl, where_active

from fleetd.registry.etcd import EtcdRegistry
from fleetd.registry.store import Store
from fleetd.sandbox.cluster import Sandbox

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "units"
INSTANCES = {"web@.service": "web@8081.service", "cache@.service": "cache@1.service"}
INSTANCES["worker@.service"] = "worker@1.service"
WaitFor = Callable[[Callable[[], object], float, str], object]
SERVICE = "[Unit]\nDescription=plan\n\n[Service]\nExecStart=/bin/sleep 100000\n"


@pytest.fixture
def tag(sandbox: Sandbox) -> Iterator[str]:
    """A unique unit-name prefix; its units are destroyed afterwards."""
    prefix = f"plan{uuid.uuid4().hex[:6]}"
    yield prefix
    listed = fleetctl(sandbox, "list-unit-files", "--no-legend", "--fields", "unit")
    mine = [n for n in listed.stdout.split() if n.startswith(prefix)]
    if mine:
        fleetctl(sandbox, "destroy", *mine)


def registry(sandbox: Sandbox) -> dict[str, tuple[bytes, int]]:
    """The engine's inputs and outputs in etcd: units, schedule, placement reasons."""

    async def read() -> dict[str, tuple[bytes, int]]:
        etcd = EtcdRegistry(list(sandbox.etcd_endpoints), timeout=10.0)
        try:
            keys = Store(etcd).keys
            found = {}
            for prefix in (keys.units, keys.schedule, keys.placements, keys.versions):
                items, _ = await etcd.get_prefix(prefix)
                found.update({kv.key: (kv.value, kv.mod_revision) for kv in items})
            return found
        finally:
            await etcd.close()

    return asyncio.run(read())


def test_plan_a_unit_that_pushes_a_running_one_out(
    sandbox: Sandbox, tmp_path: Path, tag: str, wait_for: WaitFor
) -> None:
    cache, pusher = tmp_path / f"{tag}-cache.service", tmp_path / f"{tag}-pusher.service"
    cache.write_text(SERVICE)
    r = fleetctl(sandbox, "start", "--block-attempts", "240", str(cache))
    assert r.returncode == 0, r.stdout + r.stderr
    [here] = where_active(sandbox, f"{tag}-*")[cache.name]
    pusher.write_text(
        SERVICE + f"\n[X-Fleet]\nMachineMetadata=hostname={here}\nReplaces={cache.name}\n"
    )
    before = registry(sandbox)

    r = fleetctl(sandbox, "plan", str(pusher))
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    there = lines[2].split(" on ")[1].split(":")[0]
    assert there != here
    assert lines == [
        f"+ unit {pusher.name} (new, launched)",
        f"- unschedule {cache.name} from {here}: stop and unload (replaced by {pusher.name})",
        f"+ schedule {cache.name} on {there}: load and start (best fit (binpack); moved from "
        f"{sandbox.machine(here).machine_id} (replaced by {pusher.name}))",
        f"+ schedule {pusher.name} on {here}: load and start (best fit (binpack))",
        "Plan: 2 to schedule, 0 to update, 1 to unschedule.",
    ]

    # Nothing changed: systemd still runs the unit where it was, the registry is as it was.
    assert where_active(sandbox, f"{tag}-*") == {cache.name: [here]}
    assert registry(sandbox) == before

    # The same plan through the registry (--driver etcd) as through the API.
    api = fleetctl(sandbox, "-o", "json", "plan", str(pusher))
    etcd = fleetctl(sandbox, "--driver", "etcd", "-o", "json", "plan", str(pusher))
    assert (api.returncode, etcd.returncode) == (1, 1), api.stderr + etcd.stderr
    assert json.loads(api.stdout) == json.loads(etcd.stdout)
    assert "default settings" in etcd.stderr
    assert registry(sandbox) == before

    # Starting it does what the plan said.
    r = fleetctl(sandbox, "start", "--block-attempts", "240", str(pusher))
    assert r.returncode == 0, r.stdout + r.stderr

    def as_planned() -> bool:
        return where_active(sandbox, f"{tag}-*") == {pusher.name: [here], cache.name: [there]}

    wait_for(as_planned, 60, "the pusher where the cache was, the cache where the plan said")
    r = fleetctl(sandbox, "plan", str(pusher), str(cache))
    assert (r.returncode, r.stdout) == (
        0,
        "No changes: the cluster already has these units as given.\n",
    ), r.stderr


def test_plan_every_example_unit(sandbox: Sandbox, tmp_path: Path) -> None:
    files = sorted(p.name for p in EXAMPLES.iterdir())
    # A template is planned as one of its instances (fleetctl finds the template beside it).
    names = [INSTANCES.get(name, name) for name in files]
    assert set(INSTANCES) <= set(files)
    paths = [str(EXAMPLES / name) for name in names]
    before = registry(sandbox)
    running = where_active(sandbox, "*")
    for name, path in zip(names, paths, strict=True):
        r = fleetctl(sandbox, "plan", path)
        answer = fleetctl(sandbox, "-o", "json", "plan", path)
        assert answer.returncode == r.returncode, answer.stderr
        [unit] = [u for u in json.loads(answer.stdout)["units"] if u["name"] == name]
        if unit["machineIDs"]:
            assert r.returncode == 1, (name, r.stdout, r.stderr)
            assert f"+ schedule {name} on " in r.stdout, (name, r.stdout)
        else:
            assert r.returncode == 2, (name, r.stdout, r.stderr)
            assert unit["reason"] and unit["reason"] in r.stdout + r.stderr, (name, unit, r)
    # All together, as .ci/demo starts them.
    r = fleetctl(sandbox, "plan", *paths)
    assert r.returncode in (1, 2), r.stdout + r.stderr
    assert all(name in r.stdout + r.stderr for name in names), r.stdout + r.stderr
    assert registry(sandbox) == before
    after = where_active(sandbox, "*")
    assert (
        {u: after.get(u) for u in names}
        == {u: running.get(u) for u in names}
        == dict.fromkeys(names)
    )
