"""fleetctl plan against the in-process cluster (two machines, role=m1 and role=m2): the
diff, its exit status (0 no change, 1 changes, 2 unplaceable, 3 no plan), -o json,
--load/--submit, and that planning writes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from clikit import M1, M2, ServerThread
from clirun import SERVICE, Result, fleetctl, revision, runner, serving

PINNED = SERVICE + "\n[X-Fleet]\nMachineMetadata=role=m1\n"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    with serving(tmp_path, inspected=False) as thread:
        yield thread


@pytest.fixture
def run(
    server: ServerThread,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., Result]:
    units = tmp_path / "units"
    units.mkdir()
    (units / "web.service").write_text(PINNED)
    (units / "cache.service").write_text(PINNED)
    (units / "pusher.service").write_text(PINNED + "Replaces=cache.service\n")
    (units / "big.service").write_text(SERVICE + "\n[X-Fleet]\nMemoryReservation=1T\n")
    (units / "bad.service").write_text(SERVICE + "\n[X-Fleet]\nAtMostOnce=maybe\n")
    (units / "app@.service").write_text(
        "[Unit]\nDescription=App %i\n\n[Service]\nExecStart=/bin/sleep %i\n"
    )
    (units / "legacy.service").write_text(SERVICE + "\n[X-Fleet]\nConflicts=legacy\n")
    return runner(server, units, capsys, monkeypatch)


def unchanged(server: ServerThread, since: int) -> bool:
    return server.call(revision(server)) == since


def test_a_new_unit_then_no_change(run, server: ServerThread) -> None:  # type: ignore[no-untyped-def]
    since = server.call(revision(server))
    r = run("plan", "web.service")
    assert r.code == 1, r.output
    assert r.stdout.splitlines() == [
        "+ unit web.service (new, launched)",
        "+ schedule web.service on m1: load and start (best fit (binpack))",
        "Plan: 1 to schedule, 0 to update, 0 to unschedule.",
    ]
    assert unchanged(server, since)
    assert run("start", "--block-attempts", "100", "web.service").code == 0
    r = run("plan", "web.service")
    assert (r.code, r.stdout) == (0, "No changes: the cluster already has these units as given.\n")
    r = run("plan", "--load", "web.service")
    assert r.code == 1
    assert r.stdout.splitlines()[:2] == [
        "~ unit web.service: desired state launched -> loaded",
        "~ update web.service on m1: stop (desired state launched -> loaded)",
    ]


def test_replaces_pushes_a_running_unit_out(run, server: ServerThread) -> None:  # type: ignore[no-untyped-def]
    assert run("start", "--block-attempts", "100", "cache.service").code == 0
    since = server.call(revision(server))
    r = run("plan", "pusher.service")
    assert r.code == 2, r.output  # cache.service may only run on m1: nowhere left
    assert r.stdout.splitlines() == [
        "+ unit pusher.service (new, launched)",
        "- unschedule cache.service from m1: stop and unload (replaced by pusher.service)",
        "+ schedule pusher.service on m1: load and start (best fit (binpack))",
        f"! unplaceable cache.service: {M1}: would be replaced by pusher.service; "
        f"{M2}: metadata role=m1 wanted, role=m2",
        "Plan: 1 to schedule, 0 to update, 1 to unschedule; 1 unplaceable.",
    ]
    assert unchanged(server, since)
    r = run("-o", "json", "plan", "pusher.service")
    assert r.code == 2
    body = json.loads(r.stdout)
    assert [(c["action"], c["unit"], c["machineID"]) for c in body["changes"]] == [
        ("unschedule", "cache.service", M1),
        ("schedule", "pusher.service", M1),
    ]
    assert body["unplaceable"][0]["reasons"] == {
        M1: "would be replaced by pusher.service",
        M2: "metadata role=m1 wanted, role=m2",
    }
    assert set(body) == {
        "units",
        "changes",
        "unplaceable",
        "waiting",
        "pending",
        "changed",
        "strategy",
    }
    assert unchanged(server, since)


def test_unplaceable_exits_2_with_each_machines_reason(run) -> None:  # type: ignore[no-untyped-def]
    r = run("plan", "big.service")
    assert r.code == 2
    assert r.stdout.splitlines()[-2:] == [
        f"! unplaceable big.service: {M1}: needs 1T memory, 4G free; "
        f"{M2}: needs 1T memory, 4G free",
        "Plan: 0 to schedule, 0 to update, 0 to unschedule; 1 unplaceable.",
    ]


def test_instances_templates_and_submit(run, server: ServerThread) -> None:  # type: ignore[no-untyped-def]
    since = server.call(revision(server))
    r = run("plan", "app@.service", "app@1.service")
    assert r.code == 3 and "cannot start template app@.service" in r.stderr
    r = run("plan", "--submit", "app@.service", "app@1.service")
    assert r.code == 1, r.output
    assert r.stdout.splitlines() == [
        "+ unit app@.service (new, inactive)",
        "+ unit app@1.service (new, inactive)",
        "Plan: 0 to schedule, 0 to update, 0 to unschedule.",
    ]
    assert run("submit", "app@.service").code == 0
    r = run("plan", "app@1.service", "app@2.service")  # from the submitted template
    assert r.code == 1
    assert [
        line.split(" on ")[0] for line in r.stdout.splitlines() if line.startswith("+ schedule")
    ] == [
        "+ schedule app@1.service",
        "+ schedule app@2.service",
    ]
    assert server.call(revision(server)) > since
    since = server.call(revision(server))
    r = run("plan", "--load", "--submit", "app@1.service")
    assert r.code == 3 and "exclude each other" in r.stderr
    assert unchanged(server, since)


def test_bad_input_exits_3_and_writes_nothing(run, server: ServerThread) -> None:  # type: ignore[no-untyped-def]
    since = server.call(revision(server))
    r = run("plan", "web.service", "bad.service")
    assert r.code == 3
    assert "bad.service" in r.stderr and "AtMostOnce" in r.stderr
    r = run("plan", "nowhere.service")
    assert r.code == 3 and "unable to find unit nowhere.service" in r.stderr
    r = run("plan")
    assert r.code == 3 and "Missing argument" in r.stderr
    r = run("plan", "--bogus", "web.service")
    assert r.code == 3 and "--bogus" in r.stderr
    assert unchanged(server, since)


def test_warnings_about_the_file_come_on_stderr(run) -> None:  # type: ignore[no-untyped-def]
    r = run("plan", "legacy.service")
    assert r.code == 1
    assert r.stderr.startswith("WARNING: legacy.service: ")
    assert "Conflicts=legacy" in r.stderr


def test_an_unreachable_cluster_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "web.service").write_text(SERVICE)
    env = {"FLEETCTL_ENDPOINT": f"unix://{tmp_path}/none.sock"}
    r = fleetctl(capsys, monkeypatch, ["plan", str(tmp_path / "web.service")], env)
    assert r.code == 3 and "cannot reach fleetd" in r.stderr
