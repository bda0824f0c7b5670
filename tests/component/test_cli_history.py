"""``fleetctl history`` against the real API on a unix socket (and TCP with a token), and
with ``--driver etcd`` against a real etcd."""

from __future__ import annotations

import getpass
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import leakcheck
import pytest
from clikit import ServerThread
from clirun import serving
from typer.testing import CliRunner

from fleetd.cli.main import app, main
from fleetd.etcd_server import EtcdServer
from fleetd.unitfile import UnitFile

TOKEN = leakcheck.secret("history-token-0123456789")
V1 = "[Unit]\nDescription=Web\n\n[Service]\nExecStart=/bin/sleep 1000\n"
V2 = "[Unit]\nDescription=Web\n\n[Service]\nExecStart=/bin/sleep 2000\nRestart=always\n"
TEMPLATE = "[Unit]\nDescription=App %i\n\n[Service]\nExecStart=/bin/sleep %i\n"
TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    with serving(tmp_path, inspected=False, token=TOKEN, page_size=100) as thread:
        yield thread


def fleetctl(endpoint: str, *args: str):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(app, ["--endpoint", endpoint, *args], catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


def short(text: str) -> str:
    return UnitFile.from_text(text).hash[:7]


@pytest.fixture
def two_versions(server: ServerThread, tmp_path: Path) -> ServerThread:
    """web.service v1 submitted over the unix socket, v2 over TCP with the token."""
    unit = tmp_path / "web.service"
    unit.write_text(V1)
    assert fleetctl(server.endpoint, "submit", str(unit)).exit_code == 0
    unit.write_text(V2)
    r = fleetctl(server.tcp_endpoint, "--token", TOKEN, "submit", "--replace", str(unit))
    assert r.exit_code == 0, r.output
    return server


def test_history_lists_versions_with_who_when_and_what(two_versions: ServerThread) -> None:
    r = fleetctl(two_versions.endpoint, "history", "web.service")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert re.fullmatch(r"VERSION\tTIME\t+BY\t+HASH\tCHANGES", lines[0])
    assert re.fullmatch(
        rf"1\t{TIME}\tunix socket\t+{short(V1)}\tfirst version \(5 lines\)", lines[1]
    )
    assert re.fullmatch(
        rf"2\t{TIME}\ttoken \(127\.0\.0\.1\)\t{short(V2)}\t"
        r"\+2 -1 lines; \[Service\] ExecStart changed, \[Service\] Restart added",
        lines[2],
    )
    assert len(lines) == 3 and r.stderr == ""


def test_history_diff(two_versions: ServerThread) -> None:
    r = fleetctl(two_versions.endpoint, "history", "web", "--diff", "2")
    assert r.exit_code == 0, r.output
    assert r.stdout == (
        "--- web.service v1\n"
        "+++ web.service v2\n"
        "@@ -2,4 +2,5 @@\n"
        " Description=Web\n"
        " \n"
        " [Service]\n"
        "-ExecStart=/bin/sleep 1000\n"
        "+ExecStart=/bin/sleep 2000\n"
        "+Restart=always\n"
    )
    r = fleetctl(two_versions.endpoint, "history", "web.service", "--diff", "1")
    assert r.stdout.startswith("--- /dev/null\n+++ web.service v1\n@@ -0,0 +1,5 @@\n+[Unit]\n")


def test_history_json(two_versions: ServerThread) -> None:
    r = fleetctl(two_versions.endpoint, "-o", "json", "history", "web.service")
    listing = json.loads(r.stdout)
    assert listing["name"] == "web.service" and listing["current"] == 2
    assert [(v["version"], v["by"], v["remote"]) for v in listing["versions"]] == [
        (1, "unix socket", ""),
        (2, "token", "127.0.0.1"),
    ]
    assert listing["versions"][1]["hash"] == UnitFile.from_text(V2).hash
    assert (listing["versions"][1]["linesAdded"], listing["versions"][1]["linesRemoved"]) == (2, 1)
    r = fleetctl(two_versions.endpoint, "-o", "json", "history", "web.service", "--diff", "2")
    diff = json.loads(r.stdout)
    assert set(diff) == {"name", "version", "previous", "diff"}
    assert (diff["name"], diff["version"], diff["previous"]) == ("web.service", 2, 1)
    assert "+Restart=always\n" in diff["diff"]


def test_instances_name_the_template_version_they_have(
    server: ServerThread, tmp_path: Path
) -> None:
    template = tmp_path / "app@.service"
    template.write_text(TEMPLATE)
    assert fleetctl(server.endpoint, "submit", str(template)).exit_code == 0
    assert fleetctl(server.endpoint, "start", "--no-block", "app@1.service").exit_code == 0
    template.write_text(TEMPLATE.replace("sleep %i", "sleep 9%i"))
    assert fleetctl(server.endpoint, "submit", "--replace", str(template)).exit_code == 0
    r = fleetctl(server.endpoint, "history", "app@1.service")
    header, row = r.stdout.splitlines()
    assert re.fullmatch(r"VERSION\tTIME\t+BY\t+HASH\tTEMPLATE\tCHANGES", header)
    assert re.fullmatch(
        rf"1\t{TIME}\tunix socket\t{short(TEMPLATE)}\tapp@\.service v1\tfirst version.*", row
    )
    r = fleetctl(server.endpoint, "history", "app@.service")
    assert [line.split("\t")[0] for line in r.stdout.splitlines()[1:]] == ["1", "2"]


def test_a_destroyed_unit_keeps_its_history(two_versions: ServerThread) -> None:
    assert fleetctl(two_versions.endpoint, "destroy", "web.service").exit_code == 0
    r = fleetctl(two_versions.endpoint, "history", "web.service")
    assert r.exit_code == 0
    assert len(r.stdout.splitlines()) == 3
    assert r.stderr == "web.service does not exist now; these versions are kept from before\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope.service"], "unit nope.service does not exist and has no versions\n"),
        (
            ["web.service", "--diff", "3"],
            "unit web.service has no version 3 (versions 1-2 are kept)\n",
        ),
        (["x\x1b.service"], "invalid"),
    ],
)
def test_bad_input_is_a_clear_error(
    two_versions: ServerThread, args: list[str], message: str
) -> None:
    r = fleetctl(two_versions.endpoint, "history", *args)
    assert r.exit_code == 1
    assert r.stdout == ""
    assert message in r.stderr
    assert "\x1b" not in r.stderr


