"""How sandbox machines see fleetd's install: read-only binds, and what is refused."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from sandboxkit import recorded
from typer.testing import CliRunner

from fleetd.errors import SandboxError
from fleetd.sandbox import install, seed
from fleetd.sandbox import state as st
from fleetd.sandbox.cli import app
from fleetd.sandbox.cluster import Sandbox
from fleetd.sandbox.install import boot_args, expose
from fleetd.sandbox.spec import SandboxSpec
from fleetd.sandbox.state import Instance

# pytest's tmp_path lives under /tmp, which every machine gets afresh.
pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="paths as a Linux sandbox machine sees them"
)


def test_a_directory_under_tmp_is_bound_at_its_own_path(tmp_path: Path) -> None:
    venv = tmp_path / "clone" / ".venv"
    venv.mkdir(parents=True)
    # The clone's bind shows its venv too; / is the overlay's lower layer already.
    clone = str(tmp_path / "clone")
    assert expose([venv, tmp_path / "clone", Path("/")]) == ((clone, clone),)


def test_a_symlink_the_machine_would_not_see_gets_its_directory_bound_there(
    tmp_path: Path,
) -> None:
    (tmp_path / "real" / "venv").mkdir(parents=True)
    (tmp_path / "rel").symlink_to("real")
    (tmp_path / "abs").symlink_to(tmp_path / "rel")
    (tmp_path / "real" / "inside").symlink_to("venv")
    binds = expose([tmp_path / "abs" / "venv", tmp_path / "abs" / "inside"])
    real, venv = str(tmp_path / "real"), str(tmp_path / "real" / "venv")
    # systemd-tmpfiles would delete a symlink recreated under /tmp, not a mount point.
    # `inside` is in no bind (only real/venv is bound), so it is bound as well.
    assert binds == (
        (real, str(tmp_path / "abs")),
        (venv, str(tmp_path / "real" / "inside")),
        (venv, venv),
        (real, str(tmp_path / "rel")),
    )


def test_symlinks_inside_a_bind_are_left_to_it(tmp_path: Path) -> None:
    (tmp_path / "clone" / "real").mkdir(parents=True)
    (tmp_path / "clone" / "link").symlink_to("real")
    clone = str(tmp_path / "clone")
    assert expose([tmp_path / "clone", tmp_path / "clone" / "link"]) == ((clone, clone),)


def test_a_symlink_loop_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(SandboxError, match="too many levels of symbolic links"):
        expose([tmp_path / "a"])


@pytest.mark.parametrize("path", ["/proc/self", "/sys/kernel"])
def test_what_every_machine_mounts_afresh_is_refused(path: str) -> None:
    with pytest.raises(SandboxError, match="which every sandbox machine mounts afresh"):
        expose([Path(path)])


def test_a_control_character_in_fleetds_path_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "a\nb"))
    with pytest.raises(SandboxError, match="control character") as caught:
        install.locate()
    assert "\n" not in str(caught.value)


def test_this_install_is_located() -> None:
    installed = install.locate()
    assert installed.fleetd == Path(sys.prefix) / "bin" / "fleetd"
    assert all(os.path.isdir(source) for source, _ in installed.binds)


def test_boot_args_are_bind_items() -> None:
    args = boot_args((("/tmp/a", "/tmp/a"), ("/tmp/a", "/tmp/l")))
    assert args == ["bind", "/tmp/a", "/tmp/a", "bind", "/tmp/a", "/tmp/l"]


def test_up_refuses_at_once_and_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(install, "needed", lambda: [Path("/proc/self")])
    inst = Instance("zq9x")
    assert not inst.state_dir.exists()
    with pytest.raises(SandboxError, match="/proc"):
        Sandbox.up(SandboxSpec(machines=1), name=inst)
    assert not inst.state_dir.exists()


def test_cli_up_refusal_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(install, "needed", lambda: [Path("/sys/kernel")])
    result = CliRunner().invoke(app, ["--name", "zq9x", "up", "--machines", "1"])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "fleetd sandbox: /sys/kernel is under /sys, which every sandbox machine mounts "
        "afresh; install fleetd in another directory"
    ]
    assert not Instance("zq9x").state_dir.exists()


@pytest.mark.parametrize(
    ("path", "word"),
    [
        ("/tmp/x/.venv/bin/fleetd", "/tmp/x/.venv/bin/fleetd"),
        ("/tmp/my clone/.venv/bin/fleetd", '"/tmp/my clone/.venv/bin/fleetd"'),
        ("/tmp/50%/$HOME/fleetd", "/tmp/50%%/$$HOME/fleetd"),
        ('/tmp/a"b\\c/fleetd', '"/tmp/a\\"b\\\\c/fleetd"'),
    ],
)
def test_fleetds_path_is_quoted_for_the_unit(path: str, word: str) -> None:
    assert seed.command(Path(path)) == word


def test_state_keeps_binds_and_links(tmp_path: Path) -> None:
    state = recorded(binds=(("/tmp/clone", "/tmp/clone"), ("/tmp/clone", "/tmp/link")))
    st.save(tmp_path, state)
    assert st.load(tmp_path) == state
