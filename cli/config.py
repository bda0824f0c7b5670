"""``fleetctl config get [KEY]`` and ``fleetctl config set KEY VALUE``: the cluster
settings every engine reads from the registry and applies without a restart
(docs/configuration.md, *Cluster settings*).

``set`` checks the value here first (``fleetd/clustersettings.py``, as fleetd checks it
again), so a bad one is refused without a request; ``set KEY default`` puts a
setting back to its default.  Changing them needs the admin role.
"""

from __future__ import annotations

from typing import Annotated

import typer

from fleetd import clustersettings
from fleetd.api import wire
from fleetd.errors import InvalidInput

from .backend import Backend
from .helptext import Command
from .options import Output, fail, options, run
from .table import echo_json, echo_table

DEFAULT = "default"
"""``config set KEY default``: back to the default."""


def _shown(value: wire.SettingValue) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _rows(found: wire.ClusterSettings, name: str | None) -> list[wire.ClusterSetting]:
    return [s for s in found.settings if name is None or s.name == name]


def _print(ctx: typer.Context, rows: list[wire.ClusterSetting]) -> None:
    if options(ctx).output is Output.JSON:
        echo_json([s.model_dump(mode="json") for s in rows])
        return
    echo_table(
        ["KEY", "VALUE", "SOURCE", "DESCRIPTION"],
        [[s.name, _shown(s.value), "set" if s.set else DEFAULT, s.description] for s in rows],
        True,
    )


def config(
    ctx: typer.Context,
    action: Annotated[
        str,
        typer.Argument(metavar="get|set", help="get shows settings, set changes one"),
    ],
    key: Annotated[
        str | None,
        typer.Argument(
            metavar="[KEY]",
            help=f"a setting: {', '.join(clustersettings.NAMES)}",
            show_default=False,
        ),
    ] = None,
    value: Annotated[
        str | None,
        typer.Argument(
            metavar="[VALUE]", help=f"its new value, or {DEFAULT!r}", show_default=False
        ),
    ] = None,
) -> None:
    """Show or change the cluster settings every engine applies without a restart.

    get lists every setting (or KEY alone): its value, whether it is set or its
    default, and what it does; set KEY VALUE changes one (role admin); VALUE
    'default' puts it back to its default.

    Examples:
      fleetctl config get
      fleetctl config get strategy
      fleetctl config set strategy spread
      fleetctl config set guard_share 0.5
      fleetctl config set max_unavailable default
    """
    if action == "get":
        if value is not None:
            raise fail("config get takes at most one KEY")
        _get(ctx, key)
    elif action == "set":
        if key is None or value is None:
            raise fail("config set needs a KEY and a VALUE (e.g. config set strategy spread)")
        _set(ctx, key, value)
    else:
        raise fail(f"unknown config action {action!r}: give get or set")


def _get(ctx: typer.Context, key: str | None) -> None:
    try:
        if key is not None:
            clustersettings.setting(key)
    except InvalidInput as exc:
        raise fail(str(exc)) from None

    async def work(backend: Backend) -> wire.ClusterSettings:
        return await backend.settings()

    _print(ctx, _rows(run(ctx, work), key))


def _set(ctx: typer.Context, key: str, text: str) -> None:
    try:
        typed = None if text.strip() == DEFAULT else clustersettings.parse(key, text)
    except InvalidInput as exc:
        raise fail(str(exc)) from None

    async def work(backend: Backend) -> wire.ClusterSettings:
        return await backend.change_settings({key: typed})

    rows = _rows(run(ctx, work), key)
    if options(ctx).output is Output.JSON:
        _print(ctx, rows)
        return
    for s in rows:
        source = "" if s.set else f" ({DEFAULT})"
        typer.echo(f"{s.name} = {_shown(s.value)}{source}")


def register(app: typer.Typer) -> None:
    app.command("config", cls=Command)(config)
