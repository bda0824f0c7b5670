"""``fleetd sandbox ...``: a cluster of real systemd machines on this host, in namespaces."""

from __future__ import annotations

import dataclasses
import json
import shlex
import subprocess
import sys
import time
from typing import Annotated, NoReturn

import typer

from fleetd.errors import FleetError
from fleetd.sandbox.cluster import Sandbox, teardown
from fleetd.sandbox.spec import (
    DEFAULT_AGENT_TTL,
    DEFAULT_SUBNET,
    SandboxSpec,
    parse_capacity,
    parse_metadata,
)

app = typer.Typer(
    name="sandbox",
    help="A local cluster of real systemd machines (Linux namespaces; needs root).",
    no_args_is_help=True,
    add_completion=False,
)


def _fail(exc: FleetError) -> NoReturn:
    typer.echo(f"fleetd sandbox: {exc}", err=True)
    raise typer.Exit(1)


@app.command()
def up(
    machines: Annotated[int, typer.Option(help="number of machines m1..mN")] = 3,
    etcd_members: Annotated[
        int, typer.Option(help="1: etcd on the host bridge; 3: an etcd cluster on m1..m3")
    ] = 1,
    agent_ttl: Annotated[float, typer.Option(help="fleetd agent TTL in seconds")] = (
        DEFAULT_AGENT_TTL
    ),
    metadata: Annotated[
        list[str] | None, typer.Option(help="extra metadata, e.g. m2:rack=a,disk=ssd (repeatable)")
    ] = None,
    capacity: Annotated[
        list[str] | None, typer.Option(help="capacity override, e.g. m3:cpu=2,memory=4G")
    ] = None,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="serve the API without a token")] = (
        False
    ),
    no_fleetd: Annotated[
        bool, typer.Option("--no-fleetd", help="machines and etcd only; fleetd not started")
    ] = False,
    subnet: Annotated[str, typer.Option(help="private /24 (or larger) for the bridge")] = (
        DEFAULT_SUBNET
    ),
    timeout: Annotated[float, typer.Option(help="seconds to wait for everything")] = 60.0,
) -> None:
    """Create the bridge, etcd and N machines, each running fleetd; wait until all registered."""
    started = time.monotonic()
    try:
        spec = SandboxSpec(
            machines=machines,
            etcd_members=etcd_members,
            agent_ttl=agent_ttl,
            subnet=subnet,
            auth=not no_auth,
            fleetd=not no_fleetd,
            metadata=parse_metadata(metadata or []),
            capacity=parse_capacity(capacity or []),
        )
        sandbox = Sandbox.up(spec, timeout=timeout, progress=lambda m: typer.echo(f"  {m}"))
    except FleetError as exc:
        _fail(exc)
    for ms in sandbox.machines:
        typer.echo(f"{ms.name}  {ms.ip}  {ms.machine_id}")
    typer.echo(
        f"sandbox up in {time.monotonic() - started:.1f}s; `fleetd sandbox env` for fleetctl"
    )


@app.command()
def down() -> None:
    """Power off the machines and remove every namespace, link, mount and process created."""
    try:
        removed = teardown()
    except FleetError as exc:
        _fail(exc)
    typer.echo("removed: " + ", ".join(removed) if removed else "no sandbox was running")


@app.command()
def env() -> None:
    """Print `export` lines so fleetctl on the host talks to the sandbox."""
    try:
        values = Sandbox().env()
    except FleetError as exc:
        _fail(exc)
    for key, value in values.items():
        typer.echo(f"export {key}={shlex.quote(value)}")


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
) -> None:
    """Machines, addresses, systemd and fleetd state, etcd health."""
    try:
        result = Sandbox().status()
    except FleetError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(result), indent=2))
        return
    typer.echo(f"{'MACHINE':8} {'IP':15} {'SYSTEMD':10} {'FLEETD':10} {'REGISTERED':10} NOTE")
    for m in result.machines:
        note = " ".join(
            [*(["partitioned"] if m.partitioned else []), *(f"failed:{u}" for u in m.failed_units)]
        )
        registered = "yes" if m.registered else "no"
        typer.echo(f"{m.name:8} {m.ip:15} {m.systemd:10} {m.fleetd:10} {registered:10} {note}")
    for endpoint, healthy in result.etcd:
        typer.echo(f"etcd {endpoint}: {'healthy' if healthy else 'UNHEALTHY'}")
    typer.echo(f"api {result.api_endpoint} ({'token' if result.auth else 'no auth'})")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec(
    machine: Annotated[str, typer.Argument(help="m1, m2, ...")],
    command: Annotated[list[str], typer.Argument(help="command to run, after --")],
) -> None:
    """Run a command inside a machine, e.g. `fleetd sandbox exec m1 -- systemctl status`."""
    try:
        argv = Sandbox().command(machine, *command)
    except FleetError as exc:
        _fail(exc)
    raise typer.Exit(subprocess.call(argv))


def _fault(action: str, machine: str) -> None:
    try:
        getattr(Sandbox(), action)(machine)
    except FleetError as exc:
        _fail(exc)


@app.command()
def partition(machine: str) -> None:
    """Cut a machine off the network (it keeps running)."""
    _fault("partition", machine)


@app.command()
def heal(machine: str) -> None:
    """Reconnect a partitioned machine."""
    _fault("heal", machine)


@app.command()
def poweroff(machine: str) -> None:
    """Power a machine off (systemd shutdown); `boot` brings it back."""
    _fault("poweroff", machine)


@app.command()
def boot(machine: str) -> None:
    """Boot a powered-off machine again (same machine id, disk and address)."""
    _fault("boot", machine)


@app.command("kill-fleetd")
def kill_fleetd(machine: str) -> None:
    """SIGKILL fleetd inside a machine (systemd restarts it)."""
    _fault("kill_fleetd", machine)


if __name__ == "__main__":
    app(sys.argv[1:], prog_name="fleetd sandbox")
