"""How fleetctl shows a maintenance (cli/maintenance.py): following it to its end, one
line per change of a machine; its final line; ``reboot --status``."""

from __future__ import annotations

import asyncio
import shlex
import sys
from collections.abc import Awaitable, Callable

import typer

from fleetd.api import wire
from fleetd.errors import Unavailable
from fleetd.retry import Poll

from .backend import Backend, CliError
from .progress import FIRST_DELAY, readable_reason
from .table import echo_table, printable

MAX_FOLLOW_DELAY = 0.2  # a GET per 0.2 s at least: its end is seen soon after it comes
END_FOLLOW_DELAY = 0.05  # every machine back: only the rebalance is left, its end is near
OVER = ("done", "failed", "cancelled")


def what(record: wire.Maintenance) -> str:
    if record.action == "command" and record.command:
        return "command " + shlex.join(record.command)
    return "reboot"


def name_of(machine_id: str, machines: dict[str, wire.Machine]) -> str:
    found = machines.get(machine_id)
    return found.hostname if found is not None and found.hostname else machine_id[:8]


def final(record: wire.Maintenance, machines: dict[str, wire.Machine]) -> str:
    done = ", ".join(name_of(m.id, machines) for m in record.machines if m.phase == "done")
    if record.phase == "done":
        return f"Maintenance {record.id} done: {what(record)} of {done}"
    if record.phase == "cancelled":
        return (
            f"Maintenance {record.id} cancelled by {record.cancelledBy}: {what(record)} "
            f"of {done or 'no machine'} done, the others not started"
        )
    failure = readable_reason(record.failure or record.message, machines)
    return f"Maintenance {record.id} {record.phase}: {failure}"


def near_end(record: wire.Maintenance) -> bool:
    """No machine waits, drains or is down any more: what is left is the rebalance."""
    return all(m.phase in ("returning", "done", "failed") for m in record.machines)


async def follow(
    backend: Backend,
    ident: str,
    machines: dict[str, wire.Machine],
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> wire.Maintenance:
    """Read the maintenance until it is over; each machine's changes are shown, one line
    each (a maintenance takes minutes: its story stays on the terminal).  The reads
    come at most ``MAX_FOLLOW_DELAY`` apart, ``END_FOLLOW_DELAY`` once it is near its
    end (``near_end``), so that fleetctl ends soon after the maintenance does."""
    last: dict[str, str] = {}
    outage = False
    # outages too: the machine is back soon
    poll = Poll(first=FIRST_DELAY, cap=MAX_FOLLOW_DELAY, sleep=sleep)
    async for _ in poll:
        try:
            record = await backend.maintenance()
        except Unavailable as exc:
            if not outage:  # the API's machine may be the one rebooted
                say(f"WARNING: {exc}; still following")
            outage = True
            continue
        outage = False
        if record.id != ident:
            raise CliError(f"maintenance {ident} is no longer the current one ({record.id} is)")
        changed = False
        for job in record.machines:
            line = f"{job.phase}: {job.detail}"
            if last.get(job.id) != line:
                last[job.id] = line
                changed = True
                if job.phase != "pending":
                    text = readable_reason(line, machines)
                    say(f"{name_of(job.id, machines)}: {text}")
        if record.phase in OVER:
            return record
        if changed:
            poll.reset()
        if near_end(record):
            poll.shorten(END_FOLLOW_DELAY)
    raise AssertionError("unreachable: a poll without attempts or deadline never ends")


def say(line: str) -> None:
    print(printable(line), file=sys.stderr, flush=True)


def show_status(record: wire.Maintenance, machines: dict[str, wire.Machine]) -> None:
    """``reboot --status``: the maintenance, then a row per machine."""
    lines = [
        f"Maintenance {record.id}: {record.phase}",
        f"  {what(record)}, {record.maxUnavailable} machine(s) at a time"
        + ("; serving reboot requests" if record.requested else ""),
        f"  started by {record.startedBy} at {record.started or '-'}"
        + (f"; finished at {record.finished}" if record.finished else ""),
        f"  {readable_reason(record.message, machines)}",
    ]
    if record.cancelledBy:
        lines.append(f"  cancelled by {record.cancelledBy}")
    if record.failure:
        lines.append(f"  failure: {readable_reason(record.failure, machines)}")
    for line in lines:
        typer.echo(printable(line))
    rows = [
        [
            name_of(m.id, machines),
            m.phase,
            m.since or "-",
            "-" if m.exitStatus is None else str(m.exitStatus),
            printable(readable_reason(m.detail, machines)) or "-",
        ]
        for m in record.machines
    ]
    echo_table(["MACHINE", "PHASE", "SINCE", "STATUS", "DETAIL"], rows, legend=True)
