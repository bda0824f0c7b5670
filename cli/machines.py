"""cordon, uncordon, drain: a machine named by its hostname or by (a prefix of) its id.

``drain`` cordons the machine, has the engine move its units elsewhere and
waits, as ``start`` does, until the machine holds none: no unit scheduled to
it and none left in its systemd (``--no-block`` returns at once,
``--block-attempts N`` gives up after N checks).  While it waits, a live line
on a terminal says what is left.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Annotated

import typer
from rich.console import Console
from rich.status import Status

from fleetd.api import wire
from fleetd.errors import Unavailable
from fleetd.retry import Poll

from . import completion, shapes
from .backend import Backend, CliError
from .helptext import Command
from .options import Output, options, run, stderr_is_tty
from .progress import FIRST_DELAY, MAX_DELAY
from .table import echo_json
from .units import BlockAttempts, NoBlock

Machine = Annotated[
    str,
    typer.Argument(
        help="the machine's hostname, or its id or a unique prefix of it (see list-machines)",
        metavar="MACHINE",
        show_default=False,
        autocompletion=completion.machines,
    ),
]


def describe(machine: wire.Machine) -> str:
    """``<id> (<hostname>, <ip>)``: how a machine is named in messages."""
    parts = [p for p in (machine.hostname, machine.primaryIP) if p]
    return f"{machine.id} ({', '.join(parts)})" if parts else machine.id


def resolve(arg: str, machines: list[wire.Machine]) -> wire.Machine:
    """The one machine ``arg`` names: its whole id, its hostname or a prefix of its id."""
    exact = [m for m in machines if m.id == arg]
    if exact:
        return exact[0]
    found = [m for m in machines if arg and (m.hostname == arg or m.id.startswith(arg))]
    if not found:
        raise CliError(
            f"machine {arg!r} not found: give a hostname or a machine id (or a unique "
            "prefix of it) as list-machines shows"
        )
    if len(found) > 1:
        candidates = "; ".join(describe(m) for m in sorted(found, key=lambda m: m.id))
        raise CliError(
            f"machine {arg!r} is ambiguous, it names {len(found)} machines: {candidates}"
        )
    return found[0]


@contextlib.contextmanager
def _live(text: str) -> Iterator[Status | None]:
    if not stderr_is_tty():
        yield None
        return
    with Console(stderr=True).status(text) as status:
        yield status


async def _left(backend: Backend, machine_id: str) -> list[str] | None:
    """The units still scheduled to or running on the machine (None: fleetd did not answer)."""
    try:
        units = await backend.list_units()
        states = await backend.list_states()
    except Unavailable:
        return None
    names = {u.name for u in units if u.machineID == machine_id}
    names.update(s.name for s in states if s.machineID == machine_id)
    return sorted(names)


async def wait_drained(backend: Backend, machine: wire.Machine, attempts: int) -> tuple[bool, str]:
    """Wait until ``machine`` holds no units: (done, the line that says so or what is left)."""
    label = machine.hostname or machine.id[:8]
    poll = Poll(first=FIRST_DELAY, cap=MAX_DELAY, attempts=attempts)
    left: list[str] | None = None
    with _live(f"draining {label}...") as status:
        async for _ in poll:
            now = await _left(backend, machine.id)
            if now is not None:
                left = now
                if not left:
                    return True, f"Machine {describe(machine)} drained: it holds no units"
                if status is not None:
                    more = f" and {len(left) - 5} more" if len(left) > 5 else ""
                    status.update(f"draining {label}: {', '.join(left[:5])}{more} still there")
    still = ", ".join(left) if left else "unknown (fleetd did not answer)"
    return False, (
        f"Machine {describe(machine)} still holds {still} after {poll.attempt} attempt(s)"
    )


def _command(action: str, done: str, doc: str) -> Callable[..., None]:
    def command(ctx: typer.Context, machine: Machine) -> None:
        async def work(backend: Backend) -> tuple[wire.Machine, wire.MachineFlags]:
            target = resolve(machine, await backend.list_machines())
            return target, await backend.machine_action(target.id, action)

        target, flags = run(ctx, work)
        if options(ctx).output is Output.JSON:
            echo_json(shapes.machine_flags(flags))
        else:
            typer.echo(f"Machine {target.id} {done}")

    command.__doc__ = doc
    return command


def drain(
    ctx: typer.Context,
    machine: Machine,
    block_attempts: BlockAttempts = 0,
    no_block: NoBlock = False,
) -> None:
    """Cordon a machine and move its units to other machines; waits until it holds none.

    Ends with "Machine ... drained: it holds no units", or (exit status 1)
    with the units still there when --block-attempts runs out.  uncordon ends
    a drain.

    Examples:
      fleetctl drain m2
      fleetctl drain --no-block 5e6f7a8b
    """

    async def work(backend: Backend) -> tuple[wire.Machine, wire.MachineFlags, bool, str]:
        target = resolve(machine, await backend.list_machines())
        flags = await backend.machine_action(target.id, "drain")
        if no_block:
            return (
                target,
                flags,
                True,
                (f"Machine {describe(target)} draining: its units are moving elsewhere"),
            )
        done, line = await wait_drained(backend, target, block_attempts)
        return target, flags, done, line

    _, flags, done, line = run(ctx, work)
    if options(ctx).output is Output.JSON:
        echo_json({**shapes.machine_flags(flags), "drained": done and not no_block})
    else:
        typer.echo(line, err=not done)
    if not done:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("cordon", cls=Command)(
        _command(
            "cordon",
            "cordoned",
            """Keep new units off a machine (its units keep running).

            Examples:
              fleetctl cordon m2
              fleetctl cordon 5e6f7a8b
            """,
        )
    )
    app.command("uncordon", cls=Command)(
        _command(
            "uncordon",
            "uncordoned",
            """Let units be placed on a machine again (ends a drain).

            Example:
              fleetctl uncordon m2
            """,
        )
    )
    app.command("drain", cls=Command)(drain)
