"""list-units, list-unit-files, list-machines: fleet's columns, or JSON (``shapes.py``).

Default columns are fleet's; a REASON column is added when some unit could
not be placed, and list-machines adds capacity and allocation.  ``--fields``
takes fleet's lower-case field names (plus ours), ``--full`` shows whole
machine ids and hashes, ``--no-legend`` drops the header line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import typer

from fleetd.api import wire
from fleetd.quantity import format_cpu, format_memory

from . import shapes
from .backend import Backend
from .helptext import Command
from .options import Output, options, run
from .progress import readable_reason
from .table import echo_json, echo_table, printable, select

Fields = Annotated[
    str | None,
    typer.Option(
        "--fields",
        envvar="FLEETCTL_FIELDS",
        metavar="FIELDS",
        help="comma-separated columns to show",
    ),
]
Full = Annotated[
    bool, typer.Option("--full", envvar="FLEETCTL_FULL", help="do not shorten ids and hashes")
]
NoLegend = Annotated[
    bool, typer.Option("--no-legend", envvar="FLEETCTL_NO_LEGEND", help="no header line")
]


def machine_legend(
    machine_id: str | None, machines: dict[str, wire.Machine], full: bool, with_ip: bool = True
) -> str:
    """fleet's ``abcd1234.../10.0.0.1`` (``--full``: the whole id)."""
    if not machine_id:
        return "-"
    label = machine_id if full else f"{machine_id[:8]}..."
    machine = machines.get(machine_id)
    if with_ip and machine is not None and machine.primaryIP:
        label = f"{label}/{machine.primaryIP}"
    return label


@dataclass(frozen=True)
class _Row:
    unit: wire.Unit | None
    state: wire.UnitState | None


def _print(
    ctx: typer.Context,
    columns: dict[str, Callable[[_Row], str]],
    default: list[str],
    rows: list[_Row],
    fields: str | None,
    legend: bool,
) -> None:
    chosen = select(dict.fromkeys(columns, ""), fields, default)
    table = [[columns[c](row) for c in chosen] for row in rows]
    echo_table([c.upper() for c in chosen], table, legend)


def list_units(
    ctx: typer.Context, fields: Fields = None, full: Full = False, no_legend: NoLegend = False
) -> None:
    """List the units' states on their machines (and units that could not be placed).

    Fields: unit, machine, active, sub, load, hash, dstate, reason, health (healthy,
    unhealthy or unknown: the unit's HealthCheck= as its machine's agent runs it),
    healthmsg (the last failed check's message).

    Examples:
      fleetctl list-units
      fleetctl list-units --fields unit,machine,active --no-legend
      fleetctl -o json list-units
    """

    async def work(
        backend: Backend,
    ) -> tuple[list[wire.UnitState], list[wire.Unit], list[wire.Machine]]:
        return (
            await backend.list_states(),
            await backend.list_units(),
            await backend.list_machines(),
        )

    states, units, machine_list = run(ctx, work)
    by_name = {u.name: u for u in units}
    reported = {s.name for s in states}
    # A unit with a reason and no state gets a row of its own; one that runs (moving,
    # or unable to leave a draining machine) shows it on its rows.
    unplaced = [u for u in units if u.reason and u.name not in reported]
    explained = any(u.reason for u in units)
    machines = {m.id: m for m in machine_list}
    columns: dict[str, Callable[[_Row], str]] = {
        "unit": lambda r: r.unit.name if r.unit else r.state.name if r.state else "-",
        "machine": lambda r: machine_legend(r.state.machineID if r.state else None, machines, full),
        "active": lambda r: r.state.systemdActiveState if r.state else "-",
        "sub": lambda r: r.state.systemdSubState if r.state else "-",
        "load": lambda r: r.state.systemdLoadState if r.state else "-",
        "hash": lambda r: _hash(r.state.hash if r.state else "", full),
        "dstate": lambda r: r.unit.desiredState if r.unit else "-",
        "reason": lambda r: (
            readable_reason(r.unit.reason, machines, full) if r.unit and r.unit.reason else "-"
        ),
        "health": lambda r: r.state.health or "-" if r.state else "-",
        "healthmsg": lambda r: r.state.healthMessage or "-" if r.state else "-",
    }
    rows = [
        _Row(by_name.get(s.name), s) for s in sorted(states, key=lambda s: (s.name, s.machineID))
    ]
    rows += [_Row(u, None) for u in unplaced]
    rows.sort(key=lambda r: r.unit.name if r.unit else r.state.name if r.state else "")
    if options(ctx).output is Output.JSON:
        echo_json(
            [
                shapes.unit_state(
                    r.state, r.unit, machines.get(r.state.machineID) if r.state else None
                )
                for r in rows
            ]
        )
        return
    default = ["unit", "machine", "active", "sub"] + (["reason"] if explained else [])
    _print(ctx, columns, default, rows, fields, not no_legend)


def _hash(value: str, full: bool) -> str:
    if not value:
        return "-"
    return value if full else value[:7]


