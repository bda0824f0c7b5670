"""SystemdManager's signal handling without a bus: object paths, early JobRemoved, states."""

from __future__ import annotations

from typing import Any

import pytest
from dbus_fast import Message, MessageType, Variant

from fleetd.agent.systemd import (
    MANAGER,
    PROPERTIES,
    UNIT,
    UNIT_PATH_PREFIX,
    SystemdManager,
    unit_name_from_path,
    unit_path_label,
)
from fleetd.agent.units import UnitStatus


def signal(path: str, iface: str, member: str, sig: str, body: list[Any]) -> Message:
    return Message(
        message_type=MessageType.SIGNAL,
        path=path,
        interface=iface,
        member=member,
        signature=sig,
        body=body,
    )


def job_removed(job: str, unit: str, result: str) -> Message:
    return signal(
        "/org/freedesktop/systemd1", MANAGER, "JobRemoved", "uoss", [7, job, unit, result]
    )


class EarlySignals(SystemdManager):
    """Delivers the job's JobRemoved while the StartUnit reply is still on its way."""

    def __init__(self, result: str) -> None:
        super().__init__(job_timeout=1.0)
        self.result = result

    async def _manager(self, member: str, sig: str = "", *body: Any) -> list[Any]:
        job = "/org/freedesktop/systemd1/job/42"
        self._on_message(job_removed(job, body[0], self.result))
        return [job]


@pytest.mark.parametrize(
    "name", ["a.service", "web@1.service", "x-y_z.service", "foo\\x2dbar.mount"]
)
def test_unit_object_paths_round_trip(name: str) -> None:
    label = unit_path_label(name)
    assert label.isascii() and all(c.isalnum() or c == "_" for c in label)
    assert unit_name_from_path(UNIT_PATH_PREFIX + label) == name


def test_unit_path_label_matches_systemd() -> None:
    assert unit_path_label("a.service") == "a_2eservice"
    assert unit_path_label("web@1.service") == "web_401_2eservice"


async def test_job_removed_before_the_start_reply_is_not_lost() -> None:
    manager = EarlySignals("failed")
    assert await manager.start("a.service") == "failed"
    assert manager._jobs_done == {}


async def test_job_result_waits_for_the_signal() -> None:
    manager = SystemdManager(job_timeout=0.05)

    async def start(member: str, sig: str = "", *body: Any) -> list[Any]:
        return ["/org/freedesktop/systemd1/job/1"]

    manager._manager = start  # type: ignore[method-assign]
    assert await manager.start("slow.service") == "timeout"


async def test_properties_changed_updates_tracked_units_only() -> None:
    seen: list[UnitStatus] = []
    manager = SystemdManager(on_change=seen.append)
    manager._tracked = {"a.service"}
    manager._update(UnitStatus("a.service", "loaded", "inactive", "dead"))
    path = UNIT_PATH_PREFIX + unit_path_label("a.service")
    changed = {"ActiveState": Variant("s", "active"), "SubState": Variant("s", "running")}
    manager._on_message(
        signal(path, PROPERTIES, "PropertiesChanged", "sa{sv}as", [UNIT, changed, []])
    )
    other = UNIT_PATH_PREFIX + unit_path_label("b.service")
    manager._on_message(
        signal(other, PROPERTIES, "PropertiesChanged", "sa{sv}as", [UNIT, changed, []])
    )
    assert seen[-1] == UnitStatus("a.service", "loaded", "active", "running")
    assert len(seen) == 2 and "b.service" not in manager.status


def test_shutdown_target_job_reports_shutdown() -> None:
    calls: list[str] = []
    manager = SystemdManager(on_shutdown=lambda: calls.append("down"))
    job_new = "/org/freedesktop/systemd1"
    manager._on_message(signal(job_new, MANAGER, "JobNew", "uos", [1, "/j/1", "nginx.service"]))
    assert calls == []
    manager._on_message(signal(job_new, MANAGER, "JobNew", "uos", [2, "/j/2", "poweroff.target"]))
    assert calls == ["down"]
