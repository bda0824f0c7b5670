"""fleetctl (the real typer app) against the real API served on a unix socket."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import leakcheck
import pytest
from clikit import M1, M2, ServerThread
from typer.testing import CliRunner

from fleetd.api.service.inspector import SystemdInspector
from fleetd.cli.main import app, main, reorder
from fleetd.unitfile import UnitFile

SERVICE = "[Unit]\nDescription=Web server\n\n[Service]\nExecStart=/bin/sleep 1000\n"
TOKEN = leakcheck.secret("cli-token-0123456789abcdef")


@pytest.fixture
def inspector(tmp_path: Path) -> SystemdInspector:
    status = tmp_path / "status.py"
    status.write_text("import sys\nprint('* ' + sys.argv[-1] + ' - Web server')\nsys.exit(0)\n")
    journal = tmp_path / "journal.py"
    journal.write_text(
        "import sys\n"
        "n = int([a for a in sys.argv if a.startswith('--lines=')][0][8:])\n"
        "for i in range(n):\n    print(f'line {i}')\n"
    )
    return SystemdInspector((sys.executable, str(status)), (sys.executable, str(journal)))


@pytest.fixture
def server(tmp_path: Path, inspector: SystemdInspector) -> Iterator[ServerThread]:
    thread = ServerThread(tmp_path, inspector=inspector, token=TOKEN).start()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture
def units(tmp_path: Path) -> Path:
    directory = tmp_path / "units"
    directory.mkdir()
    (directory / "web.service").write_text(SERVICE)
    (directory / "bad.service").write_text(SERVICE.replace("/bin/sleep 1000", "/bin/false"))
    (directory / "big.service").write_text(SERVICE + "\n[X-Fleet]\nMachineMetadata=role=none\n")
    (directory / "app@.service").write_text(
        "[Unit]\nDescription=App %i\n\n[Service]\nExecStart=/bin/sleep %i\n"
    )
    (directory / "broken.service").write_text(SERVICE + "\n[X-Fleet]\nAtMostOnce=maybe\n")
    # fleet v1.0 accepted these (fleetd warns): Conflicts without a suffix, an unknown key
    (directory / "apache.service").write_text(SERVICE + "\n[X-Fleet]\nConflicts=apache\n")
    (directory / "legacy.service").write_text(
        "Description=before any section\n" + SERVICE + "\n[X-Fleet]\nBogus=1\n"
    )
    return directory


def fleetctl(server: ServerThread, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    result = runner.invoke(
        app, ["--endpoint", server.endpoint, *args], env=env, catch_exceptions=False
    )
    assert "Traceback" not in result.output
    return result


def test_submit_and_list_unit_files(server: ServerThread, units: Path) -> None:
    r = fleetctl(server, "submit", str(units / "web.service"), str(units / "app@.service"))
    assert r.exit_code == 0, r.output
    assert "Unit web.service submitted" in r.stdout
    unit = server.call(server.store.get_unit("web.service"))
    assert unit is not None
    r = fleetctl(server, "list-unit-files")
    assert r.exit_code == 0
    h = UnitFile.from_text(SERVICE).hash[:7]
    h_app = UnitFile.from_text((units / "app@.service").read_text()).hash[:7]
    assert r.stdout == (
        "UNIT\t\tHASH\tDSTATE\t\tSTATE\t\tTARGET\n"
        f"app@.service\t{h_app}\tinactive\tinactive\t-\n"
        f"web.service\t{h}\tinactive\tinactive\t-\n"
    )
    r = fleetctl(server, "list-unit-files", "--no-legend", "--fields", "unit,desc")
    assert r.stdout == "app@.service\tApp %i\nweb.service\tWeb server\n"
    r = fleetctl(server, "list-unit-files", "--fields", "unit,nope")
    assert r.exit_code != 0
    assert "nope" in r.output


def test_start_blocks_until_running(server: ServerThread, units: Path) -> None:
    r = fleetctl(server, "start", "--block-attempts", "50", str(units / "web.service"))
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == "Unit web.service started on m1 (10.0.0.1)"
    r = fleetctl(server, "list-units")
    assert r.stdout == (
        "UNIT\t\tMACHINE\t\t\tACTIVE\tSUB\nweb.service\t1a2b3c4d.../10.0.0.1\tactive\trunning\n"
    )
    r = fleetctl(server, "list-units", "--full", "--no-legend")
    assert r.stdout == f"web.service\t{M1}/10.0.0.1\tactive\trunning\n"
    r = fleetctl(server, "list-unit-files", "--fields", "unit,dstate,state,target")
    assert "web.service\tlaunched\tlaunched\t1a2b3c4d.../10.0.0.1" in r.stdout


def test_start_reports_failure_and_unplaceable(server: ServerThread, units: Path) -> None:
    r = fleetctl(
        server, "start", "--block-attempts", "50", str(units / "bad.service"),
        str(units / "big.service"), str(units / "web.service"),
    )  # fmt: skip
    assert r.exit_code == 1
    assert "Unit bad.service failed on m1 (10.0.0.1)" in r.stderr
    why = "m1: metadata role=none wanted, role=m1; m2: metadata role=none wanted, role=m2"
    assert f"Unit big.service could not be placed: {why}" in r.stderr
    # ties go to the machine with fewer units: bad.service took m1
    assert "Unit web.service started on m2 (10.0.0.2)" in r.stdout
    r = fleetctl(server, "list-units")
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["UNIT", "MACHINE", "ACTIVE", "SUB", "REASON"]
    assert lines[2].split("\t")[0] == "big.service"
    assert lines[2].endswith(why)
    r = fleetctl(server, "list-unit-files", "--no-legend")
    assert any(x.endswith(why) for x in r.stdout.splitlines())


def test_no_block_and_json(server: ServerThread, units: Path) -> None:
    r = fleetctl(server, "load", "--no-block", str(units / "web.service"))
    assert r.stdout.strip() == "Triggered unit web.service load"
    r = fleetctl(server, "--output", "json", "list-unit-files")
    data = json.loads(r.stdout)
    assert data[0]["name"] == "web.service" and data[0]["desiredState"] == "loaded"
    r = fleetctl(server, "-o", "json", "start", "--block-attempts", "50", "web.service")
    assert json.loads(r.stdout) == [
        {
            "name": "web.service",
            "ok": True,
            "message": "Unit web.service started on m1 (10.0.0.1)",
            "currentState": "launched",
            "machineID": M1,
            "reason": None,
        }
    ]


def test_stop_unload_restart_destroy(server: ServerThread, units: Path) -> None:
    fleetctl(server, "start", "--block-attempts", "50", str(units / "web.service"))
    r = fleetctl(server, "stop", "--block-attempts", "50", "web.service")
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == "Unit web.service stopped on m1 (10.0.0.1)"
    r = fleetctl(server, "restart", "--block-attempts", "50", "web")
    assert r.stdout.strip() == "Unit web.service restarted on m1 (10.0.0.1)"
    r = fleetctl(server, "unload", "--block-attempts", "50", "web.service")
    assert r.stdout.strip() == "Unit web.service unloaded"
    r = fleetctl(server, "destroy", "web.service", "ghost.service")
    assert r.exit_code == 0
    assert r.stdout.splitlines() == ["Destroyed web.service", "Unit ghost.service does not exist"]
    assert server.call(server.store.get_unit("web.service")) is None
    r = fleetctl(server, "stop", "web.service")
    assert r.exit_code == 1
    assert "web.service does not exist" in r.stderr


def test_instances_from_local_and_submitted_templates(server: ServerThread, units: Path) -> None:
    r = fleetctl(server, "start", "--block-attempts", "50", str(units / "app@1.service"))
    assert r.exit_code == 0, r.output
    one = server.call(server.store.get_unit("app@1.service"))
    assert one is not None and "ExecStart=/bin/sleep %i" in one.text
    fleetctl(server, "submit", str(units / "app@.service"))
    r = fleetctl(server, "load", "--block-attempts", "50", "app@2.service")
    assert r.exit_code == 0, r.output
    assert server.call(server.store.get_unit("app@2.service")) is not None
    r = fleetctl(server, "start", "app@.service")
    assert r.exit_code == 1
    assert "template" in r.stderr
    r = fleetctl(server, "start", "nothing@3.service")
    assert r.exit_code == 1
    assert "nothing@.service" in r.stderr


def test_replace(server: ServerThread, units: Path) -> None:
    path = units / "web.service"
    fleetctl(server, "submit", str(path))
    path.write_text(SERVICE.replace("1000", "2000"))
    r = fleetctl(server, "submit", str(path))
    assert r.exit_code == 0
    assert "differs from local unit file" in r.stderr
    unit = server.call(server.store.get_unit("web.service"))
    assert unit is not None and "1000" in unit.text
    r = fleetctl(server, "submit", "--replace", str(path))
    assert r.exit_code == 0
    unit = server.call(server.store.get_unit("web.service"))
    assert unit is not None and "2000" in unit.text


def test_bad_input_exits_1_without_changes(server: ServerThread, units: Path) -> None:
    r = fleetctl(server, "submit", str(units / "broken.service"))
    assert r.exit_code == 1
    assert "AtMostOnce=maybe: not a boolean" in r.stderr
    r = fleetctl(server, "start", str(units / "web.service"), str(units / "missing.service"))
    assert r.exit_code == 1
    assert "unable to find unit missing.service" in r.stderr
    r = fleetctl(server, "cat", "nope.service")
    assert r.exit_code == 1
    assert "nope.service not found" in r.stderr
    assert server.call(server.store.list_units()) == []


def test_cat_status_journal(server: ServerThread, units: Path) -> None:
    fleetctl(server, "start", "--block-attempts", "50", str(units / "web.service"))
    r = fleetctl(server, "cat", "web.service")
    assert r.stdout == UnitFile.from_text(SERVICE).to_text()
    r = fleetctl(server, "status", "web.service")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("* web.service - Web server")
    r = fleetctl(server, "journal", "--lines", "3", "web.service")
    assert r.stdout.splitlines() == ["line 0", "line 1", "line 2"]
    r = fleetctl(server, "journal", "nope.service")
    assert r.exit_code == 1
    assert "does not exist" in r.stderr


def test_machines_and_cordon(server: ServerThread, units: Path) -> None:
    fleetctl(server, "start", "--block-attempts", "50", str(units / "web.service"))
    r = fleetctl(server, "list-machines")
    assert r.stdout.splitlines() == [
        "MACHINE\t\tIP\t\tMETADATA\tCPU\tMEMORY\tUNITS",
        "1a2b3c4d...\t10.0.0.1\trole=m1\t\t0/2\t0/4G\t1",
        "5e6f7a8b...\t10.0.0.2\trole=m2\t\t0/2\t0/4G\t0",
    ]
    r = fleetctl(server, "cordon", "5e6f")
    assert r.stdout.strip() == f"Machine {M2} cordoned"
    r = fleetctl(server, "list-machines", "--fields", "machine,status", "--full")
    assert f"{M2}\tcordoned" in r.stdout
    r = fleetctl(server, "drain", "--no-block", M1)
    assert "draining" in r.stdout
    r = fleetctl(server, "uncordon", "5e6f")
    assert r.exit_code == 0
    flags = server.call(server.store.get_machine_flags(M2))
    assert not flags.unschedulable
    r = fleetctl(server, "cordon", "ffff")
    assert r.exit_code == 1
    assert "not found" in r.stderr


def test_machines_whose_agent_cannot_reach_systemd_are_shown(server: ServerThread) -> None:
    store = server.store

    async def cut_off() -> None:
        machine = await store.get_machine(M2)
        kv = await store.registry.get(store.keys.machine(M2))
        assert machine is not None and kv is not None
        await store.register_machine(replace(machine, systemd_connected=False), kv.lease)

    server.call(cut_off())
    r = fleetctl(server, "list-machines")
    assert r.stdout.splitlines() == [
        "MACHINE\t\tIP\t\tMETADATA\tCPU\tMEMORY\tUNITS\tSTATUS",
        "1a2b3c4d...\t10.0.0.1\trole=m1\t\t0/2\t0/4G\t0\tready",
        "5e6f7a8b...\t10.0.0.2\trole=m2\t\t0/2\t0/4G\t0\tsystemd-unreachable",
    ]
    fleetctl(server, "cordon", M2)
    r = fleetctl(server, "list-machines", "--fields", "machine,status", "--full")
    assert f"{M2}\tcordoned,systemd-unreachable" in r.stdout
    r = fleetctl(server, "--output", "json", "list-machines")
    found = {m["id"]: m["systemdConnected"] for m in json.loads(r.stdout)}
    assert found == {M1: True, M2: False}


def test_environment_and_token(server: ServerThread, units: Path) -> None:
    runner = CliRunner()
    env = {"FLEETCTL_ENDPOINT": server.tcp_endpoint}
    r = runner.invoke(app, ["list-machines"], env=env)
    assert r.exit_code == 1
    assert "token" in r.stderr
    r = runner.invoke(app, ["list-machines"], env={**env, "FLEETCTL_TOKEN": TOKEN})
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("MACHINE")
    r = runner.invoke(app, ["--token", TOKEN, "--endpoint", server.tcp_endpoint, "list-units"])
    assert r.exit_code == 0


def test_global_options_after_the_command() -> None:
    assert reorder(["list-units", "--endpoint", "unix:///x", "--full"]) == [
        "--endpoint",
        "unix:///x",
        "list-units",
        "--full",
    ]
    assert reorder(["start", "a.service", "--token=abc"]) == ["--token=abc", "start", "a.service"]
    assert reorder(["--driver", "etcd", "list-units"]) == ["--driver", "etcd", "list-units"]


def test_usage_errors_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--bogus"])
    assert exited.value.code == 1
    assert "--bogus" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0


def test_unreachable_endpoint(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["--endpoint", f"unix://{tmp_path}/none.sock", "list-units"])
    assert r.exit_code == 1
    assert "cannot reach fleetd" in r.stderr
    r = CliRunner().invoke(app, ["--endpoint", "ftp://x", "list-units"])
    assert r.exit_code == 1
    assert "expected unix" in r.stderr


def test_cli_does_not_import_fastapi() -> None:
    import subprocess

    code = "import sys, fleetd.cli.main; print('fastapi' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_instance_from_a_template_given_on_the_same_command_line(
    server: ServerThread, units: Path
) -> None:
    r = fleetctl(server, "submit", str(units / "app@.service"), "app@7.service")
    assert r.exit_code == 0, r.output
    seven = server.call(server.store.get_unit("app@7.service"))
    assert seven is not None and "ExecStart=/bin/sleep %i" in seven.text
    assert server.call(server.store.get_unit("app@.service")) is not None


# --- what fleet v1.0 accepted and fleetd suspects: submitted, with warnings on stderr ---------


def warnings_in(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("WARNING: ")]


def test_submit_warns_and_accepts(server: ServerThread, units: Path) -> None:
    r = fleetctl(server, "submit", str(units / "apache.service"))
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == ["Unit apache.service submitted"]
    [warning] = warnings_in(r.stderr)  # computed here and by fleetd: shown once
    assert warning.startswith("WARNING: apache.service: Conflicts=apache: 'apache': no type")
    assert "did you mean apache.service or apache*?" in warning
    unit = server.call(server.store.get_unit("apache.service"))
    assert unit is not None and "Conflicts=apache" in unit.text


def test_submit_warns_about_lines_only_the_file_had(server: ServerThread, units: Path) -> None:
    """Lines before the first section never reach fleetd: fleetctl warns about them itself."""
    r = fleetctl(server, "submit", str(units / "legacy.service"))
    assert r.exit_code == 0, r.output
    got = warnings_in(r.stderr)
    assert len(got) == 2, got
    assert "line 1: 'Description=before any section' is outside of any [Section]" in got[0]
    assert "unknown [X-Fleet] key 'Bogus'" in got[1]
    unit = server.call(server.store.get_unit("legacy.service"))
    assert unit is not None and "before any section" not in unit.text


def test_warnings_of_many_units_at_once(server: ServerThread, units: Path) -> None:
    names = ("apache.service", "legacy.service", "web.service")
    r = fleetctl(server, "start", "--no-block", *(str(units / n) for n in names))
    assert r.exit_code == 0, r.output
    got = warnings_in(r.stderr)
    assert [w.split(": ")[1] for w in got] == ["apache.service", "legacy.service", "legacy.service"]
    for name in names:
        unit = server.call(server.store.get_unit(name))
        assert unit is not None and unit.desired.value == "launched"


def test_no_warning_for_a_unit_already_there(server: ServerThread, units: Path) -> None:
    fleetctl(server, "submit", str(units / "apache.service"))
    r = fleetctl(server, "start", "--no-block", str(units / "apache.service"))
    assert r.exit_code == 0, r.output
    assert warnings_in(r.stderr) == []


def test_api_backend_returns_the_servers_warnings(server: ServerThread) -> None:
    """The wire: the header of PUT /units/{name}, the items of PUT /units."""
    from fleetd.api.service.commands import UnitChange
    from fleetd.api.wire import UnitOption
    from fleetd.cli.backend import ApiBackend

    options = [
        UnitOption(section="Service", name="ExecStart", value="/bin/true"),
        UnitOption(section="X-Fleet", name="MachineOf", value="db"),
    ]

    async def work() -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
        backend = ApiBackend(server.endpoint, token=TOKEN)
        try:
            one = await backend.create_unit("a.service", options, None, replace=False)
            changes = [UnitChange(f"{n}.service", options) for n in "bc"]
            many = await backend.write_units(changes, replace=False)
            return one, many
        finally:
            await backend.close()

    one, many = asyncio.run(work())
    assert len(one) == 1 and "MachineOf=db: 'db': no type suffix" in one[0]
    assert many == {"b.service": one, "c.service": one}
