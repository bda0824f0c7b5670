"""Hostile input through fleetctl (the real typer app against the real API on a unix
socket): every bad file, name, option or server-supplied string ends in a clear error (or
a harmless listing), never a traceback, never a raw control character on the terminal,
and the registry is exactly as it was."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import leakcheck
import pytest
from clikit import M1, ServerThread
from hostile import dump
from typer.testing import CliRunner

from fleetd import model
from fleetd.cli.main import app
from fleetd.etcd_server import EtcdServer
from fleetd.registry.etcd import EtcdRegistry
from fleetd.registry.keys import Keys
from fleetd.registry.store import Store

SERVICE = "[Unit]\nDescription=Web server\n\n[Service]\nExecStart=/bin/sleep 1000\n"
TOKEN = leakcheck.secret("cli-token-0123456789abcdef")
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    thread = ServerThread(tmp_path_factory.mktemp("hostile-cli"), token=TOKEN).start()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("hostile-units")
    (d / "nul.service").write_bytes(SERVICE.encode() + b"ExecStartPre=/bin/true\x00rm\n")
    (d / "utf8.service").write_bytes(SERVICE.encode() + b"Environment=A=\xff\xfe\n")
    (d / "latin1.service").write_bytes(SERVICE.replace("Web", "Caf\xe9").encode("latin-1"))
    (d / "long-line.service").write_text(SERVICE + "Environment=A=" + "x" * (2 * MiB) + "\n")
    # 100k lines of the same key: a valid file locally, too big to send.
    (d / "repeated.service").write_text(SERVICE + "ExecStartPre=/bin/true\n" * 100_000)
    # 100k lines of one short key: under 1 MiB as a file, far over the option limit.
    (d / "many.service").write_text("[Service]\n" + "A=1\n" * 100_000)
    # Just over the API's 1 MiB body limit.
    (d / "over.service").write_text(SERVICE + "Environment=A=" + "x" * (MiB + 1) + "\n")
    (d / "esc\x1b[2J.service").write_text(SERVICE)
    (d / "nl\nx.service").write_text(SERVICE)
    (d / "empty.service").write_bytes(b"")
    (d / "binary.service").write_bytes(bytes(range(256)) * 64)
    # fleet accepted any MachineID (fleetd warns), but never a terminal escape.
    (d / "xfleet.service").write_text(SERVICE + "[X-Fleet]\nMachineID=../\x1b[2J\n")
    (d / "dir.service").mkdir()
    return d


def fleetctl(server: ServerThread, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    return runner.invoke(app, ["--endpoint", server.endpoint, *args], env=env)


def _check(result, label: str, missing_ok: bool = False) -> None:  # type: ignore[no-untyped-def]
    out = result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{label}: raised {result.exception!r}\n{out}"
    )
    assert "Traceback" not in out, f"{label}: traceback\n{out}"
    # destroy of a unit that is not there is not an error (fleet's behaviour)
    ok = (1, 2, 0) if missing_ok and "does not exist" in out else (1, 2)
    assert result.exit_code in ok, f"{label}: exit {result.exit_code}\n{out}"
    assert out.strip(), f"{label}: no message"
    raw = [ch for ch in out if (ord(ch) < 0x20 and ch not in "\n\t") or 0x7F <= ord(ch) < 0xA0]
    assert not raw, f"{label}: raw control characters {raw!r} in {out!r}"


FILES = [
    "nul.service",
    "utf8.service",
    "latin1.service",
    "long-line.service",
    "repeated.service",
    "many.service",
    "over.service",
    "esc\x1b[2J.service",
    "nl\nx.service",
    "empty.service",
    "binary.service",
    "xfleet.service",
    "dir.service",
]
NAMES = [
    "../x.service",
    "../../etc/passwd.service",
    "/etc/passwd.service",
    "a/b.service/",
    "x%2F..%2Fy.service",
    "x\x1b[2J.service",
    "x\x00.service",
    "x\n.service",
    ".x.service",
    "@x.service",
    "x" * 100_000 + ".service",
    "\u202egnp.service",
]
MACHINES = ["../../units/web.service", "..", "x\x1b[2J", "a/b", "x" * 10_000]


def _cases(d: Path) -> list[tuple[str, list[str]]]:
    """Every hostile file through submit; the first few also through start (which reads the
    file the same way); every hostile name through a reading and a writing command."""
    cases: list[tuple[str, list[str]]] = []
    for name in FILES:
        cases.append((f"submit {name!r}", ["submit", str(d / name)]))
    for name in FILES[:4]:
        cases.append((f"start {name!r}", ["start", "--no-block", str(d / name)]))
    commands = ("cat", "status", "destroy", "stop", "journal", "start")
    for i, name in enumerate(NAMES):
        # each name through two commands, rotating so that every command sees several
        for command in (commands[i % len(commands)], commands[(i + 3) % len(commands)]):
            cases.append((f"{command} {name[:30]!r}", [command, name]))
    for i, machine in enumerate(MACHINES):
        command = ("cordon", "drain", "uncordon")[i % 3]
        cases.append((f"{command} {machine[:30]!r}", [command, machine]))
    cases += [
        ("journal negative lines", ["journal", "--lines", "-5", "web.service"]),
        ("journal huge lines", ["journal", "--lines", "10" * 20, "web.service"]),
        ("fields unknown", ["list-units", "--fields", "unit,\x1b[2J"]),
        ("block attempts negative", ["start", "--block-attempts", "-1", "web.service"]),
    ]
    return cases


def test_hostile_arguments_change_nothing(server: ServerThread, files: Path) -> None:
    r = fleetctl(server, "submit", str(_web(files)))
    assert r.exit_code == 0, r.output
    before = server.call(dump(server.store))
    failures = []
    import time

    for label, args in _cases(files):
        t0 = time.monotonic()
        result = fleetctl(server, *args)
        print(f"TIME {time.monotonic() - t0:.2f} {label[:40]!r}")
        try:
            _check(result, label, missing_ok=label.startswith("destroy"))
        except AssertionError as exc:
            failures.append(str(exc))
        after = server.call(dump(server.store))
        if after != before:
            failures.append(f"{label}: the registry changed")
            before = after
    assert not failures, "\n".join(failures)


def _web(d: Path) -> Path:
    path = d / "web.service"
    path.write_text(SERVICE)
    return path


@pytest.mark.parametrize(
    ("label", "options", "env"),
    [
        ("empty unix endpoint", ["--endpoint", "unix://"], None),
        ("bad scheme", ["--endpoint", "ftp://host:1"], None),
        ("malformed URL", ["--endpoint", "http://[::1"], None),
        ("bad port", ["--endpoint", "http://127.0.0.1:99999"], None),
        ("token with CRLF", ["--token", "abc\r\nX-Evil: 1"], None),
        ("token not ASCII", ["--token", "t\u20ac\u20ac-0123456789abcdef"], None),
        ("token from env with a control character", [], {"FLEETCTL_TOKEN": "abc\x01def"}),
        ("token with a space", ["--token", "abc def-0123456789"], None),
        ("negative timeout", ["--request-timeout", "-1"], None),
        ("bad driver", ["--driver", "zookeeper"], None),
        ("bad key prefix", ["--driver", "etcd", "--etcd-key-prefix", "fleet"], None),
    ],
)
def test_hostile_global_options(
    server: ServerThread, label: str, options: list[str], env: dict[str, str] | None
) -> None:
    """Bad endpoints, tokens and options (tokens against the TCP endpoint, which checks them)."""
    before = server.call(dump(server.store))
    has_endpoint = options[:1] == ["--endpoint"]
    args = [*([] if has_endpoint else ["--endpoint", server.tcp_endpoint]), *options, "list-units"]
    result = CliRunner().invoke(app, args, env=env)
    _check(result, label)
    assert server.call(dump(server.store)) == before


def test_server_supplied_strings_are_not_printed_raw(server: ServerThread) -> None:
    """A machine that registers itself with escape sequences in its hostname or metadata
    (or a unit state from a compromised agent) cannot paint over the operator's terminal."""
    evil = "e" * 32

    async def register() -> None:
        lease = await server.store.registry.grant_lease(3600)
        machine = model.Machine(
            evil,
            "host\x1b]0;pwned\x07\x1b[2J",
            "10.0.0.9",
            (("role", "x\x1b[31mred"), ("k\x1b", "v")),
            model.Capacity(1000, 1 << 30),
            "0.1\x1b[0m",
        )
        await server.store.register_machine(machine, lease)

    server.call(register())
    try:
        for args in (["list-machines"], ["list-machines", "--full"], ["list-units"]):
            result = fleetctl(server, *args)
            assert result.exit_code == 0, result.output
            assert "\x1b" not in result.output and "\x07" not in result.output, result.output
            assert evil[:8] in result.output or args[0] == "list-units"
    finally:
        server.call(server.store.registry.delete(server.store.keys.machine(evil)))


