"""Runs inside a sandbox machine: print its active units matching a pattern, every interval.

    python unit_watch.py PATTERN [INTERVAL]

One D-Bus connection to systemd and one ``ListUnitsByPatterns`` call per
sample, so sampling costs systemd about as much as one ``systemctl
list-units`` without starting a process per sample (which, with three
machines sampled every 100 ms, took a sizeable share of the 2-core host the
benchmarks measure).  Each line: ``<CLOCK_MONOTONIC seconds> <unit> <unit>...``
(the machines share the host's monotonic clock).  Runs until stdin closes.
"""

from __future__ import annotations

import asyncio
import sys
import time

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus


async def main(pattern: str, interval: float) -> None:
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    loop = asyncio.get_running_loop()
    closed = loop.run_in_executor(None, sys.stdin.read)
    call = Message(
        destination="org.freedesktop.systemd1",
        path="/org/freedesktop/systemd1",
        interface="org.freedesktop.systemd1.Manager",
        member="ListUnitsByPatterns",
        signature="asas",
        body=[["active"], [pattern]],
    )
    while not closed.done():
        began = time.monotonic()
        reply = await bus.call(call)
        if reply is None or reply.message_type is MessageType.ERROR:
            raise SystemExit(f"ListUnitsByPatterns failed: {reply and reply.body}")
        names = " ".join(row[0] for row in reply.body[0])
        sys.stdout.write(f"{began:.6f} {names}\n")
        sys.stdout.flush()
        await asyncio.wait({closed}, timeout=max(0.0, interval - (time.monotonic() - began)))
    bus.disconnect()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 0.1))
