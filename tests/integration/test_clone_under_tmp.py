"""A clone under /tmp boots a sandbox: machines see the install wherever it lives.

systemd inside each machine runs on a fresh /tmp (and /run), so a project or
virtualenv under /tmp is not there unless the sandbox binds it in.  The test
clones the repository's committed HEAD into a new directory under /tmp,
installs it with the clone's own ``.ci/setup`` (venv inside the clone), boots
a one-machine sandbox with the clone's fleetd and starts a unit with the
clone's fleetctl, then removes the sandbox and the clone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import leakcheck
import pytest

from fleetd.sandbox import host
from fleetd.sandbox.cluster import Sandbox, teardown
from fleetd.sandbox.state import Instance

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
UNIT_NAME = "from-tmp-clone.service"
UNIT = """[Unit]
Description=started by fleetd installed under /tmp

[Service]
ExecStart=/bin/sleep infinity
"""


def _run(
    args: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def _ok(proc: subprocess.CompletedProcess[str], what: str) -> str:
    assert proc.returncode == 0, f"{what} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def _free_instance() -> str:
    for digit in range(10):
        name = f"tc{digit}"
        if not Instance(name).state_dir.exists():
            return name
    raise RuntimeError("no free sandbox name tc0..tc9 (stale sandboxes? `fleetd sandbox down`)")


@pytest.fixture
def clone() -> Iterator[Path]:
    """The repository's HEAD, cloned into a new directory under /tmp (removed afterwards)."""
    top = Path(tempfile.mkdtemp(prefix="fleetd-clone-", dir="/tmp"))
    try:
        dest = top / "fleetd"
        _ok(_run(["git", "clone", "--quiet", str(REPO), str(dest)], timeout=120), "git clone")
        _ok(
            _run(["git", "-C", str(dest), "fetch", "--quiet", str(REPO), "HEAD"], timeout=120),
            "git fetch",
        )
        _ok(
            _run(
                ["git", "-C", str(dest), "checkout", "--quiet", "--detach", "FETCH_HEAD"],
                timeout=60,
            ),
            "git checkout",
        )
        yield dest
    finally:
        shutil.rmtree(top)
    assert host.mounts_under(top) == []


def test_sandbox_boots_and_runs_units_from_a_clone_under_tmp(clone: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FLEETD_ETCD_BIN")}
    _ok(_run([str(clone / ".ci" / "setup")], timeout=600, env=env), "the clone's .ci/setup")
    fleetd = str(clone / ".venv" / "bin" / "fleetd")
    fleetctl = str(clone / ".venv" / "bin" / "fleetctl")
    name = _free_instance()
    env["FLEETD_SANDBOX"] = name

    def in_m1(*cmd: str) -> str:
        proc = _run([fleetd, "sandbox", "exec", "m1", "--", *cmd], timeout=30, env=env)
        return proc.stdout.strip()

    try:
        _ok(_run([fleetd, "sandbox", "up", "--machines", "1"], timeout=300, env=env), "sandbox up")
        assert in_m1("systemctl", "is-active", "fleetd.service") == "active"
        # The fleetd running there is the clone's, not some other install.
        assert f"path={fleetd} " in in_m1("systemctl", "show", "-P", "ExecStart", "fleetd.service")

        unit = clone.parent / UNIT_NAME
        unit.write_text(UNIT)
        ctl_env = {**env, **Sandbox(Instance(name)).env()}
        if ctl_env.get("FLEETCTL_TOKEN"):  # made by the clone's fleetd: for the secret check
            leakcheck.secret(ctl_env["FLEETCTL_TOKEN"], "the clone's sandbox token")
        _ok(_run([fleetctl, "start", str(unit)], timeout=120, env=ctl_env), "fleetctl start")
        assert in_m1("systemctl", "is-active", UNIT_NAME) == "active"
        assert in_m1("systemctl", "show", "-P", "SubState", UNIT_NAME) == "running"
    finally:
        down = _run([fleetd, "sandbox", "down"], timeout=120, env=env)
        if down.returncode != 0:
            teardown(Instance(name))
    _ok(down, "sandbox down")
    assert not Instance(name).state_dir.exists()
