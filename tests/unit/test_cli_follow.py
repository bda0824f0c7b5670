"""fleetctl following a maintenance (cli/maintview.py): how often it reads the record,
on injected time; once every machine is back it reads often, so that it ends soon
after the maintenance does."""

from __future__ import annotations

from typing import cast

import pytest

from fleetd.api import wire
from fleetd.cli.backend import Backend
from fleetd.cli.maintview import END_FOLLOW_DELAY, MAX_FOLLOW_DELAY, follow

M1, M2 = "a" * 32, "b" * 32


def record(phase: str, *jobs: str, detail: str = "") -> wire.Maintenance:
    machines = [
        wire.MaintenanceMachine.model_validate(
            {"id": m, "phase": p, "detail": detail or p, "since": None}
        )
        for m, p in zip((M1, M2), jobs, strict=True)
    ]
    return wire.Maintenance.model_validate(
        {
            "id": "maintenance-1",
            "phase": phase,
            "action": "reboot",
            "maxUnavailable": 1,
            "startedBy": "admin",
            "started": None,
            "finished": None,
            "message": "",
            "failure": "",
            "requested": False,
            "machines": machines,
        }
    )


class Reads:
    """A backend whose maintenance is each of ``records`` in turn (the last one stays)."""

    def __init__(self, records: list[wire.Maintenance]) -> None:
        self.records = records
        self.reads = 0

    async def maintenance(self) -> wire.Maintenance:
        found = self.records[min(self.reads, len(self.records) - 1)]
        self.reads += 1
        return found


async def pauses(records: list[wire.Maintenance]) -> tuple[list[float], wire.Maintenance]:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(round(seconds, 6))

    backend = Reads(records)
    found = await follow(cast(Backend, backend), "maintenance-1", {}, sleep=sleep)
    return waits, found


async def test_reads_at_most_max_follow_delay_apart_while_machines_are_under_way(
    capsys: pytest.CaptureFixture[str],
) -> None:
    acting = record("running", "acting", "pending")
    waits, found = await pauses([acting] * 5 + [record("done", "done", "done")])
    assert waits == [0.1, 0.2, 0.2, 0.2, MAX_FOLLOW_DELAY]
    assert found.phase == "done"
    assert "acting" in capsys.readouterr().err


async def test_once_every_machine_is_back_it_reads_every_end_follow_delay(
    capsys: pytest.CaptureFixture[str],
) -> None:
    acting = record("running", "returning", "acting")
    back = record("running", "returning", "returning", detail="rebalancing: 3 to come")
    one_done = record("running", "done", "returning", detail="rebalancing: 1 to come")
    records = [acting, acting, acting, back, back, back, one_done, one_done]
    waits, found = await pauses([*records, record("done", "done", "done")])
    # three reads while one is down, then shortened once both are back, and it stays short
    assert waits == [0.1, 0.2, 0.2, *[END_FOLLOW_DELAY] * 5]
    assert END_FOLLOW_DELAY < MAX_FOLLOW_DELAY
    assert found.phase == "done"
    assert "rebalancing: 1 to come" in capsys.readouterr().err
