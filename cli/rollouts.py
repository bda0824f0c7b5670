"""``fleetctl update``, ``rollback`` and ``rollout``: rolling updates, driven by the engine.

``update FILE...`` submits each file as a new version of its unit and starts
a rollout of it; ``rollback UNIT`` starts a rollout to an older kept version
(``--to N``, else the newest older version with another text).  fleetctl
only starts them and shows their progress: the engine leader drives them,
so fleetctl may exit (``--no-block``, or Ctrl-C) and they go on.  Waiting
ends when every rollout ended (exit 1 if one did not succeed) or awaits a
promotion.  ``rollout status|pause|resume|abort|promote UNIT`` reads or
steers one.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterator, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.status import Status

from fleetd.api import wire
from fleetd.config import parse_duration
from fleetd.errors import Unavailable
from fleetd.retry import Poll
from fleetd.rollouts.record import DEFAULT_DEADLINE, DEFAULT_MIN_HEALTHY, Options

from . import unitargs
from .backend import Backend, CliError
from .helptext import Command
from .options import Output, fail, options, run, stderr_is_tty
from .progress import FIRST_DELAY, MAX_DELAY, readable_reason
from .table import echo_json, echo_table, printable

Files = Annotated[list[str], typer.Argument(metavar="FILE...", help="unit files")]
MaxParallel = Annotated[
    int,
    typer.Option("--max-parallel", metavar="N", help="targets updated at once (at least 1)"),
]
MinHealthy = Annotated[
    str,
    typer.Option(
        "--min-healthy-time",
        metavar="DURATION",
        help="a target counts as updated once active and healthy this long (10s, 500ms, 1m)",
    ),
]
Deadline = Annotated[
    str,
    typer.Option(
        "--healthy-deadline",
        metavar="DURATION",
        help="a target not updated this long after it got the new file fails the rollout",
    ),
]
AutoRevert = Annotated[
    bool,
    typer.Option("--auto-revert", help="on failure, roll the updated targets back"),
]
Canary = Annotated[
    int,
    typer.Option("--canary", metavar="N", help="update N targets, then wait for 'rollout promote'"),
]
StartFirst = Annotated[
    bool,
    typer.Option(
        "--start-first",
        help="a plain unit: start the new copy and wait until it is healthy before the old "
        "one stops",
    ),
]
NoBlock = Annotated[
    bool,
    typer.Option("--no-block", help="start the rollouts and return without following them"),
]
GOOD = frozenset({"succeeded", "awaiting-promotion"})
"""Where following a rollout ends well (the rest of the phases it ends in are failures)."""


def _settings(
    max_parallel: int,
    min_healthy_time: str,
    healthy_deadline: str,
    auto_revert: bool,
    canary: int,
    start_first: bool,
) -> wire.RolloutSettings:
    """The flags as the API's settings; CliError naming the flag for a bad one."""
    try:
        min_healthy = parse_duration(min_healthy_time)
    except ValueError as exc:
        raise CliError(f"--min-healthy-time: {exc}") from None
    try:
        deadline = parse_duration(healthy_deadline)
    except ValueError as exc:
        raise CliError(f"--healthy-deadline: {exc}") from None
    problems = Options(
        max_parallel, min_healthy, deadline, auto_revert, canary, start_first
    ).problems()
    if problems:
        raise CliError("; ".join(problems))
    return wire.RolloutSettings(
        maxParallel=max_parallel,
        minHealthyTime=min_healthy,
        healthyDeadline=deadline,
        autoRevert=auto_revert,
        canary=canary,
        startFirst=start_first,
    )


def update(
    ctx: typer.Context,
    files: Files,
    max_parallel: MaxParallel = 1,
    min_healthy_time: MinHealthy = f"{DEFAULT_MIN_HEALTHY:g}s",
    healthy_deadline: Deadline = f"{DEFAULT_DEADLINE / 60:g}m",
    auto_revert: AutoRevert = False,
    canary: Canary = 0,
    start_first: StartFirst = False,
    no_block: NoBlock = False,
) -> None:
    """Roll units out to new versions of their files, a few targets at a time.

    Each FILE becomes a new version of its unit, rolled out by the engine: a
    template's launched instances, a Global unit's machines, or a plain unit
    in place, each counted once active and healthy for --min-healthy-time.  A target not
    there within --healthy-deadline fails the rollout (--auto-revert: the
    updated ones go back).  fleetctl shows the progress and exits non-zero if
    a rollout does not succeed; the rollout goes on if fleetctl exits.

    Examples:
      fleetctl update --max-parallel 2 web@.service
      fleetctl update --canary 1 --auto-revert --min-healthy-time 30s web@.service
      fleetctl update --no-block db.service
    """
    bodies = []
    try:
        settings = _settings(
            max_parallel, min_healthy_time, healthy_deadline, auto_revert, canary, start_first
        )
        for arg in dict.fromkeys(files):
            name = unitargs.unit_name(arg)
            path = Path(arg)
            if not path.is_file():
                raise CliError(f"{arg}: no such file (update takes unit files)")
            unit_options, _ = unitargs.read_unit_file(path, name)
            bodies.append(
                wire.RolloutRequest(unit=name, options=unit_options, **settings.model_dump())
            )
    except CliError as exc:
        raise fail(str(exc)) from None
    _start_and_follow(ctx, bodies, no_block)


