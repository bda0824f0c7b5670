"""Unit versions on a sandbox of real machines: fleetd's real listeners name the caller
(the token on TCP, ``unix socket`` inside a machine), the versions live in the real etcd,
and ``fleetctl history`` reads them back, also after the unit is destroyed."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from cluster_helpers import FLEETCTL, fleetctl

from fleetd.sandbox.cluster import Sandbox
from fleetd.unitfile import UnitFile

pytestmark = pytest.mark.integration
V1 = "[Unit]\nDescription=history\n\n[Service]\nExecStart=/bin/sleep 1000\n"
V2 = "[Unit]\nDescription=history\n\n[Service]\nExecStart=/bin/sleep 2000\n"


def test_history_names_who_changed_a_unit(sandbox: Sandbox, tmp_path: Path) -> None:
    name = f"hist-{uuid.uuid4().hex[:8]}.service"
    unit = tmp_path / name
    unit.write_text(V1)
    r = fleetctl(sandbox, "submit", str(unit))
    assert r.returncode == 0, r.stderr

    # Inside m2, through the local unix socket.
    inside = f"/run/{name}"
    assert sandbox.exec("m2", "tee", inside, input=V2).returncode == 0
    r = sandbox.exec("m2", FLEETCTL, "submit", "--replace", inside)
    assert r.returncode == 0, r.stdout + r.stderr
    sandbox.exec("m2", "rm", "-f", inside)

    r = fleetctl(sandbox, "--output", "json", "history", name)
    assert r.returncode == 0, r.stderr
    listing = json.loads(r.stdout)
    assert listing["current"] == 2
    first, second = listing["versions"]
    assert (first["version"], first["by"], first["hash"]) == (
        1,
        "token",
        UnitFile.from_text(V1).hash,
    )
    assert re.fullmatch(r"[0-9.]+", first["remote"]), first["remote"]
    assert (second["version"], second["by"], second["remote"]) == (2, "unix socket", "")
    assert second["changes"] == "+1 -1 lines; [Service] ExecStart changed"

    r = fleetctl(sandbox, "history", name, "--diff", "2")
    assert "-ExecStart=/bin/sleep 1000\n+ExecStart=/bin/sleep 2000\n" in r.stdout

    assert fleetctl(sandbox, "destroy", name).returncode == 0
    r = fleetctl(sandbox, "history", name)
    assert r.returncode == 0
    assert [line.split("\t")[0] for line in r.stdout.splitlines()] == ["VERSION", "1", "2"]
    assert "does not exist now" in r.stderr
