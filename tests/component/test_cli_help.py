"""fleetctl's and fleetd's --help, ``fleetctl version`` and shell completion of unit and
machine names from the cluster."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from clikit import M1, M2, ServerThread
from clirun import fleetctl, serving, unit_files
from typer import _click as click
from typer.core import TyperGroup, TyperOption

from fleetd import __version__, config
from fleetd.cli.main import app
from fleetd.cmd import SUBCOMMANDS, _daemon_parser, subcommand_app
from fleetd.cmd import main as fleetd_main
from fleetd.flags import given
from fleetd.helptext import HelpCommand, HelpGroup

COMMANDS = [str(c.name) for c in app.registered_commands]
PLACEHOLDER = re.compile(r"<[a-z][a-z\[\]|, ]*>|\{[a-z_]+\}|``|\[default: (no-)?\w+\]")


def _walk(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(command, TyperGroup):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from _walk(sub, (*path, name))


def _find(command: click.Command, path: tuple[str, ...]) -> click.Command:
    for name in path:
        assert isinstance(command, TyperGroup)
        found = command.get_command(click.Context(command), name)
        assert found is not None
        command = found
    return command


FLEETCTL_ROOT = typer.main.get_command(app)
FLEETD_ROOTS = {name: typer.main.get_command(subcommand_app(name)) for name in SUBCOMMANDS}
# every command of both apps: (program, root click command, path below it)
EVERY_COMMAND = [("fleetctl", FLEETCTL_ROOT, path) for path in _walk(FLEETCTL_ROOT)] + [
    (f"fleetd {name}", root, path) for name, root in FLEETD_ROOTS.items() for path in _walk(root)
]


def _rendered_help(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    prog: str,
    path: tuple[str, ...],
) -> str:
    if prog == "fleetctl":
        r = fleetctl(capsys, monkeypatch, [*path, "--help"])
        assert r.code == 0, r
        return r.stdout
    with pytest.raises(SystemExit) as exited:
        fleetd_main([*prog.split()[1:], *path, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize(
    ("prog", "root", "path"),
    EVERY_COMMAND,
    ids=[" ".join((prog, *path)) for prog, _, path in EVERY_COMMAND],
)
def test_every_command_has_plain_help_with_an_example_and_flags_for_booleans(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    prog: str,
    root: click.Command,
    path: tuple[str, ...],
) -> None:
    command = _find(root, path)
    assert isinstance(command, HelpCommand | HelpGroup), "uses typer's help, not fleetd.helptext"
    text = _rendered_help(capsys, monkeypatch, prog, path)
    where = " ".join((prog, *path))
    assert text.startswith(f"Usage: {where} "), text
    assert PLACEHOLDER.search(text) is None, text
    examples = text.split("Example", 1)
    assert len(examples) == 2, f"{where}: no example\n{text}"
    assert where in examples[1].split("\n\n", 1)[0], f"{where}: the example does not run it"
    rows = [line.split()[0].rstrip(",") for line in text.splitlines() if line.startswith("  -")]
    assert len(rows) == len(set(rows)), text
    for param in command.params:
        if isinstance(param, TyperOption) and param.type_descriptor.annotation is bool:
            assert param.is_flag, (where, param.opts)
            names = ", ".join(sorted(param.opts, key=lambda o: (o.startswith("--"), o)))
            row = next(line for line in text.splitlines() if line.startswith(f"  {names}"))
            assert row[len(names) + 2 :].startswith("  "), f"{where}: {names} takes a value"


def test_fleetd_help_has_an_example_and_names_every_subcommand() -> None:
    text = _daemon_parser().format_help()
    assert PLACEHOLDER.search(text) is None, text
    assert "Examples:\n  fleetd " in text, text
    for name in SUBCOMMANDS:
        assert f"  fleetd {name} " in text, text


def test_fleetd_subcommand_without_a_command_prints_its_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in SUBCOMMANDS:
        with pytest.raises(SystemExit) as exited:
            fleetd_main([name])
        assert exited.value.code == 2
        assert f"Usage: fleetd {name} [OPTIONS] COMMAND" in capsys.readouterr().err


def _help(capsys, monkeypatch, *words: str) -> str:  # type: ignore[no-untyped-def]
    r = fleetctl(capsys, monkeypatch, [*words, "--help"])
    assert r.code == 0, r
    return r.stdout


def test_help_shows_argument_names_defaults_and_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _help(capsys, monkeypatch, "start")
    assert text.splitlines()[0] == "Usage: fleetctl start [OPTIONS] UNIT..."
    text = " ".join(text.split())
    assert "--block-attempts N" in text and "(default: 0; env: FLEETCTL_BLOCK_ATTEMPTS)" in text
    listing = _help(capsys, monkeypatch)
    for command in COMMANDS:
        assert f"\n  {command} " in listing
    text = " ".join(listing.split())
    assert "--endpoint URL" in text and "default: unix:///var/run/fleet.sock" in text
    assert "-o, --output table|json" in text
    assert "--install-completion" in text and "--show-completion" in text


def test_version_command(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for args in (["version"], ["--version"]):
        r = fleetctl(capsys, monkeypatch, args)
        assert r.code == 0 and r.stdout == f"fleetctl version {__version__}\n"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    with serving(tmp_path) as thread:
        yield thread


def _complete(capsys, monkeypatch, endpoint: str, words: str) -> list[str]:  # type: ignore[no-untyped-def]
    parts = words.split(" ")
    env = {
        "_FLEETCTL_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(parts) - 1),
        "FLEETCTL_ENDPOINT": endpoint,
    }
    r = fleetctl(capsys, monkeypatch, [], env)
    assert r.code == 0, r
    return r.stdout.split()


def test_completion_of_unit_and_machine_names(
    server: ServerThread,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    units = unit_files(tmp_path)
    r = fleetctl(
        capsys,
        monkeypatch,
        ["submit", str(units / "web.service"), str(units / "a.service")],
        {"FLEETCTL_ENDPOINT": server.endpoint},
    )
    assert r.code == 0, r
    assert _complete(capsys, monkeypatch, server.endpoint, "fleetctl start we") == ["web.service"]
    assert _complete(capsys, monkeypatch, server.endpoint, "fleetctl status ") == [
        "a.service",
        "web.service",
    ]
    assert _complete(capsys, monkeypatch, server.endpoint, "fleetctl journal a") == ["a.service"]
    assert _complete(capsys, monkeypatch, server.endpoint, "fleetctl drain m") == ["m1", "m2"]
    assert _complete(capsys, monkeypatch, server.endpoint, "fleetctl cordon 5e") == [M2]
    assert M1 in _complete(capsys, monkeypatch, server.endpoint, "fleetctl uncordon ")


def test_completion_is_quietly_empty_when_the_cluster_does_not_answer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _complete(capsys, monkeypatch, f"unix://{tmp_path}/none.sock", "fleetctl start ") == []
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        assert _complete(capsys, monkeypatch, endpoint, "fleetctl drain ") == []
        # bounded by completion's own timeout, not the 30 s request timeout
        assert time.monotonic() - started < 10


def test_fleetd_help_lists_each_option_once_with_its_default() -> None:
    text = _daemon_parser().format_help()
    for option in config.OPTIONS:
        dashed = "--" + option.name.replace("_", "-")
        assert len(re.findall(rf"^  {dashed}\b", text, re.MULTILINE)) == 1, (dashed, text)
        if "_" in option.name:
            assert f"--{option.name}" not in text
    options = text.split("options:", 1)[1].split("\n\n", 1)[0]
    entries = [" ".join(e.split()) for e in re.split(r"\n(?=  -)", options) if e.strip()]
    names = [e.split()[0].rstrip(",") for e in entries]
    assert len(names) == len(set(names)), names
    by_name = dict(zip(names, entries, strict=True))
    for option in config.OPTIONS:
        assert "(default: " in by_name["--" + option.name.replace("_", "-")]


def test_fleetd_boolean_options_are_flags() -> None:
    parser = _daemon_parser()
    for argv, expected in (
        (["--verbose"], True),
        (["--verbose=false"], False),
        (["--verbose", "--disable-engine"], True),
        (["--disable_engine", "--verbose=true"], True),
        ([], False),
    ):
        args = parser.parse_args(argv)
        cfg = config.load("/dev/null", env={}, flags=given(args))
        assert cfg.verbose is expected, argv
    args = parser.parse_args(["--disable_engine", "--etcd_servers", "http://10.0.0.1:2379"])
    cfg = config.load("/dev/null", env={}, flags=given(args))
    assert cfg.disable_engine and cfg.etcd_servers == ("http://10.0.0.1:2379",)
