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
from fleetd.helptext import HelpCommand, HelpGroup
from fleetd.sandbox.cluster import Sandbox, teardown
from fleetd.sandbox.cuts import Cut
from fleetd.sandbox.spec import DEFAULT_AGENT_TTL, SandboxSpec, parse_capacity, parse_metadata
from fleetd.sandbox.state import ENV_NAME, Instance, instance

app = typer.Typer(
    name="sandbox",
    cls=HelpGroup,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
Machine = Annotated[str, typer.Argument(metavar="MACHINE", help="m1, m2, ...")]


def _fail(exc: FleetError) -> NoReturn:
    typer.echo(f"fleetd sandbox: {exc}", err=True)
    raise typer.Exit(1)


@app.callback()
def main(
    ctx: typer.Context,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            envvar=ENV_NAME,
            metavar="NAME",
            help="which sandbox (up to 4 letters/digits) when several run side by side",
        ),
    ] = None,
) -> None:
    """A local cluster of real systemd machines (Linux namespaces; needs root).

    Examples:
      sudo fleetd sandbox up --machines 3
      eval "$(sudo fleetd sandbox env)"; fleetctl list-machines
      sudo fleetd sandbox --name ci2 up
      sudo fleetd sandbox down
    """
    try:
        ctx.obj = instance(name or "")
    except FleetError as exc:
        _fail(exc)


def _sandbox(ctx: typer.Context) -> Sandbox:
    inst = ctx.obj
    assert isinstance(inst, Instance)
    return Sandbox(inst)


@app.command(cls=HelpCommand)
def up(
    ctx: typer.Context,
    machines: Annotated[int, typer.Option(metavar="N", help="number of machines m1..mN")] = 3,
    etcd_members: Annotated[
        int,
        typer.Option(metavar="N", help="1: etcd on the host bridge; 3: an etcd cluster on m1..m3"),
    ] = 1,
    agent_ttl: Annotated[
        float, typer.Option(metavar="SECONDS", help="fleetd agent TTL in seconds")
    ] = DEFAULT_AGENT_TTL,
    metadata: Annotated[
        list[str] | None,
        typer.Option(
            metavar="MACHINE:K=V,...", help="extra metadata, e.g. m2:rack=a,disk=ssd (repeatable)"
        ),
    ] = None,
    capacity: Annotated[
        list[str] | None,
        typer.Option(metavar="MACHINE:K=V,...", help="capacity override, e.g. m3:cpu=2,memory=4G"),
    ] = None,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="serve the API without a token")] = (
        False
    ),
    secure: Annotated[
        bool,
        typer.Option(
            "--secure",
            help="TLS everywhere with client certificates, etcd authentication (a role "
            "limited to the registry prefix), HTTPS API with a token per role",
        ),
    ] = False,
    no_fleetd: Annotated[
        bool, typer.Option("--no-fleetd", help="machines and etcd only; fleetd not started")
    ] = False,
    subnet: Annotated[
        str,
        typer.Option(
            metavar="CIDR", help="private /24 (or larger); default: first free 10.87.N.0/24"
        ),
    ] = "",
    timeout: Annotated[
        float, typer.Option(metavar="SECONDS", help="seconds to wait for everything")
    ] = 60.0,
) -> None:
    """Create the bridge, etcd and N machines, each running fleetd;
    wait until all registered.

    Examples:
      sudo fleetd sandbox up
      sudo fleetd sandbox up --machines 5 --etcd-members 3 --metadata m2:rack=a
      sudo fleetd sandbox up --secure
    """
    started = time.monotonic()
    try:
        spec = SandboxSpec(
            machines=machines,
            etcd_members=etcd_members,
            agent_ttl=agent_ttl,
            subnet=subnet,
            auth=not no_auth,
            fleetd=not no_fleetd,
            secure=secure,
            metadata=parse_metadata(metadata or []),
            capacity=parse_capacity(capacity or []),
        )
        sandbox = Sandbox.up(
            spec, name=ctx.obj, timeout=timeout, progress=lambda m: typer.echo(f"  {m}")
        )
    except FleetError as exc:
        _fail(exc)
    for ms in sandbox.machines:
        typer.echo(f"{ms.name}  {ms.ip}  {ms.machine_id}")
    typer.echo(
        f"sandbox up in {time.monotonic() - started:.1f}s; `fleetd sandbox env` for fleetctl"
    )


@app.command(cls=HelpCommand)
def down(ctx: typer.Context) -> None:
    """Power off the machines and remove every namespace, link, mount and process created.

    Example:
      sudo fleetd sandbox down
    """
    try:
        removed = teardown(ctx.obj)
    except FleetError as exc:
        _fail(exc)
    typer.echo("removed: " + ", ".join(removed) if removed else "no sandbox was running")


