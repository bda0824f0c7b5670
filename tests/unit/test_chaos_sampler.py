"""The chaos run's sampler (fleetd/testing/chaos/sampler.py) with stand-in watchers (local
processes instead of D-Bus watchers inside sandbox machines): one that falls silent is
killed, with what it forked, and started again."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, cast

from fleetd.sandbox import Sandbox
from fleetd.testing.chaos.history import Record
from fleetd.testing.chaos.sampler import Sampler

# One sample, then silence in a forked child that keeps stdout open (as nsenter's does)
# until stdin is closed (as the real watcher does when the sampler stops).
SILENT = (
    "import os, sys\n"
    "print('1.0 a.service', flush=True)\n"
    "if os.fork() == 0:\n"
    "    sys.stdin.read()\n"
    "    os._exit(0)\n"
    "os.wait()\n"
)


@dataclass(frozen=True)
class _Machine:
    name: str


class _Sandbox:
    machines = (_Machine("m1"),)

    def running(self, name: str) -> bool:
        return True

    def command(self, name: str, *argv: str) -> list[str]:
        return [sys.executable, "-c", SILENT]


def test_a_silent_watcher_is_killed_with_its_children_and_started_again() -> None:
    records: list[Record] = []
    changed = threading.Condition()

    def record(r: Record) -> None:
        with changed:
            records.append(r)
            changed.notify_all()

    def events() -> list[Any]:
        return [r.get("event") for r in records if r.get("kind") == "watcher"]

    sampler = Sampler(cast(Sandbox, _Sandbox()), "chaos-*", record, stall=0.5)
    sampler.start()
    try:
        with changed:
            deadline = time.monotonic() + 20
            while events().count("started") < 2:
                assert changed.wait(max(0.0, deadline - time.monotonic())), events()
    finally:
        sampler.stop()
    assert events()[:3] == ["started", "stalled", "ended"]
    assert sampler.samples["m1"] >= 2  # one from each watcher