def list_unit_files(
    ctx: typer.Context, fields: Fields = None, full: Full = False, no_legend: NoLegend = False
) -> None:
    """List the submitted units: hash, desired and current state, target machine.

    Fields: unit, hash, dstate, state, target, tmachine, global, desc, reason.

    Examples:
      fleetctl list-unit-files
      fleetctl list-unit-files --fields unit,desc --full
    """

    async def work(backend: Backend) -> tuple[list[wire.Unit], list[wire.Machine]]:
        return await backend.list_units(), await backend.list_machines()

    units, machine_list = run(ctx, work)
    if options(ctx).output is Output.JSON:
        echo_json([shapes.unit_file(u) for u in sorted(units, key=lambda u: u.name)])
        return
    machines = {m.id: m for m in machine_list}

    def target(row: _Row) -> str:
        assert row.unit is not None
        if shapes.is_global(row.unit):
            return "global"
        return machine_legend(row.unit.machineID, machines, full)

    columns: dict[str, Callable[[_Row], str]] = {
        "unit": lambda r: r.unit.name if r.unit else "-",
        "hash": lambda r: _hash(r.unit.hash or "" if r.unit else "", full),
        "dstate": lambda r: r.unit.desiredState if r.unit else "-",
        "state": lambda r: (
            "-" if r.unit is None or shapes.is_global(r.unit) else r.unit.currentState
        ),
        "target": target,
        "tmachine": lambda r: machine_legend(
            r.unit.machineID if r.unit else None, machines, full, with_ip=False
        ),
        "global": lambda r: "true" if r.unit and shapes.is_global(r.unit) else "false",
        "desc": lambda r: (shapes.description(r.unit) or "-") if r.unit else "-",
        "reason": lambda r: (
            readable_reason(r.unit.reason, machines, full) if r.unit and r.unit.reason else "-"
        ),
    }
    rows = [_Row(u, None) for u in sorted(units, key=lambda u: u.name)]
    default = ["unit", "hash", "dstate", "state", "target"]
    if any(u.reason for u in units):
        default.append("reason")
    _print(ctx, columns, default, rows, fields, not no_legend)


def _resources(used: wire.Resources | None, total: wire.Resources | None, cpu: bool) -> str:
    if total is None:
        return "-"
    fmt = format_cpu if cpu else format_memory
    have = total.cpuMillis if cpu else total.memoryBytes
    took = (used.cpuMillis if cpu else used.memoryBytes) if used else 0
    return f"{fmt(took)}/{fmt(have)}"


def list_machines(
    ctx: typer.Context, fields: Fields = None, full: Full = False, no_legend: NoLegend = False
) -> None:
    """List the machines with their metadata, capacity and allocation.

    Fields: machine, ip, metadata, hostname, cpu, memory, units, status.

    Examples:
      fleetctl list-machines
      fleetctl list-machines --fields hostname,ip,status --full
    """

    async def work(backend: Backend) -> tuple[list[wire.Machine], wire.Guard | None]:
        return await backend.machine_listing()

    machine_list, guard = run(ctx, work)
    if options(ctx).output is Output.JSON:
        echo_json([shapes.machine(m) for m in sorted(machine_list, key=lambda m: m.id)])
        _guard_note(guard)
        return

    def status(m: wire.Machine) -> str:
        parts = []
        if m.draining:
            parts.append("draining")
        elif m.unschedulable:
            parts.append("cordoned")
        if m.systemdConnected is False:
            parts.append("systemd-unreachable")
        return ",".join(parts) or "ready"

    columns: dict[str, Callable[[wire.Machine], str]] = {
        "machine": lambda m: m.id if full else f"{m.id[:8]}...",
        "ip": lambda m: m.primaryIP or "-",
        "metadata": lambda m: ",".join(f"{k}={v}" for k, v in sorted(m.metadata.items())) or "-",
        "hostname": lambda m: m.hostname or "-",
        "cpu": lambda m: _resources(m.allocated, m.capacity, cpu=True),
        "memory": lambda m: _resources(m.allocated, m.capacity, cpu=False),
        "units": lambda m: str(m.units if m.units is not None else "-"),
        "status": status,
    }
    default = ["machine", "ip", "metadata", "cpu", "memory", "units"]
    if any(status(m) != "ready" for m in machine_list):
        default.append("status")
    chosen = select(dict.fromkeys(columns, ""), fields, default)
    rows = [[columns[c](m) for c in chosen] for m in sorted(machine_list, key=lambda m: m.id)]
    echo_table([c.upper() for c in chosen], rows, not no_legend)
    _guard_note(guard)


def guard_note(guard: wire.Guard) -> str:
    """One line saying that the mass-loss guard holds, until when and what."""
    absent = ", ".join(guard.absent) or "none"
    return (
        f"{guard.reason}; until {guard.until or '?'}: {guard.units} unit(s) of absent "
        f"machine(s) {absent} stay where they are"
    )


def _guard_note(guard: wire.Guard | None) -> None:
    """Under the table, on stderr (the table stays fleet's): the guard, if it holds."""
    if guard is not None:
        typer.echo(printable(guard_note(guard)), err=True)


def register(app: typer.Typer) -> None:
    app.command("list-units", cls=Command)(list_units)
    app.command("list-unit-files", cls=Command)(list_unit_files)
    app.command("list-machines", cls=Command)(list_machines)
