"""Runs inside a sandbox machine: print its active units matching a pattern, every interval.

    python -m fleetd.testing.unitwatch PATTERN [INTERVAL] [PIDS_EVERY]

One D-Bus connection to systemd and one ``ListUnitsByPatterns`` call per
sample, so sampling costs systemd about as much as one ``systemctl
list-units`` without starting a process per sample (which, with three
machines sampled every 100 ms, took a sizeable share of the 2-core host the
benchmarks and tests measure).  Each line: ``<CLOCK_MONOTONIC seconds> <unit>
<unit>...`` (the machines share the host's monotonic clock).  With
``PIDS_EVERY`` = N > 0, every Nth sample is followed by ``P <seconds>
<unit>=<MainPID>...`` for the units it found active (their ``MainPID``s asked
``PIDS_AT_ONCE`` at a time).  Runs until stdin closes, or exits with status 3 when systemd does not
answer within ``STALL`` seconds (the caller may start another).
``Sandbox.command(machine, *argv(...))`` starts it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import NoReturn

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

SYSTEMD = "org.freedesktop.systemd1"
# dbus-daemon limits the calls pending on one connection (128 on Debian's system bus).
PIDS_AT_ONCE = 32
STALL = 10.0  # a D-Bus call not answered by then ends the watcher (exit status 3)


def argv(pattern: str, interval: float = 0.1, pids_every: int = 0) -> list[str]:
    """The command line that runs this module with the current interpreter."""
    return [sys.executable, "-m", __name__, pattern, str(interval), str(pids_every)]


async def _call(bus: MessageBus, message: Message) -> Message | None:
    try:
        return await asyncio.wait_for(bus.call(message), STALL)
    except TimeoutError:
        _die(f"{message.member}: no answer from systemd within {STALL:g}s")


def _die(message: str) -> NoReturn:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
    # Not SystemExit: asyncio.run would wait for ever for the thread blocked reading stdin.
    os._exit(3)


async def _main_pid(bus: MessageBus, path: str) -> int:
    reply = await _call(
        bus,
        Message(
            destination=SYSTEMD,
            path=path,
            interface="org.freedesktop.DBus.Properties",
            member="Get",
            signature="ss",
            body=["org.freedesktop.systemd1.Service", "MainPID"],
        ),
    )
    if reply is None or reply.message_type is MessageType.ERROR:
        return 0  # gone meanwhile, or not a service
    value = reply.body[0]
    return int(value.value if isinstance(value, Variant) else value)


async def main(pattern: str, interval: float, pids_every: int) -> None:
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    loop = asyncio.get_running_loop()
    closed = loop.run_in_executor(None, sys.stdin.read)
    call = Message(
        destination=SYSTEMD,
        path="/org/freedesktop/systemd1",
        interface="org.freedesktop.systemd1.Manager",
        member="ListUnitsByPatterns",
        signature="asas",
        body=[["active"], [pattern]],
    )
    count = 0
    while not closed.done():
        began = time.monotonic()
        reply = await _call(bus, call)
        if reply is None or reply.message_type is MessageType.ERROR:
            _die(f"ListUnitsByPatterns failed: {reply and reply.body}")
        rows = reply.body[0]
        sys.stdout.write(f"{began:.6f} {' '.join(row[0] for row in rows)}\n")
        count += 1
        if pids_every > 0 and count % pids_every == 0:
            pids: list[int] = []
            for first in range(0, len(rows), PIDS_AT_ONCE):
                chunk = rows[first : first + PIDS_AT_ONCE]
                pids += await asyncio.gather(*(_main_pid(bus, row[6]) for row in chunk))
            pairs = " ".join(f"{row[0]}={pid}" for row, pid in zip(rows, pids, strict=True))
            sys.stdout.write(f"P {began:.6f} {pairs}\n")
        sys.stdout.flush()
        await asyncio.wait({closed}, timeout=max(0.0, interval - (time.monotonic() - began)))
    bus.disconnect()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(
        main(
            args[0],
            float(args[1]) if len(args) > 1 else 0.1,
            int(args[2]) if len(args) > 2 else 0,
        )
    )
