"""``fleetctl config get|set`` against the in-process cluster, and the mass-loss guard under
``list-machines``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from clikit import M2, ServerThread
from clirun import Result, fleetctl, serving

from fleetd.clustersettings import BY_NAME, ClusterSettings
from fleetd.testing.polling import wait_until


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    with serving(tmp_path, inspected=False, page_size=100) as thread:
        yield thread


def run(
    server: ServerThread,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *args: str,
) -> Result:
    return fleetctl(capsys, monkeypatch, list(args), {"FLEETCTL_ENDPOINT": server.endpoint})


def stored(server: ServerThread) -> tuple[ClusterSettings, int]:
    return server.call(server.store.get_cluster_settings())


def test_get_lists_every_setting_and_set_changes_one(
    server: ServerThread, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    r = run(server, capsys, monkeypatch, "config", "get")
    assert r.code == 0, r
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["KEY", "VALUE", "SOURCE", "DESCRIPTION"]
    assert [line.split("\t")[0] for line in lines[1:]] == [
        "strategy",
        "max_unavailable",
        "guard_machines",
        "guard_share",
        "guard_window",
        "guard_hold",
    ]
    assert lines[1].split()[:3] == ["strategy", "binpack", "default"]
    r = run(server, capsys, monkeypatch, "config", "set", "strategy", "spread")
    assert r.code == 0, r
    assert r.stdout == "strategy = spread\n"
    assert stored(server)[0] == ClusterSettings(strategy="spread")
    r = run(server, capsys, monkeypatch, "config", "get", "strategy")
    assert r.stdout.splitlines()[1].split()[:3] == ["strategy", "spread", "set"]
    r = run(server, capsys, monkeypatch, "-o", "json", "config", "get", "guard_share")
    assert json.loads(r.stdout) == [
        {
            "name": "guard_share",
            "value": 0.3,
            "default": 0.3,
            "set": False,
            "description": BY_NAME["guard_share"].help,
        }
    ]
    r = run(server, capsys, monkeypatch, "config", "set", "strategy", "default")
    assert r.stdout == "strategy = binpack (default)\n"
    assert stored(server)[0] == ClusterSettings()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["set", "strategie", "spread"], "unknown cluster setting 'strategie' (known: strategy,"),
        (["get", "nope"], "unknown cluster setting 'nope'"),
        (["set", "max_unavailable", "two"], "must be an integer from 1 to 10000, got 'two'"),
        (["set", "max_unavailable", "0"], "must be an integer from 1 to 10000, got 0"),
        (["set", "guard_share", "2"], "guard_share must be a number from 0 to 1, got 2"),
        (["set", "strategy", "fast"], "strategy must be binpack or spread"),
        (["set", "strategy"], "config set needs a KEY and a VALUE"),
        (["frob"], "unknown config action 'frob'"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(
    server: ServerThread,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    says: str,
) -> None:
    assert run(server, capsys, monkeypatch, "config", "set", "guard_hold", "40").code == 0
    before = stored(server)
    r = run(server, capsys, monkeypatch, "config", *args)
    assert r.code == 1, r
    assert says in r.stderr and r.stdout == ""
    assert stored(server) == before


def test_the_api_refuses_what_fleetctl_would_not_send(
    server: ServerThread,
) -> None:
    with server.client() as client:
        response = client.patch("/fleet/v1/config", json={"guard_window": "10"})
    assert response.status_code == 400
    assert "guard_window" in response.json()["error"]["message"]
    assert stored(server) == (ClusterSettings(), 0)


def test_list_machines_says_the_guard_holds(
    server: ServerThread, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # One machine of two vanishing is a mass loss once guard_machines is 1.
    assert run(server, capsys, monkeypatch, "config", "set", "guard_machines", "1").code == 0
    cluster = server.cluster
    engine = cluster.engine
    assert engine is not None
    wait_until(
        lambda: engine.settings.guard.machines == 1, 10, "the engine taking guard_machines=1"
    )
    r = run(server, capsys, monkeypatch, "list-machines", "--no-legend")
    assert r.code == 0 and r.stderr == "" and len(r.stdout.splitlines()) == 2
    # A unit on M2, so that the guard has something to hold.
    unit = cluster.root / "held.service"
    unit.write_text("[Service]\nExecStart=/bin/sleep 1000\n\n[X-Fleet]\nMachineID=" + M2 + "\n")
    assert run(server, capsys, monkeypatch, "start", str(unit)).code == 0

    async def vanish() -> None:
        node = cluster.nodes[M2]
        lease = node.agent.presence.lease if node.agent is not None else 0
        await node.stop()
        await cluster.registry.revoke_lease(lease)

    server.call(vanish())

    def guarded() -> Result | None:
        r = run(server, capsys, monkeypatch, "list-machines", "--no-legend")
        return r if "1 unit(s)" in r.stderr else None

    r = wait_until(guarded, 10, "list-machines saying the guard holds M2's unit")
    assert r.code == 0 and len(r.stdout.splitlines()) == 1  # fleet's table: M1 alone
    assert r.stderr.startswith("mass-loss guard: 1 of 2 machines vanished within 0s;")
    assert "until 20" in r.stderr and f"machine(s) {M2} stay where they are" in r.stderr
    r = run(server, capsys, monkeypatch, "-o", "json", "list-machines")
    assert len(json.loads(r.stdout)) == 1 and "mass-loss guard" in r.stderr