@app.command(cls=HelpCommand)
def env(
    ctx: typer.Context,
    role: Annotated[
        str,
        typer.Option(
            metavar="ROLE", help="--secure: the token of this role (read, operate, admin)"
        ),
    ] = "admin",
) -> None:
    """Print 'export' lines so fleetctl on the host talks to the sandbox.

    Examples:
      eval "$(sudo fleetd sandbox env)"
      eval "$(sudo fleetd sandbox env --role read)"
    """
    try:
        values = _sandbox(ctx).env(role)
    except FleetError as exc:
        _fail(exc)
    for key, value in values.items():
        typer.echo(f"export {key}={shlex.quote(value)}")


@app.command(cls=HelpCommand)
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
) -> None:
    """Machines, addresses, systemd and fleetd state, etcd health.

    Examples:
      sudo fleetd sandbox status
      sudo fleetd sandbox status --json
    """
    try:
        result = _sandbox(ctx).status()
    except FleetError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(result), indent=2))
        return
    typer.echo(
        f"{'MACHINE':8} {'IP':15} {'SYSTEMD':10} {'FLEETD':10} {'REGISTERED':10} {'BOOTS':5} NOTE"
    )
    for m in result.machines:
        note = " ".join(
            [
                *(["rebooting"] if m.rebooting else []),
                *(["partitioned"] if m.partitioned else []),
                *(f"cut:{c}" for c in m.cuts),
                *(f"failed:{u}" for u in m.failed_units),
            ]
        )
        registered = "yes" if m.registered else "no"
        typer.echo(
            f"{m.name:8} {m.ip:15} {m.systemd:10} {m.fleetd:10} {registered:10} {m.boots:<5} {note}"
        )
    for endpoint, healthy in result.etcd:
        typer.echo(f"etcd {endpoint}: {'healthy' if healthy else 'UNHEALTHY'}")
    typer.echo(f"api {result.api_endpoint} ({'token' if result.auth else 'no auth'})")


@app.command(
    cls=HelpCommand,
    context_settings={
        "allow_extra_args": True,
        "ignore_unknown_options": True,
        "help_option_names": ["--help"],  # -h belongs to the command run
    },
)
def exec(
    ctx: typer.Context,
    machine: Machine,
    command: Annotated[
        list[str], typer.Argument(metavar="COMMAND...", help="command to run, after --")
    ],
) -> None:
    """Run a command inside a machine; exits with its status.

    Example:
      sudo fleetd sandbox exec m1 -- systemctl status fleetd
    """
    try:
        argv = _sandbox(ctx).command(machine, *command)
    except FleetError as exc:
        _fail(exc)
    raise typer.Exit(subprocess.call(argv))


def _fault(ctx: typer.Context, action: str, machine: str) -> None:
    try:
        getattr(_sandbox(ctx), action)(machine)
    except FleetError as exc:
        _fail(exc)


@app.command(cls=HelpCommand)
def partition(
    ctx: typer.Context,
    machine: Machine,
    from_etcd: Annotated[
        bool, typer.Option("--from-etcd", help="only its processes from etcd's client port")
    ] = False,
    etcd_member: Annotated[
        bool, typer.Option("--etcd-member", help="only its etcd member from the member's peers")
    ] = False,
) -> None:
    """Cut a machine off the network (it keeps running), or only part of its traffic.

    Examples:
      sudo fleetd sandbox partition m2
      sudo fleetd sandbox partition m2 --from-etcd
    """
    if from_etcd and etcd_member:
        typer.echo("fleetd sandbox: --from-etcd and --etcd-member exclude each other", err=True)
        raise typer.Exit(2)
    try:
        if from_etcd or etcd_member:
            _sandbox(ctx).cut(machine, Cut.ETCD_CLIENTS if from_etcd else Cut.ETCD_PEERS)
        else:
            _sandbox(ctx).partition(machine)
    except FleetError as exc:
        _fail(exc)


@app.command(cls=HelpCommand)
def heal(ctx: typer.Context, machine: Machine) -> None:
    """Reconnect a machine: undo its partition and every cut.

    Example:
      sudo fleetd sandbox heal m2
    """
    _fault(ctx, "heal", machine)


@app.command(cls=HelpCommand)
def poweroff(ctx: typer.Context, machine: Machine) -> None:
    """Power a machine off (systemd shutdown); 'boot' brings it back.

    Example:
      sudo fleetd sandbox poweroff m3
    """
    _fault(ctx, "poweroff", machine)


@app.command(cls=HelpCommand)
def boot(ctx: typer.Context, machine: Machine) -> None:
    """Boot a powered-off machine again (same machine id, disk and address).

    Example:
      sudo fleetd sandbox boot m3
    """
    _fault(ctx, "boot", machine)


@app.command("kill-fleetd", cls=HelpCommand)
def kill_fleetd(ctx: typer.Context, machine: Machine) -> None:
    """SIGKILL fleetd inside a machine (systemd restarts it).

    Example:
      sudo fleetd sandbox kill-fleetd m1
    """
    _fault(ctx, "kill_fleetd", machine)


if __name__ == "__main__":
    app(sys.argv[1:], prog_name="fleetd sandbox")
