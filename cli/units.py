"""fleetctl's unit commands: submit, load, start, stop, unload, destroy (restart: restart.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, TypeVar

import typer

from fleetd.api import wire
from fleetd.api.service.commands import UnitChange
from fleetd.model import DesiredState

from . import completion, shapes, unitargs
from .backend import Backend, CliError
from .helptext import Command
from .options import Output, options, run, stderr_is_tty
from .progress import Outcome, Waiter
from .table import echo_json

T = TypeVar("T")
R = TypeVar("R")
CONCURRENCY = 32
BULK = 20  # more unit arguments than this: list the units once
Units = Annotated[
    list[str],
    typer.Argument(
        help="unit files or unit names",
        metavar="UNIT...",
        show_default=False,
        autocompletion=completion.units,
    ),
]
Replace = Annotated[
    bool,
    typer.Option(
        "--replace",
        envvar="FLEETCTL_REPLACE",
        help="replace units already in the cluster whose contents differ from the local file",
    ),
]
BlockAttempts = Annotated[
    int,
    typer.Option(
        "--block-attempts",
        envvar="FLEETCTL_BLOCK_ATTEMPTS",
        min=0,
        metavar="N",
        help="wait until the units reach their state, checking N times; 0 = for ever",
    ),
]
NoBlock = Annotated[
    bool,
    typer.Option(
        "--no-block", envvar="FLEETCTL_NO_BLOCK", help="do not wait for the units to get there"
    ),
]


# fleet's wording for --no-block ("Triggered unit foo.service start").
_TRIGGERED = {
    "started": "start",
    "loaded": "load",
    "stopped": "stop",
    "unloaded": "unload",
    "restarted": "start",
}


async def _each(items: Sequence[T], work: Callable[[T], Awaitable[R]]) -> list[R]:
    """``work`` on every item, at most CONCURRENCY at a time, results in order."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(item: T) -> R:
        async with gate:
            return await work(item)

    return list(await asyncio.gather(*(one(i) for i in items)))


async def ensure_units(
    backend: Backend,
    args: Sequence[str],
    replace: bool,
    desired: DesiredState | None = None,
    created: set[str] | None = None,
) -> list[str]:
    """fleet's lazy creation: each unit exists afterwards (from its file or template).

    Every argument is resolved before anything is written, so one bad
    argument leaves the cluster unchanged.  New units are created with
    ``desired`` (one request instead of two) and their names added to ``created``.
    """

    plan = await resolve_units(backend, args, replace)

    def done(step: Step, remote: Sequence[str]) -> None:
        local = (*step.notes, *unitargs.warnings_of(step.name, step.options or []))
        for warning in dict.fromkeys((*local, *remote)):
            typer.echo(f"WARNING: {step.name}: {warning}", err=True)
        if step.replacing:
            typer.echo(f"Replaced unit {step.name}", err=True)
        elif created is not None:
            created.add(step.name)

    async def write(step: Step) -> None:
        remote = await backend.create_unit(
            step.name,
            step.options or [],
            None if step.replacing else desired,
            replace=step.replacing,
        )
        done(step, remote)

    writes = [step for step in plan if step.options is not None]
    if len(writes) > 1:
        for replacing in (False, True):
            group = [step for step in writes if step.replacing is replacing]
            changes = [
                UnitChange(step.name, step.options, None if replacing else desired)
                for step in group
            ]
            remote = await backend.write_units(changes, replace=replacing) if changes else {}
            for step in group:
                done(step, remote.get(step.name, ()))
    else:
        await _each(writes, write)
    return list(dict.fromkeys(step.name for step in plan))


@dataclass(frozen=True, slots=True)
class Step:
    """What ``ensure_units`` does for one argument: write ``options`` (None: nothing),
    ``replacing`` the unit's file; ``notes``: warnings about the local file."""

    name: str
    options: list[wire.UnitOption] | None
    replacing: bool
    notes: tuple[str, ...] = ()


async def resolve_units(backend: Backend, args: Sequence[str], replace: bool) -> list[Step]:
    """fleet's lazy creation, decided and not done: for each distinct argument, the file
    to write (from a local file or a template) or none (the unit exists as it is).
    A local file that differs from the unit in the cluster is written only if
    ``replace`` (else a warning).  CliError names the first argument not found."""
    known: dict[str, wire.Unit] | None = None
    if len(args) > BULK:
        known = {u.name: u for u in await backend.list_units()}

    siblings = unitargs.template_files(args)

    async def resolve(arg: str) -> Step:
        name = unitargs.unit_name(arg)
        existing = known.get(name) if known is not None else await backend.get_unit(name)
        if existing is None:
            source = await unitargs.find_source(backend, arg, known, siblings)
            return Step(name, source.options, False, source.notes)
        local = unitargs.local_source(arg)
        if local is not None and not unitargs.same_options(local.options, existing.options):
            if replace:
                return Step(name, local.options, True, local.notes)
            typer.echo(
                f"WARNING: Unit {name} in the cluster differs from local unit file "
                f"{arg}. Add --replace to override.",
                err=True,
            )
        return Step(name, None, False)

    return await _each(list(dict.fromkeys(args)), resolve)


async def _set_all(backend: Backend, names: Sequence[str], target: DesiredState) -> None:
    if len(names) > 1:
        await backend.write_units([UnitChange(n, desired=target) for n in names], replace=False)
        return

    async def one(name: str) -> None:
        await backend.set_desired(name, target)

    await _each(names, one)


async def existing(backend: Backend, args: Sequence[str]) -> list[wire.Unit]:
    units = []
    for arg in args:
        name = unitargs.unit_name(arg)
        unit = await backend.get_unit(name)
        if unit is None:
            raise CliError(f"unit {name} does not exist")
        units.append(unit)
    return units