def test_tcp_endpoint_needs_the_right_token(server: ServerThread) -> None:
    runner = CliRunner()
    for token in (None, leakcheck.secret("wrong-token-0123456789"), TOKEN[:-1], TOKEN + "x"):
        env = {"FLEETCTL_TOKEN": token} if token else None
        result = runner.invoke(app, ["--endpoint", server.tcp_endpoint, "list-units"], env=env)
        assert result.exit_code == 1, result.output
        assert "bearer token" in result.output
        assert "Traceback" not in result.output
    result = runner.invoke(
        app, ["--endpoint", server.tcp_endpoint, "list-units"], env={"FLEETCTL_TOKEN": TOKEN}
    )
    assert result.exit_code == 0, result.output
    assert M1


@pytest.mark.etcd
def test_etcd_driver_refuses_the_same(
    etcd_server: EtcdServer, key_prefix: str, files: Path
) -> None:
    """``--driver etcd`` applies the API's checks itself: hostile files and names change
    nothing in the registry either."""
    env = {
        "FLEETCTL_DRIVER": "etcd",
        "FLEETCTL_ETCD_ENDPOINTS": etcd_server.endpoint,
        "FLEETCTL_ETCD_KEY_PREFIX": key_prefix,
    }
    runner = CliRunner()
    assert runner.invoke(app, ["submit", str(_web(files))], env=env).exit_code == 0
    store = Store(EtcdRegistry([etcd_server.endpoint]), Keys(key_prefix))

    async def snapshot() -> list[tuple[str, bytes, int, int, int]]:
        try:
            return await dump(store)
        finally:
            await store.registry.close()  # type: ignore[attr-defined]

    before = asyncio.run(snapshot())
    failures = []
    cases = [c for c in _cases(files) if c[1][0] not in ("status", "journal")]
    for label, args in cases[::2]:
        result = runner.invoke(app, args, env=env)
        try:
            _check(result, label, missing_ok=label.startswith("destroy"))
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, "\n".join(failures)
    assert asyncio.run(snapshot()) == before
