"""Blocking until units reach a state (fleet's ``--block-attempts``), with live progress.

Each attempt reads the units once; between attempts the wait grows from
0.1 s to 0.5 s (fleet slept 500 ms).  ``attempts == 0`` waits for ever, as
in fleet.  Every unit ends with one line: where it started, that it failed,
or why it could not be placed.  A reason that may go away by itself (a machine
the unit needs is not registered: ``fleetd.model.awaits_machines``; its fleetd
may be restarting, or re-registering after an etcd blink) is no answer: it is
waited out, and reported only if it is still there after the last attempt.  While
waiting, a live summary is drawn on stderr when it is a terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.status import Status

from fleetd.api import wire
from fleetd.api.service import views
from fleetd.errors import InvalidInput, Unavailable
from fleetd.model import DesiredState, awaits_machines
from fleetd.retry import Poll
from fleetd.unitfile import UnitFile

from .backend import Backend

FIRST_DELAY = 0.1
MAX_DELAY = 0.5
_BULK = 20
_VERBS = {
    DesiredState.LAUNCHED: "started",
    DesiredState.LOADED: "loaded",
    DesiredState.INACTIVE: "unloaded",
}


@dataclass(frozen=True, slots=True)
class Outcome:
    name: str
    ok: bool
    message: str
    state: str = ""
    machine: str | None = None
    reason: str | None = None


def legend(machine_id: str | None, machines: dict[str, wire.Machine], full: bool = False) -> str:
    """``m2 (10.0.0.2)``: the machine's hostname (or short id) and IP."""
    if not machine_id:
        return "-"
    machine = machines.get(machine_id)
    label = machine_id if full else machine_id[:8]
    if machine is None:
        return label
    if machine.hostname and not full:
        label = machine.hostname
    return f"{label} ({machine.primaryIP})" if machine.primaryIP else label


_MACHINE_ID = re.compile(r"\b[0-9a-f]{32}\b")


def readable_reason(text: str, machines: dict[str, wire.Machine], full: bool = False) -> str:
    """A placement reason with each full machine id shown as its hostname (or short id)."""
    if full:
        return text

    def name(match: re.Match[str]) -> str:
        machine = machines.get(match.group(0))
        return machine.hostname if machine and machine.hostname else match.group(0)[:8]

    return _MACHINE_ID.sub(name, text)