def rollback(
    ctx: typer.Context,
    unit: Annotated[str, typer.Argument(metavar="UNIT", help="a unit name")],
    to: Annotated[
        int | None,
        typer.Option(
            "--to",
            metavar="VERSION",
            min=1,
            help="the version to go back to (default: the newest older one with another file)",
            show_default=False,
        ),
    ] = None,
    max_parallel: MaxParallel = 1,
    min_healthy_time: MinHealthy = f"{DEFAULT_MIN_HEALTHY:g}s",
    healthy_deadline: Deadline = f"{DEFAULT_DEADLINE / 60:g}m",
    auto_revert: AutoRevert = False,
    canary: Canary = 0,
    start_first: StartFirst = False,
    no_block: NoBlock = False,
) -> None:
    """Roll a unit back to an older version of its file (a rollout like update's).

    The old text becomes the unit's newest version; the targets are replaced
    as 'fleetctl update' replaces them, with the same options.

    Examples:
      fleetctl rollback web@.service
      fleetctl rollback --to 3 --max-parallel 2 web@.service
    """
    try:
        settings = _settings(
            max_parallel, min_healthy_time, healthy_deadline, auto_revert, canary, start_first
        )
    except CliError as exc:
        raise fail(str(exc)) from None
    name = unitargs.unit_name(unit)

    async def body(backend: Backend) -> wire.RolloutRequest:
        version = to if to is not None else await _previous(backend, name)
        return wire.RolloutRequest(unit=name, version=version, **settings.model_dump())

    request = run(ctx, body)
    # Said only once the server accepted the rollout: a version that is not kept
    # is refused there, and the refusal must not follow a line saying it is happening.
    _start_and_follow(
        ctx, [request], no_block, intro=f"Rolling {name} back to version {request.version}"
    )


async def _previous(backend: Backend, name: str) -> int:
    """The newest kept version older than the current one, with another text."""
    listing = await backend.versions(name)
    current = next((v for v in listing.versions if v.version == listing.current), None)
    if current is None:
        raise CliError(f"{name}: its current file is not among its kept versions; use --to")
    older = [v for v in listing.versions if v.version < current.version and v.hash != current.hash]
    if not older:
        raise CliError(f"{name}: no older version with another file is kept (see fleetctl history)")
    return older[-1].version


def _start_and_follow(
    ctx: typer.Context,
    bodies: Sequence[wire.RolloutRequest],
    no_block: bool,
    intro: str | None = None,
) -> None:
    """Start a rollout for each body, then follow them; ``intro`` is printed
    once the first one started."""
    as_json = options(ctx).output is Output.JSON

    async def work(backend: Backend) -> list[wire.Rollout]:
        started: list[wire.Rollout] = []
        for body in bodies:
            record = await backend.start_rollout(body)
            if intro is not None and not started:
                typer.echo(intro, err=True)
            typer.echo(
                f"Rollout of {record.unit} started: version {record.fromVersion} -> "
                f"{record.toVersion} (id {record.id})",
                err=True,
            )
            started.append(record)
        if no_block:
            return started
        return await follow(backend, [r.unit for r in started], live=stderr_is_tty())

    ended = run(ctx, work)
    if as_json:
        echo_json([r.model_dump(mode="json") for r in ended])
    elif not no_block:
        for record in ended:
            typer.echo(printable(_final(record)), err=record.phase not in GOOD)
    if not no_block and any(r.phase not in GOOD for r in ended):
        raise typer.Exit(1)


def _final(record: wire.Rollout) -> str:
    if record.phase == "awaiting-promotion":
        return (
            f"Rollout of {record.unit} awaits a promotion: {record.message} "
            f"(fleetctl rollout promote {record.unit})"
        )
    return f"Rollout of {record.unit} {record.phase}: {record.message}"


async def follow(backend: Backend, units: Sequence[str], live: bool) -> list[wire.Rollout]:
    """Read the rollouts of ``units`` until each ended or awaits a promotion; the
    changes of each one's message are shown (on a terminal, as a live line)."""
    pending = list(dict.fromkeys(units))
    if not pending:
        return []
    names = {m.id: m for m in await backend.list_machines()}
    last: dict[str, wire.Rollout] = {}
    poll = Poll(first=FIRST_DELAY, cap=MAX_DELAY)
    outage = False
    with _status(live) as status:
        async for _ in poll:
            try:
                found = await asyncio.gather(*(backend.rollout(u) for u in pending))
            except Unavailable as exc:
                if not outage:
                    _say(status, f"WARNING: {exc}; still following")
                outage = True
            else:
                outage = False
                for record in found:
                    before = last.get(record.unit)
                    if before is None or before.updated != record.updated:
                        poll.reset()
                        if status is None and (before is None or before.message != record.message):
                            _say(None, f"{record.unit}: {readable(record, names).message}")
                    last[record.unit] = readable(record, names)
                    if not record.active or record.phase == "awaiting-promotion":
                        pending.remove(record.unit)
                if not pending:
                    break
                if status is not None:
                    status.update(" | ".join(printable(f"{u}: {last[u].message}") for u in pending))
    return [last[u] for u in dict.fromkeys(units)]