def report(ctx: typer.Context, outcomes: list[Outcome]) -> None:
    if options(ctx).output is Output.JSON:
        echo_json([shapes.outcome(o) for o in outcomes])
    if not all(o.ok for o in outcomes):
        raise typer.Exit(1)


def printer(ctx: typer.Context) -> Print:
    return Print(options(ctx).output is Output.TABLE)


class Print:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, outcome: Outcome) -> None:
        if self.enabled:
            typer.echo(outcome.message, err=not outcome.ok)


async def _set_and_wait(
    ctx: typer.Context,
    backend: Backend,
    names: Sequence[str],
    target: DesiredState,
    verb: str,
    attempts: int,
    no_block: bool,
    already: set[str] | frozenset[str] = frozenset(),
) -> list[Outcome]:
    await _set_all(backend, [n for n in names if n not in already], target)
    if no_block:
        action = _TRIGGERED.get(verb, verb)
        outcomes = [Outcome(n, True, f"Triggered unit {n} {action}") for n in names]
        for outcome in outcomes:
            printer(ctx)(outcome)
        return outcomes
    waiter = Waiter(backend, target, verb=verb, attempts=attempts, live=stderr_is_tty())
    return await waiter.wait(names, printer(ctx))


def submit(ctx: typer.Context, units: Units, replace: Replace = False) -> None:
    """Upload unit files to the cluster without loading or starting them.

    Examples:
      fleetctl submit web.service
      fleetctl submit --replace units/*.service
    """

    async def work(backend: Backend) -> None:
        for name in await ensure_units(backend, units, replace):
            if options(ctx).output is Output.TABLE:
                typer.echo(f"Unit {name} submitted")
        if options(ctx).output is Output.JSON:
            echo_json([{"name": unitargs.unit_name(u), "ok": True} for u in units])

    run(ctx, work)


def _lifecycle(
    ctx: typer.Context,
    units: Sequence[str],
    target: DesiredState,
    verb: str,
    replace: bool,
    attempts: int,
    no_block: bool,
) -> None:
    async def work(backend: Backend) -> list[Outcome]:
        created: set[str] = set()
        names = await ensure_units(backend, units, replace, target, created)
        return await _set_and_wait(
            ctx, backend, names, target, verb, attempts, no_block, already=created
        )

    report(ctx, run(ctx, work))


def load(
    ctx: typer.Context,
    units: Units,
    replace: Replace = False,
    block_attempts: BlockAttempts = 0,
    no_block: NoBlock = False,
) -> None:
    """Schedule units onto machines and load them into systemd, without starting them.

    Examples:
      fleetctl load web.service
      fleetctl load --no-block web@1 web@2
    """
    _lifecycle(ctx, units, DesiredState.LOADED, "loaded", replace, block_attempts, no_block)


def start(
    ctx: typer.Context,
    units: Units,
    replace: Replace = False,
    block_attempts: BlockAttempts = 0,
    no_block: NoBlock = False,
) -> None:
    """Submit (if needed), schedule and start units; waits until they run.

    Each unit ends with one line: where it started, that it failed, or why it
    could not be placed (exit status 1).

    Examples:
      fleetctl start web.service
      fleetctl start --block-attempts 60 web@{1..3}.service
      fleetctl start --no-block units/*.service
    """
    _lifecycle(ctx, units, DesiredState.LAUNCHED, "started", replace, block_attempts, no_block)


def stop(
    ctx: typer.Context,
    units: Units,
    block_attempts: BlockAttempts = 0,
    no_block: NoBlock = False,
) -> None:
    """Stop units; they stay loaded on their machines.

    Examples:
      fleetctl stop web.service
      fleetctl stop --no-block web@1 web@2
    """

    async def work(backend: Backend) -> list[Outcome]:
        targets = []
        for unit in await existing(backend, units):
            if unit.desiredState == "inactive":
                typer.echo(f"Unit {unit.name} is not loaded; nothing to stop", err=True)
                continue
            targets.append(unit.name)
        return await _set_and_wait(
            ctx, backend, targets, DesiredState.LOADED, "stopped", block_attempts, no_block
        )

    report(ctx, run(ctx, work))


def unload(
    ctx: typer.Context,
    units: Units,
    block_attempts: BlockAttempts = 0,
    no_block: NoBlock = False,
) -> None:
    """Stop units and remove them from their machines; they stay submitted.

    Example:
      fleetctl unload web.service
    """

    async def work(backend: Backend) -> list[Outcome]:
        names = [u.name for u in await existing(backend, units)]
        return await _set_and_wait(
            ctx, backend, names, DesiredState.INACTIVE, "unloaded", block_attempts, no_block
        )

    report(ctx, run(ctx, work))


def destroy(ctx: typer.Context, units: Units) -> None:
    """Remove units from the cluster entirely (stopping and unloading them).

    Example:
      fleetctl destroy web.service web@1.service
    """

    async def work(backend: Backend) -> list[dict[str, object]]:
        done = []
        for arg in units:
            name = unitargs.unit_name(arg)
            existed = await backend.destroy(name)
            if options(ctx).output is Output.TABLE:
                typer.echo(f"Destroyed {name}" if existed else f"Unit {name} does not exist")
            done.append({"name": name, "destroyed": existed})
        return done

    result = run(ctx, work)
    if options(ctx).output is Output.JSON:
        echo_json(result)


def register(app: typer.Typer) -> None:
    for command in (submit, load, start, stop, unload, destroy):
        app.command(command.__name__, cls=Command)(command)
