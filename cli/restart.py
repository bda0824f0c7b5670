"""``fleetctl restart``: one unit at a time, as fleet v1.0 did.

For each unit in the order given: set it to ``loaded`` and wait until systemd
on its machine no longer runs it, then set it to ``launched`` and (unless
``--no-block``) wait until it runs again.  The first unit that does not stop
or start ends the command (exit status 1) and the units after it are left
alone, so ``restart web@1 web@2 web@3`` never takes the whole group down.

``--no-block`` still waits for each stop: the cluster keeps only the desired
state, so a start requested before the machine stopped the unit would leave
it running as it was, and nothing would restart.  It does not wait for the
start.
"""

from __future__ import annotations

import typer

from fleetd.errors import Unavailable
from fleetd.model import DesiredState
from fleetd.retry import Poll

from .backend import Backend, CliError
from .helptext import Command
from .options import run, stderr_is_tty
from .progress import FIRST_DELAY, MAX_DELAY, Outcome, Waiter
from .units import BlockAttempts, NoBlock, Print, Units, existing, printer, report

# systemd ActiveStates of a unit that does not run (a failed unit stays failed when stopped).
STOPPED = frozenset({"inactive", "failed"})


async def _stopped(backend: Backend, name: str, attempts: int) -> Outcome:
    """Wait until no machine reports ``name`` running (``attempts`` reads; 0 = for ever)."""
    poll = Poll(first=FIRST_DELAY, cap=MAX_DELAY, attempts=attempts)
    last = "unknown"
    async for _ in poll:
        try:
            states = [s for s in await backend.list_states([name]) if s.name == name]
        except Unavailable:
            last = "unknown (fleetd did not answer)"
        else:
            running = [s for s in states if s.systemdActiveState not in STOPPED]
            if not running:
                return Outcome(name, True, f"Unit {name} stopped", "loaded")
            last = running[0].systemdActiveState
    return Outcome(
        name,
        False,
        f"Unit {name} still {last} after {poll.attempt} attempt(s) (waiting for it to stop)",
    )


async def restart_one(
    backend: Backend, name: str, attempts: int, no_block: bool, show: Print
) -> Outcome:
    """Stop ``name``, wait until it stopped, start it; wait until it runs unless ``no_block``."""
    await backend.set_desired(name, DesiredState.LOADED)
    stopped = await _stopped(backend, name, attempts)
    if not stopped.ok:
        show(stopped)
        return stopped
    await backend.set_desired(name, DesiredState.LAUNCHED)
    if no_block:
        outcome = Outcome(name, True, f"Triggered unit {name} start")
        show(outcome)
        return outcome
    waiter = Waiter(backend, DesiredState.LAUNCHED, "restarted", attempts, live=stderr_is_tty())
    [started] = await waiter.wait([name], show)
    return started


def restart(
    ctx: typer.Context,
    units: Units,
    block_attempts: BlockAttempts = 0,
    no_block: NoBlock = False,
) -> None:
    """Restart units one at a time: stop one, start it again, then the next.

    Each unit is stopped (and seen stopped on its machine), started, and waited
    for until it runs, before the next one is touched; the first unit that does
    not stop or start ends the command (exit status 1), as fleet v1.0 did.  A
    unit that is loaded but not running is started.  --no-block waits for each
    stop but not for the start.

    Examples:
      fleetctl restart web.service
      fleetctl restart web@1 web@2 web@3
      fleetctl restart --no-block web.service
    """

    async def work(backend: Backend) -> list[Outcome]:
        found = await existing(backend, units)
        idle = [u.name for u in found if u.desiredState == "inactive"]
        if idle:
            raise CliError(
                f"not loaded, nothing to restart: {', '.join(idle)} (fleetctl start starts them)"
            )
        names = list(dict.fromkeys(u.name for u in found))
        show = printer(ctx)
        outcomes: list[Outcome] = []
        for index, name in enumerate(names):
            outcome = await restart_one(backend, name, block_attempts, no_block, show)
            outcomes.append(outcome)
            if not outcome.ok:
                left = names[index + 1 :]
                if left:
                    typer.echo(
                        f"Not restarted (stopped at the first failure): {', '.join(left)}", err=True
                    )
                break
        return outcomes

    report(ctx, run(ctx, work))


def register(app: typer.Typer) -> None:
    app.command("restart", cls=Command)(restart)