class Waiter:
    def __init__(
        self,
        backend: Backend,
        target: DesiredState,
        verb: str | None = None,
        attempts: int = 0,
        live: bool = False,
    ) -> None:
        self.backend = backend
        self.target = target
        self.verb = verb or _VERBS[target]
        self.attempts = attempts
        self.live = live
        self._machines: dict[str, wire.Machine] | None = None

    async def _machine_map(self) -> dict[str, wire.Machine]:
        if self._machines is None:
            self._machines = {m.id: m for m in await self.backend.list_machines()}
        return self._machines

    async def _units(self, names: set[str]) -> dict[str, wire.Unit]:
        if len(names) > _BULK:
            return {u.name: u for u in await self.backend.list_units() if u.name in names}
        found = await asyncio.gather(*(self.backend.get_unit(n) for n in sorted(names)))
        return {u.name: u for u in found if u is not None}

    async def _states(self, units: list[wire.Unit]) -> dict[tuple[str, str], wire.UnitState]:
        """States of the units that reached ``launched`` (one request for all of them)."""
        names = [u.name for u in units]
        if not names:
            return {}
        states = await self.backend.list_states(None if len(names) > _BULK else names)
        return {(s.name, s.machineID): s for s in states}

    async def _outcome(
        self,
        name: str,
        unit: wire.Unit | None,
        states: dict[tuple[str, str], wire.UnitState],
    ) -> Outcome | None:
        """The final outcome for ``name``, or None while it is still on its way."""
        if unit is None:
            return Outcome(name, False, f"Unit {name} does not exist")
        if unit.reason and not unit.machineID and unit.currentState == "inactive":
            if awaits_machines(unit.reason):
                return None  # the machine may register yet: see the module's docstring
            return Outcome(
                name,
                False,
                f"Unit {name} could not be placed: "
                f"{readable_reason(unit.reason, await self._machine_map())}",
                unit.currentState,
                reason=unit.reason,
            )
        if not self._reached(unit):
            return None
        where = ""
        if unit.machineID:
            where = f" on {legend(unit.machineID, await self._machine_map())}"
        if self.target is DesiredState.LAUNCHED and unit.machineID:
            state = states.get((name, unit.machineID))
            active = state.systemdActiveState if state else ""
            if active == "failed":
                return Outcome(
                    name, False, f"Unit {name} failed{where}", unit.currentState, unit.machineID
                )
            if active not in ("active", "reloading") and not (
                _runs_once(unit) and state is not None and active == "inactive"
            ):
                return None
        return Outcome(
            name, True, f"Unit {name} {self.verb}{where}", unit.currentState, unit.machineID
        )

    def _reached(self, unit: wire.Unit) -> bool:
        current = unit.currentState
        if self.target is DesiredState.LAUNCHED:
            return current == "launched"
        if self.target is DesiredState.LOADED:
            if self.verb == "stopped":
                return current != "launched"
            return current == "loaded"
        return current == "inactive"

    async def wait(self, names: Sequence[str], on_done: Callable[[Outcome], None]) -> list[Outcome]:
        pending = list(dict.fromkeys(names))
        if not pending:
            return []
        outcomes: dict[str, Outcome] = {}
        poll = Poll(first=FIRST_DELAY, cap=MAX_DELAY, attempts=self.attempts)
        last: dict[str, wire.Unit] = {}
        outage = False
        with self._status() as status:
            async for _ in poll:
                try:
                    last = await self._attempt(pending, outcomes, on_done)
                except Unavailable as exc:
                    # As fleet's fleetctl: a fleetd restarting (or etcd electing a leader)
                    # is waited for, with one warning per outage; the attempt counts.
                    if not outage:
                        self._warn(status, f"WARNING: {exc}; still waiting")
                    outage = True
                else:
                    outage = False
                if not pending:
                    break
                if status is not None:
                    status.update(self._summary(pending, last))
        for name in pending:
            outcome = await self._timed_out(name, last.get(name), poll.attempt)
            outcomes[name] = outcome
            on_done(outcome)
        return [outcomes[n] for n in dict.fromkeys(names)]

    async def _timed_out(self, name: str, unit: wire.Unit | None, attempts: int) -> Outcome:
        """The outcome of a unit still on its way after the last attempt."""
        state = unit.currentState if unit else "unknown"
        if unit is not None and unit.reason and not unit.machineID and state == "inactive":
            try:
                why = readable_reason(unit.reason, await self._machine_map())
            except Unavailable:
                why = unit.reason
            return Outcome(
                name,
                False,
                f"Unit {name} could not be placed after {attempts} attempt(s): {why}",
                state,
                reason=unit.reason,
            )
        return Outcome(
            name,
            False,
            f"Unit {name} still {state} after {attempts} attempt(s) "
            f"(waiting for {self.target.value})",
            state,
            unit.machineID if unit else None,
        )

    async def _attempt(
        self,
        pending: list[str],
        outcomes: dict[str, Outcome],
        on_done: Callable[[Outcome], None],
    ) -> dict[str, wire.Unit]:
        """Read the pending units once; settle (remove from ``pending``) those that got there."""
        last = await self._units(set(pending))
        launched = [
            u
            for u in last.values()
            if self.target is DesiredState.LAUNCHED and self._reached(u) and u.machineID
        ]
        states = await self._states(launched)
        for name in list(pending):
            outcome = await self._outcome(name, last.get(name), states)
            if outcome is not None:
                outcomes[name] = outcome
                pending.remove(name)
                on_done(outcome)
        return last

    @staticmethod
    def _warn(status: Status | None, message: str) -> None:
        if status is not None:
            status.console.print(message, markup=False, highlight=False)
        else:
            print(message, file=sys.stderr, flush=True)

    def _summary(self, pending: list[str], units: dict[str, wire.Unit]) -> str:
        shown = []
        for name in pending[:5]:
            unit = units.get(name)
            shown.append(f"{name} ({unit.currentState if unit else '?'})")
        more = f" and {len(pending) - 5} more" if len(pending) > 5 else ""
        return f"waiting for {self.target.value}: {', '.join(shown)}{more}"

    @contextlib.contextmanager
    def _status(self) -> Iterator[Status | None]:
        if not self.live:
            yield None
            return
        console = Console(stderr=True)
        with console.status(f"waiting for {self.target.value}...") as status:
            yield status


def _runs_once(unit: wire.Unit) -> bool:
    """See ``views.runs_once``: such a unit is ``inactive`` again once it ran."""
    try:
        return views.file_runs_once(
            UnitFile.from_options((o.section, o.name, o.value) for o in unit.options)
        )
    except InvalidInput:
        return False