def readable(record: wire.Rollout, machines: dict[str, wire.Machine]) -> wire.Rollout:
    """``record`` with machine ids in its messages shown as their hostnames."""
    targets = [
        t.model_copy(update={"message": readable_reason(t.message, machines)})
        for t in record.targets
    ]
    return record.model_copy(
        update={
            "message": readable_reason(record.message, machines),
            "failure": readable_reason(record.failure, machines),
            "targets": targets,
        }
    )


def _say(status: Status | None, line: str) -> None:
    if status is not None:
        status.console.print(printable(line), markup=False, highlight=False)
    else:
        print(printable(line), file=sys.stderr, flush=True)


@contextlib.contextmanager
def _status(live: bool) -> Iterator[Status | None]:
    if not live:
        yield None
        return
    with Console(stderr=True).status("starting...") as status:
        yield status


class Action(StrEnum):
    STATUS = "status"
    PAUSE = "pause"
    RESUME = "resume"
    ABORT = "abort"
    PROMOTE = "promote"


def rollout(
    ctx: typer.Context,
    action: Annotated[
        Action,
        typer.Argument(metavar="status|pause|resume|abort|promote", help="what to do"),
    ],
    unit: Annotated[
        str | None,
        typer.Argument(metavar="UNIT", help="the rolled unit (status: every rollout if none)"),
    ] = None,
) -> None:
    """Show or steer rollouts: status, pause, resume, abort, promote.

    status shows a rollout with each target's progress (without UNIT: the last
    rollout of every unit).  pause starts no new target (those in flight are
    still followed), resume goes on, promote lets a canary rollout go on to
    every target, abort stops it where it is.

    Examples:
      fleetctl rollout status web@.service
      fleetctl rollout pause web@.service
      fleetctl rollout promote web@.service
    """
    as_json = options(ctx).output is Output.JSON
    if unit is None and action is not Action.STATUS:
        raise fail(f"rollout {action} needs the unit whose rollout to {action}")
    name = unitargs.unit_name(unit) if unit is not None else None

    async def work(backend: Backend) -> list[wire.Rollout]:
        if name is None:
            found = await backend.rollouts()
        elif action is Action.STATUS:
            found = [await backend.rollout(name)]
        else:
            found = [await backend.control_rollout(name, action.value)]
        if as_json:
            return found
        machines = {m.id: m for m in await backend.list_machines()}
        return [readable(r, machines) for r in found]

    found = run(ctx, work)
    if as_json:
        data = [r.model_dump(mode="json") for r in found]
        echo_json(data if name is None else data[0])
    elif name is None:
        rows = [
            [r.unit, r.phase, f"{r.fromVersion} -> {r.toVersion}", printable(r.message)]
            for r in found
        ]
        echo_table(["UNIT", "PHASE", "VERSIONS", "MESSAGE"], rows, legend=True)
    elif action is Action.STATUS:
        _show(found[0])
    else:
        record = found[0]
        typer.echo(printable(f"Rollout of {record.unit}: {record.phase}: {record.message}"))


def _show(r: wire.Rollout) -> None:
    how = [f"max {r.maxParallel} at once", f"min healthy {r.minHealthyTime:g}s"]
    how.append(f"deadline {r.healthyDeadline:g}s")
    if r.canary:
        how.append(f"canary {r.canary}{' (promoted)' if r.promoted else ''}")
    if r.autoRevert:
        how.append("auto-revert")
    lines = [
        f"Rollout {r.id} of {r.unit} ({r.kind}): {r.phase}",
        f"  version {r.fromVersion} ({r.fromHash[:7]}) -> {r.toVersion} ({r.toHash[:7]}); "
        + ", ".join(how),
        f"  started by {r.startedBy} at {r.created or '-'}; last change {r.updated or '-'}",
        f"  {r.message}",
    ]
    if r.failure:
        lines.append(f"  failure: {r.failure}")
    for line in lines:
        typer.echo(printable(line))
    rows = [
        [t.name, t.state, t.hash[:7], t.since or t.started or "-", printable(t.message) or "-"]
        for t in r.targets
    ]
    if rows:
        echo_table(["TARGET", "STATE", "HASH", "SINCE", "MESSAGE"], rows, legend=True)


def register(app: typer.Typer) -> None:
    for command in (update, rollback, rollout):
        app.command(command.__name__, cls=Command)(command)
