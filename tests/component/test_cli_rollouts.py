"""``fleetctl update``, ``rollback`` and ``rollout`` against the in-process cluster (the real
engine drives the rollouts), and ``--driver etcd`` against a real etcd."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from clikit import ServerThread
from clirun import fleetctl, serving
from typer.testing import CliRunner

from fleetd.cli.main import app
from fleetd.etcd_server import EtcdServer
from fleetd.testing.polling import wait_until
from fleetd.unitfile import UnitFile

V1 = "[Unit]\nDescription=App %i\n\n[Service]\nExecStart=/bin/sleep 1000\n"
V2 = "[Unit]\nDescription=App %i v2\n\n[Service]\nExecStart=/bin/sleep 2000\n"
BROKEN = "[Unit]\nDescription=App %i broken\n\n[Service]\nExecStart=/bin/false\n"
FAST = ["--min-healthy-time", "0", "--healthy-deadline", "3s"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    with serving(tmp_path, inspected=False, page_size=100) as thread:
        yield thread


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "app@.service"
    path.write_text(text)
    return str(path)


@pytest.fixture
def running(
    server: ServerThread,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> ServerThread:
    """Three instances of app@.service (V1) started."""
    template = write(tmp_path, V1)
    env = {"FLEETCTL_ENDPOINT": server.endpoint}
    r = fleetctl(capsys, monkeypatch, ["submit", template], env)
    assert r.code == 0, r
    r = fleetctl(capsys, monkeypatch, ["start", "app@1", "app@2", "app@3"], env)
    assert r.code == 0, r
    return server


def hashes(server: ServerThread) -> set[str]:
    units = server.call(server.store.list_units())
    return {u.hash for u in units if u.name != "app@.service"}


def test_update_follows_the_rollout_to_its_end(
    running: ServerThread,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {"FLEETCTL_ENDPOINT": running.endpoint}
    args = ["update", "--max-parallel", "2", *FAST, write(tmp_path, V2)]
    r = fleetctl(capsys, monkeypatch, args, env)
    assert r.code == 0, r
    assert re.search(r"Rollout of app@\.service started: version 1 -> 2 \(id \w+\)", r.stderr)
    assert r.stdout.splitlines()[-1] == (
        "Rollout of app@.service succeeded: 3 of 3 updated: all on version 2"
    )
    assert hashes(running) == {UnitFile.from_text(V2).hash}

    r = fleetctl(capsys, monkeypatch, ["rollout", "status", "app@.service"], env)
    assert r.code == 0, r
    lines = r.stdout.splitlines()
    assert re.fullmatch(r"Rollout \w+ of app@\.service \(template\): succeeded", lines[0])
    assert "version 1 (" in lines[1] and "max 2 at once, min healthy 0s, deadline 3s" in lines[1]
    assert lines[2].startswith("  started by unix socket at ")
    assert re.fullmatch(r"TARGET\t+STATE\t+HASH\t+SINCE\t+MESSAGE", lines[4])
    assert [line.split()[:2] for line in lines[5:]] == [
        [f"app@{i}.service", "done"] for i in (1, 2, 3)
    ]
    r = fleetctl(capsys, monkeypatch, ["-o", "json", "rollout", "status"], env)
    [record] = json.loads(r.stdout)
    assert record["unit"] == "app@.service" and record["phase"] == "succeeded"

    # rollback: the newest older version with another file (1), as version 3.
    r = fleetctl(capsys, monkeypatch, ["rollback", *FAST, "app@.service"], env)
    assert r.code == 0, r
    assert "Rolling app@.service back to version 1" in r.stderr
    assert "Rollout of app@.service succeeded: 3 of 3 updated: all on version 3" in r.stdout
    assert hashes(running) == {UnitFile.from_text(V1).hash}


def test_a_failed_update_exits_1_after_the_revert(
    running: ServerThread,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {"FLEETCTL_ENDPOINT": running.endpoint}
    args = ["update", "--auto-revert", "--min-healthy-time", "0", "--healthy-deadline", "1s"]
    r = fleetctl(capsys, monkeypatch, [*args, write(tmp_path, BROKEN)], env)
    assert r.code == 1, r
    assert re.search(
        r"Rollout of app@\.service reverted: 1 of 1 back on the previous version \(2 not "
        r"updated\): reverted "
        r"to version 1 after: app@1\.service: not healthy within 1s \(failed/failed on m1\)",
        r.stderr,
    ), r.stderr
    assert hashes(running) == {UnitFile.from_text(V1).hash}


def test_bad_updates_change_nothing(
    running: ServerThread,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {"FLEETCTL_ENDPOINT": running.endpoint}
    new = write(tmp_path, V2)
    before = running.call(running.store.registry.get_prefix("/"))[0]
    for args, message in (
        (["--max-parallel", "0", new], "max-parallel must be at least 1, got 0"),
        (["--min-healthy-time", "soon", new], "--min-healthy-time: not a duration: 'soon'"),
        (["--min-healthy-time", "10m", new], "must be longer than min-healthy-time"),
        ([str(tmp_path / "nope.service")], "no such file"),
    ):
        r = fleetctl(capsys, monkeypatch, ["update", *args], env)
        assert r.code == 1 and message in r.stderr, r
    other = tmp_path / "idle.service"
    other.write_text(V1.replace("%i", "idle"))
    r = fleetctl(capsys, monkeypatch, ["submit", str(other)], env)
    before = running.call(running.store.registry.get_prefix("/"))[0]
    other.write_text(V2.replace("%i", "idle"))
    r = fleetctl(capsys, monkeypatch, ["update", str(other)], env)
    assert r.code == 1 and "unit idle.service is not launched" in r.stderr, r
    assert running.call(running.store.registry.get_prefix("/"))[0] == before
    r = fleetctl(capsys, monkeypatch, ["rollout", "pause", "idle.service"], env)
    assert r.code == 1 and "idle.service has no rollout" in r.stderr
    r = fleetctl(capsys, monkeypatch, ["rollout", "pause"], env)
    assert r.code == 1 and "rollout pause needs the unit" in r.stderr


def test_pause_resume_abort_from_the_command_line(
    running: ServerThread,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {"FLEETCTL_ENDPOINT": running.endpoint}
    args = ["update", "--no-block", "--min-healthy-time", "1m", "--healthy-deadline", "5m"]
    r = fleetctl(capsys, monkeypatch, [*args, write(tmp_path, V2)], env)
    assert r.code == 0 and r.stdout == "", r
    for action, phase in (("pause", "paused"), ("resume", "running"), ("abort", "aborted")):
        r = fleetctl(capsys, monkeypatch, ["rollout", action, "app@.service"], env)
        assert r.code == 0, r
        assert r.stdout.startswith(f"Rollout of app@.service: {phase}: "), r
    r = fleetctl(capsys, monkeypatch, ["rollout", "promote", "app@.service"], env)
    assert r.code == 1 and "has ended (aborted): nothing to promote" in r.stderr


@pytest.mark.etcd
def test_the_etcd_driver_starts_rollouts_with_the_api_s_checks(
    etcd_server: EtcdServer, key_prefix: str, tmp_path: Path
) -> None:
    env = {
        "FLEETCTL_DRIVER": "etcd",
        "FLEETCTL_ETCD_ENDPOINTS": etcd_server.endpoint,
        "FLEETCTL_ETCD_KEY_PREFIX": key_prefix,
    }
    runner = CliRunner()

    def run(*args: str):  # type: ignore[no-untyped-def]
        result = runner.invoke(app, list(args), env=env, catch_exceptions=False)
        assert "Traceback" not in result.output
        return result

    unit = tmp_path / "web.service"
    unit.write_text(V1.replace("%i", "web"))
    assert run("submit", str(unit)).exit_code == 0
    unit.write_text(V2.replace("%i", "web"))
    r = run("update", "--no-block", str(unit))
    assert r.exit_code == 1 and "unit web.service is not launched" in r.stderr
    assert run("start", "--no-block", "web.service").exit_code == 0
    r = run("update", "--no-block", "--max-parallel", "3", str(unit))
    assert r.exit_code == 0, r.output
    r = run("-o", "json", "rollout", "status", "web.service")
    record = json.loads(r.stdout)
    assert (record["phase"], record["maxParallel"], record["toVersion"]) == ("running", 3, 2)
    assert record["startedBy"].startswith("etcd driver (")
    r = run("update", "--no-block", str(unit))
    assert r.exit_code == 1 and "a rollout of web.service is already running" in r.stderr


def test_canaries_then_promote_then_rollback_to_a_named_version(
    running: ServerThread,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {"FLEETCTL_ENDPOINT": running.endpoint}
    r = fleetctl(capsys, monkeypatch, ["update", "--canary", "1", *FAST, write(tmp_path, V2)], env)
    assert r.code == 0, r
    assert r.stdout.splitlines()[-1].startswith("Rollout of app@.service awaits a promotion: ")
    assert "(fleetctl rollout promote app@.service)" in r.stdout
    record = json.loads(
        fleetctl(
            capsys, monkeypatch, ["-o", "json", "rollout", "status", "app@.service"], env
        ).stdout
    )
    assert record["phase"] == "awaiting-promotion" and record["canary"] == 1
    assert [t["state"] for t in record["targets"]].count("done") == 1
    v2 = UnitFile.from_text(V2).hash
    assert hashes(running) == {UnitFile.from_text(V1).hash, v2}  # one canary on v2

    r = fleetctl(capsys, monkeypatch, ["rollout", "promote", "app@.service"], env)
    assert r.code == 0, r
    assert r.stdout.startswith("Rollout of app@.service: running: "), r
    wait_until(lambda: hashes(running) == {v2}, 15, "every instance on v2")
    args = ["-o", "json", "rollout", "status", "app@.service"]
    record = json.loads(fleetctl(capsys, monkeypatch, args, env).stdout)
    assert record["phase"] in ("running", "succeeded") and record["promoted"] is True

    # A third version, then back to the first by its number (not the one before).
    wait_until(
        lambda: json.loads(fleetctl(capsys, monkeypatch, args, env).stdout)["phase"] == "succeeded",
        15,
        "the rollout succeeded",
    )
    v3 = V2.replace("v2", "v3")
    assert fleetctl(capsys, monkeypatch, ["update", *FAST, write(tmp_path, v3)], env).code == 0
    assert hashes(running) == {UnitFile.from_text(v3).hash}
    r = fleetctl(capsys, monkeypatch, ["rollback", "--to", "1", *FAST, "app@.service"], env)
    assert r.code == 0, r
    assert "Rolling app@.service back to version 1" in r.stderr
    assert "Rollout of app@.service succeeded: 3 of 3 updated: all on version 4" in r.stdout
    assert hashes(running) == {UnitFile.from_text(V1).hash}
    r = fleetctl(capsys, monkeypatch, ["rollback", "--to", "9", *FAST, "app@.service"], env)
    assert r.code == 1 and "version 9 of app@.service is not kept (versions 1 to 4 are)" in r.stderr
    assert "Rolling" not in r.stderr, r.stderr  # nothing said to happen before the refusal
    assert hashes(running) == {UnitFile.from_text(V1).hash}
