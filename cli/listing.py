"""list-units, list-unit-files, list-machines (fleet's columns) and cordon/uncordon/drain.

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
from fleetd.api import models

from fleetd.quantity import format_cpu, format_memory

from .backend import Backend, CliError
from .options import Output, options, run
from .progress import readable_reason
from .table import echo_json, echo_table, select

Fields = Annotated[
    str | None,
    typer.Option("--fields", envvar="FLEETCTL_FIELDS", help="comma-separated columns to show"),
]
Full = Annotated[
    bool, typer.Option("--full", envvar="FLEETCTL_FULL", help="do not shorten ids and hashes")
]
NoLegend = Annotated[
    bool, typer.Option("--no-legend", envvar="FLEETCTL_NO_LEGEND", help="no header line")
]


def machine_legend(
    machine_id: str | None, machines: dict[str, models.Machine], full: bool, with_ip: bool = True
) -> str:
    """fleet's ``abcd1234.../10.0.0.1`` (``--full``: the whole id)."""
    if not machine_id:
        return "-"
    label = machine_id if full else f"{machine_id[:8]}..."
    machine = machines.get(machine_id)
    if with_ip and machine is not None and machine.primaryIP:
        label = f"{label}/{machine.primaryIP}"
    return label


def _description(unit: models.Unit) -> str:
    for option in unit.options:
        if option.section == "Unit" and option.name == "Description":
            return option.value
    return "-"


def _is_global(unit: models.Unit) -> bool:
    return any(
        o.section == "X-Fleet" and o.name == "Global" and o.value.strip().lower() == "true"
        for o in unit.options
    )


@dataclass(frozen=True)
class _Row:
    unit: models.Unit | None
    state: models.UnitState | None


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
    """List the units' states on their machines (and units that could not be placed)."""

    async def work(
        backend: Backend,
    ) -> tuple[list[models.UnitState], list[models.Unit], list[models.Machine]]:
        return (
            await backend.list_states(),
            await backend.list_units(),
            await backend.list_machines(),
        )

    states, units, machine_list = run(ctx, work)
    by_name = {u.name: u for u in units}
    unplaced = [u for u in units if u.reason]
    if options(ctx).output is Output.JSON:
        echo_json(
            {
                "states": [s.model_dump(mode="json") for s in states],
                "unplaceable": [{"name": u.name, "reason": u.reason} for u in unplaced],
            }
        )
        return
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
            readable_reason(r.unit.reason, machines, full)
            if r.unit and r.unit.reason and not r.state
            else "-"
        ),
    }
    rows = [
        _Row(by_name.get(s.name), s) for s in sorted(states, key=lambda s: (s.name, s.machineID))
    ]
    rows += [_Row(u, None) for u in unplaced]
    rows.sort(key=lambda r: r.unit.name if r.unit else r.state.name if r.state else "")
    default = ["unit", "machine", "active", "sub"] + (["reason"] if unplaced else [])
    _print(ctx, columns, default, rows, fields, not no_legend)


def _hash(value: str, full: bool) -> str:
    if not value:
        return "-"
    return value if full else value[:7]


def list_unit_files(
    ctx: typer.Context, fields: Fields = None, full: Full = False, no_legend: NoLegend = False
) -> None:
    """List the submitted units: hash, desired and current state, target machine."""

    async def work(backend: Backend) -> tuple[list[models.Unit], list[models.Machine]]:
        return await backend.list_units(), await backend.list_machines()

    units, machine_list = run(ctx, work)
    if options(ctx).output is Output.JSON:
        echo_json([u.model_dump(mode="json", exclude_none=True) for u in units])
        return
    machines = {m.id: m for m in machine_list}

    def target(row: _Row) -> str:
        assert row.unit is not None
        if _is_global(row.unit):
            return "global"
        return machine_legend(row.unit.machineID, machines, full)

    columns: dict[str, Callable[[_Row], str]] = {
        "unit": lambda r: r.unit.name if r.unit else "-",
        "hash": lambda r: _hash(r.unit.hash or "" if r.unit else "", full),
        "dstate": lambda r: r.unit.desiredState if r.unit else "-",
        "state": lambda r: "-" if r.unit is None or _is_global(r.unit) else r.unit.currentState,
        "target": target,
        "tmachine": lambda r: machine_legend(
            r.unit.machineID if r.unit else None, machines, full, with_ip=False
        ),
        "global": lambda r: "true" if r.unit and _is_global(r.unit) else "false",
        "desc": lambda r: _description(r.unit) if r.unit else "-",
        "reason": lambda r: (
            readable_reason(r.unit.reason, machines, full) if r.unit and r.unit.reason else "-"
        ),
    }
    rows = [_Row(u, None) for u in sorted(units, key=lambda u: u.name)]
    default = ["unit", "hash", "dstate", "state", "target"]
    if any(u.reason for u in units):
        default.append("reason")
    _print(ctx, columns, default, rows, fields, not no_legend)


def _resources(used: models.Resources | None, total: models.Resources | None, cpu: bool) -> str:
    if total is None:
        return "-"
    fmt = format_cpu if cpu else format_memory
    have = total.cpuMillis if cpu else total.memoryBytes
    took = (used.cpuMillis if cpu else used.memoryBytes) if used else 0
    return f"{fmt(took)}/{fmt(have)}"


def list_machines(
    ctx: typer.Context, fields: Fields = None, full: Full = False, no_legend: NoLegend = False
) -> None:
    """List the machines with their metadata, capacity and allocation."""

    async def work(backend: Backend) -> list[models.Machine]:
        return await backend.list_machines()

    machine_list = run(ctx, work)
    if options(ctx).output is Output.JSON:
        echo_json([m.model_dump(mode="json", exclude_none=True) for m in machine_list])
        return

    def status(m: models.Machine) -> str:
        parts = []
        if m.draining:
            parts.append("draining")
        elif m.unschedulable:
            parts.append("cordoned")
        if m.systemdConnected is False:
            parts.append("systemd-unreachable")
        return ",".join(parts) or "ready"

    columns: dict[str, Callable[[models.Machine], str]] = {
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


def _machine_command(action: str, done: str) -> Callable[..., None]:
    def command(
        ctx: typer.Context,
        machine: Annotated[str, typer.Argument(help="machine id (or a unique prefix)")],
    ) -> None:
        async def work(backend: Backend) -> models.MachineFlags:
            ids = [m.id for m in await backend.list_machines()]
            matches = [i for i in ids if i == machine] or [i for i in ids if i.startswith(machine)]
            if not matches:
                raise CliError(f"machine {machine} not found")
            if len(matches) > 1:
                raise CliError(f"machine prefix {machine} is ambiguous ({len(matches)} machines)")
            return await backend.machine_action(matches[0], action)

        flags = run(ctx, work)
        if options(ctx).output is Output.JSON:
            echo_json(flags.model_dump(mode="json"))
        else:
            typer.echo(f"Machine {flags.id} {done}")

    command.__doc__ = {
        "cordon": "Keep new units off a machine (its units keep running).",
        "uncordon": "Let units be placed on a machine again (ends a drain).",
        "drain": "Cordon a machine and move its units to other machines.",
    }[action]
    return command


def register(app: typer.Typer) -> None:
    app.command("list-units")(list_units)
    app.command("list-unit-files")(list_unit_files)
    app.command("list-machines")(list_machines)
    app.command("cordon")(_machine_command("cordon", "cordoned"))
    app.command("uncordon")(_machine_command("uncordon", "uncordoned"))
    app.command("drain")(_machine_command("drain", "drained: its units are moving elsewhere"))