@pytest.mark.parametrize("number", ["0", "-2", "two"])
def test_bad_version_numbers_are_usage_errors(
    two_versions: ServerThread, number: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--endpoint", two_versions.endpoint, "history", "web.service", "--diff", number])
    assert exited.value.code == 1
    assert "--diff" in capsys.readouterr().err


@pytest.mark.etcd
def test_etcd_driver_records_who_and_reads_history(
    etcd_server: EtcdServer, key_prefix: str, tmp_path: Path
) -> None:
    env = {
        "FLEETCTL_DRIVER": "etcd",
        "FLEETCTL_ETCD_ENDPOINTS": etcd_server.endpoint,
        "FLEETCTL_ETCD_KEY_PREFIX": key_prefix,
    }
    runner = CliRunner()

    def etcdctl(*args: str):  # type: ignore[no-untyped-def]
        result = runner.invoke(app, list(args), env=env, catch_exceptions=False)
        assert "Traceback" not in result.output
        return result

    unit = tmp_path / "web.service"
    unit.write_text(V1)
    assert etcdctl("submit", str(unit)).exit_code == 0
    unit.write_text(V2)
    assert etcdctl("submit", "--replace", str(unit)).exit_code == 0
    template = tmp_path / "app@.service"
    template.write_text(TEMPLATE)
    assert etcdctl("submit", str(template)).exit_code == 0
    instances = [f"app@{i}.service" for i in range(25)]
    assert etcdctl("start", "--no-block", *instances).exit_code == 0  # the bulk path
    r = etcdctl("-o", "json", "history", "web.service")
    listing = json.loads(r.stdout)
    who = f"etcd driver ({getpass.getuser()}@{socket.gethostname()})"
    assert [(v["version"], v["by"]) for v in listing["versions"]] == [(1, who), (2, who)]
    r = etcdctl("history", "web.service", "--diff", "2")
    assert "-ExecStart=/bin/sleep 1000\n+ExecStart=/bin/sleep 2000\n" in r.stdout
    r = etcdctl("-o", "json", "history", "app@24.service")
    [version] = json.loads(r.stdout)["versions"]
    assert version["template"] == {"name": "app@.service", "version": 1}
    assert version["by"] == who
    r = etcdctl("history", "app@99.service")
    assert r.exit_code == 1
    assert r.stderr == "unit app@99.service does not exist and has no versions\n"
