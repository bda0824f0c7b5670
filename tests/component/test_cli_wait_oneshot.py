"""fleetctl's blocking start counts a oneshot service as started once it ran (it is
``inactive`` again then), while any other service must be ``active``."""

from __future__ import annotations

import httpx
import pytest
from apikit import SERVICE, add_machine, make_app, new_store, options_of, report, schedule

from fleetd.cli.backend import ApiBackend
from fleetd.cli.progress import Waiter
from fleetd.model import DesiredState

M1 = "b" * 32
ONESHOT = "[Service]\nType=oneshot\nExecStart=/bin/true\n"


@pytest.mark.parametrize(
    ("text", "ok"),
    [(ONESHOT, True), (SERVICE, False), (ONESHOT + "RemainAfterExit=yes\n", False)],
)
async def test_inactive_after_start_counts_only_for_a_oneshot(text: str, ok: bool) -> None:
    store = new_store()
    await add_machine(store, M1, ip="10.0.0.1")
    app = make_app(store)
    name = "job.service"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://f") as c:
        body = {"name": name, "desiredState": "launched", "options": options_of(text)}
        assert (await c.put(f"/fleet/v1/units/{name}", json=body)).status_code == 201
    await schedule(store, M1, name)
    await report(store, M1, name, active="inactive", sub="dead")
    backend = ApiBackend("http://fleet:1", transport=httpx.ASGITransport(app=app))
    try:
        outcomes = await Waiter(backend, DesiredState.LAUNCHED, attempts=2).wait(
            [name], lambda _o: None
        )
    finally:
        await backend.close()
    assert [o.ok for o in outcomes] == [ok]
