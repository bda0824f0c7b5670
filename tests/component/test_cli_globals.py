"""fleetctl's global options in every form and position, and no secret in any error.

Each global option is written as ``--opt value``, ``--opt=value`` (and ``-o
json``, ``-ojson``, ``-o=json`` for ``--output``), before the command, right
after it and after the command's own options; each case checks that the
option took effect.  Runs ``main()``, as the ``fleetctl`` script does.  Every
option of the app (those with no cheap visible effect too) is also parsed in
every form and position, and ``argv.GLOBAL_OPTIONS`` must list exactly the
app's options.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import leakcheck
import pytest
import typer.main
from clikit import ServerThread
from clirun import TOKEN, Result, fleetctl, inspector

from fleetd.cli.argv import GLOBAL_OPTIONS, redact, reorder
from fleetd.cli.main import app


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    thread = ServerThread(tmp_path, inspector=inspector(tmp_path), token=TOKEN).start()
    try:
        yield thread
    finally:
        thread.stop()


@dataclass(frozen=True)
class Case:
    option: str
    value: str
    env: Callable[[ServerThread], dict[str, str]]
    check: Callable[[Result], bool]
    short: str | None = None


def _tcp(server: ServerThread) -> str:
    return server.tcp_endpoint


CASES = [
    Case(
        "--endpoint",
        "TCP",
        lambda s: {"FLEETCTL_TOKEN": TOKEN, "FLEETCTL_ENDPOINT": "unix:///nonexistent.sock"},
        lambda r: r.code == 0 and r.stdout.startswith("1a2b3c4d...\t10.0.0.1"),
    ),
    Case(
        "--token",
        TOKEN,
        lambda s: {"FLEETCTL_ENDPOINT": s.tcp_endpoint},
        lambda r: r.code == 0 and r.stdout.startswith("1a2b3c4d...\t10.0.0.1"),
    ),
    Case(
        "--output",
        "json",
        lambda s: {"FLEETCTL_ENDPOINT": s.endpoint},
        lambda r: r.code == 0 and isinstance(json.loads(r.stdout), list),
        short="-o",
    ),
    Case(
        "--driver",
        "etcd",
        lambda s: {"FLEETCTL_ETCD_KEY_PREFIX": "nope"},
        lambda r: r.code == 1 and "--etcd-key-prefix" in r.stderr and "'nope/'" in r.stderr,
    ),
    Case(
        "--etcd-key-prefix",
        "nope",
        lambda s: {"FLEETCTL_DRIVER": "etcd"},
        lambda r: r.code == 1 and "'nope/'" in r.stderr,
    ),
    Case(
        "--etcd-endpoints",
        "http://127.0.0.1:9",
        lambda s: {"FLEETCTL_DRIVER": "etcd", "FLEETCTL_REQUEST_TIMEOUT": "0.5"},
        lambda r: r.code == 1 and "127.0.0.1:9" in r.stderr,
    ),
    Case(
        "--request-timeout",
        "0.05",
        lambda s: {"FLEETCTL_ENDPOINT": s.endpoint},
        lambda r: r.code == 1 and "--request-timeout" in r.stderr and "0.1" in r.stderr,
    ),
]


def _forms(case: Case) -> list[tuple[str, list[str]]]:
    forms = [("sep", [case.option, case.value]), ("eq", [f"{case.option}={case.value}"])]
    if case.short:
        forms += [
            ("short", [case.short, case.value]),
            ("short-attached", [f"{case.short}{case.value}"]),
            ("short-eq", [f"{case.short}={case.value}"]),
        ]
    return forms


POSITIONS = {
    "before": lambda opt: [*opt, "list-machines", "--no-legend"],
    "after-command": lambda opt: ["list-machines", *opt, "--no-legend"],
    "at-the-end": lambda opt: ["list-machines", "--no-legend", *opt],
    # after another global option that takes a value (where a value was read as the command)
    "after-another-before": lambda opt: ["--output", "table", *opt, "list-machines", "--no-legend"],
    "after-another-after": lambda opt: ["list-machines", "-o", "table", *opt, "--no-legend"],
}


@pytest.mark.parametrize("position", list(POSITIONS))
@pytest.mark.parametrize(
    ("case", "form", "words"),
    [
        pytest.param(case, form, words, id=f"{case.option}-{form}")
        for case in CASES
        for form, words in _forms(case)
    ],
)
def test_every_global_option_in_every_form_and_position(
    server: ServerThread,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    case: Case,
    form: str,
    words: list[str],
    position: str,
) -> None:
    words = [w.replace("TCP", _tcp(server)) for w in words]
    args = POSITIONS[position](words)
    env = case.env(server)
    if case.option == "--output":
        args = [a for a in args if a != "--no-legend"]
    r = fleetctl(capsys, monkeypatch, args, env)
    assert case.check(r), (args, r)
    assert TOKEN not in r.output


@pytest.mark.parametrize("position", ["before", "after"])
def test_version_flag_anywhere(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, position: str
) -> None:
    args = ["--version", "list-units"] if position == "before" else ["list-units", "--version"]
    r = fleetctl(capsys, monkeypatch, args)
    assert r.code == 0 and r.stdout.startswith("fleetctl version ")


def test_the_reported_command_lines_work(
    server: ServerThread, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tcp = server.tcp_endpoint
    for args in (
        ["--endpoint", tcp, "--token", TOKEN, "list-units"],
        ["-o", "json", "--endpoint", tcp, "--token", TOKEN, "list-units"],
        ["--endpoint", tcp, f"--token={TOKEN}", "list-units"],
        ["list-units", "--token", TOKEN, "--endpoint", tcp, "-o", "json"],
    ):
        r = fleetctl(capsys, monkeypatch, args)
        assert r.code == 0, (args, r)
        assert TOKEN not in r.output


@pytest.mark.parametrize(
    "args",
    [
        ["--token", TOKEN, "no-such-command"],
        [f"--token={TOKEN}", "list-units", "--bogus"],
        ["list-units", "--token", TOKEN, "extra"],
        ["--token", TOKEN, "--endpoint", "ftp://nowhere", "list-units"],
        [
            "--token",
            TOKEN,
            "--endpoint",
            "http://127.0.0.1:9",
            "--request-timeout",
            "1",
            "cat",
            "x",
        ],
        ["--token", TOKEN],
        ["--token", f"{TOKEN} with space", "list-units"],
        ["list-units", "--fields", TOKEN, "--token", TOKEN],
        ["--etcd-password", TOKEN, "no-such-command"],
        ["list-units", f"--etcd-password={TOKEN}", "--etcd-username", "u", "extra"],
    ],
    ids=lambda a: " ".join(a).replace(TOKEN, "T"),
)
def test_no_token_in_any_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    r = fleetctl(capsys, monkeypatch, args)
    assert r.code == 1, r
    assert r.stderr
    assert TOKEN not in r.output


def test_wrong_token_and_token_from_the_environment_are_not_shown(
    server: ServerThread, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = leakcheck.secret("wrong-token-abcdef0123456789")
    r = fleetctl(
        capsys, monkeypatch, ["--endpoint", server.tcp_endpoint, "--token", wrong, "cat", "x"]
    )
    assert r.code == 1 and "token" in r.stderr and wrong not in r.output
    env = {"FLEETCTL_TOKEN": TOKEN}
    r = fleetctl(capsys, monkeypatch, [TOKEN], env)
    assert r.code == 1 and TOKEN not in r.output


def test_etcd_credentials_are_not_shown(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "http://root:etcd-pass-123@127.0.0.1:9"
    for args, env in (
        (["--driver", "etcd", "--etcd-endpoints", url, "list-units"], {}),
        (["--driver", "etcd", "list-units"], {"FLEETCTL_ETCD_ENDPOINTS": url}),
        (["--etcd-endpoints", url, "no-such-command"], {}),
    ):
        r = fleetctl(capsys, monkeypatch, args, {"FLEETCTL_REQUEST_TIMEOUT": "0.5", **env})
        assert r.code == 1, r
        assert "etcd-pass-123" not in r.output and "root:" not in r.output, r


def test_journal_output_is_journalctls(
    server: ServerThread,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {"FLEETCTL_ENDPOINT": server.endpoint}
    unit = tmp_path / "web.service"
    unit.write_text("[Service]\nExecStart=/bin/sleep 1000\n")
    assert (
        fleetctl(capsys, monkeypatch, ["start", "--block-attempts", "50", str(unit)], env).code == 0
    )
    for args, mode in (
        (["journal", "--output=cat", "--lines", "2", "web.service"], "cat"),
        (["journal", "--output", "json", "--lines", "2", "web.service"], "json"),
        (["journal", "-o", "verbose", "--lines", "2", "web.service"], "verbose"),
        (["journal", "-ocat", "--lines", "2", "web.service"], "cat"),
        (["-o", "json", "journal", "--lines", "2", "web.service"], "short"),
        (["journal", "--lines", "2", "web.service"], "short"),
    ):
        r = fleetctl(capsys, monkeypatch, args, env)
        assert r.code == 0, (args, r)
        assert r.stdout.splitlines() == [f"{mode} line 0", f"{mode} line 1"], (args, r)
    r = fleetctl(capsys, monkeypatch, ["journal", "--output=bogus", "web.service"], env)
    assert r.code == 1 and "bogus" in r.stderr and "cat" in r.stderr


def test_reorder_keeps_values_with_their_options() -> None:
    assert reorder(["--endpoint", "URL", "--token", "T", "list-units"]) == [
        "--endpoint", "URL", "--token", "T", "list-units",
    ]  # fmt: skip
    assert reorder(["list-units", "-o", "json", "--full"]) == [
        "--output", "json", "list-units", "--full",
    ]  # fmt: skip
    assert reorder(["journal", "-o", "cat", "--token", "T", "u"]) == [
        "--token", "T", "journal", "-o", "cat", "u",
    ]  # fmt: skip
    assert reorder(["start", "--", "--token"]) == ["start", "--", "--token"]


def test_redact() -> None:
    assert redact("bad token abc123 here", ["abc123"]) == "bad token *** here"
    assert redact("cannot reach http://u:p@host:1/x") == "cannot reach http://***@host:1/x"


# Every global option of the app (typer's completion flags aside: they take no value
# and only make sense alone), with a value its type accepts and the value parsed.
ROOT = typer.main.get_command(app)
TYPER_OWN = {"install_completion", "show_completion"}
PARSED = {
    "driver": ("etcd", "etcd"),
    "request_timeout": ("2.5", 2.5),
    "output": ("json", "json"),
}


def _global_params() -> list[Any]:
    return [p for p in ROOT.params if p.name not in TYPER_OWN]


def test_reorder_knows_every_global_option() -> None:
    declared = {opt: not getattr(p, "is_flag", False) for p in _global_params() for opt in p.opts}
    assert declared == GLOBAL_OPTIONS


@pytest.mark.parametrize("position", list(POSITIONS))
@pytest.mark.parametrize(
    ("name", "form", "words"),
    [
        pytest.param(p.name, form, words, id=f"{p.name}-{form}")
        for p in _global_params()
        if p.name != "version"
        for form, words in _forms(
            Case(
                p.opts[0],
                PARSED.get(str(p.name), ("v-" + str(p.name), ""))[0],
                lambda s: {},
                lambda r: True,
                short=next((o for o in p.opts if not o.startswith("--")), None),
            )
        )
    ],
)
def test_every_global_option_is_parsed_in_every_form_and_position(
    monkeypatch: pytest.MonkeyPatch, name: str, form: str, words: list[str], position: str
) -> None:
    """Each option of the app, not only those with a visible effect above: the value
    reaches the option, the command and its own options stay the command's."""
    for param in ROOT.params:
        envvar = getattr(param, "envvar", None)
        if isinstance(envvar, str):
            monkeypatch.delenv(envvar, raising=False)
    args = reorder(POSITIONS[position](words))
    ctx = ROOT.make_context("fleetctl", args)
    _, parsed = PARSED.get(name, ("v-" + name, "v-" + name))
    got = ctx.params[name]
    assert (got.value if isinstance(got, Enum) else got) == parsed, (args, ctx.params)
    assert [*ctx._protected_args, *ctx.args] == ["list-machines", "--no-legend"], args
