"""vagrant/Vagrantfile: Ruby syntax (``ruby -c``) and the cluster it describes.

Vagrant itself is too slow for a unit test (vagrant/test.sh, run by
.ci/vagrant, brings the cluster up for real), so the Vagrantfile is also
evaluated by Ruby against a small recorder standing in for Vagrant's configuration DSL
(``Vagrant.configure`` and every ``config.*`` call are recorded and dumped
as JSON).  The tests then check what Vagrant would build: the VMs, their
addresses and providers, and that every provisioning argument is one that
provision.sh accepts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fleetd.pki import Outcome, Pki

REPO = Path(__file__).resolve().parents[2]
VAGRANT_DIR = REPO / "vagrant"
RUBY = shutil.which("ruby")
needs_ruby = pytest.mark.skipif(
    RUBY is None, reason="ruby is not installed (.ci/setup installs it)"
)

# Records every call on ``config`` (and on the objects blocks receive) as
# {"name", "args", "kw", "block"}; a bare attribute read (config.vm) is a child.
RECORDER = r"""
require "json"

class Recorder
  def initialize
    @calls = []
    @children = {}
  end

  def method_missing(name, *args, **kw, &blk)
    if args.empty? && kw.empty? && blk.nil? && !name.to_s.end_with?("=")
      return @children[name] ||= Recorder.new
    end
    child = nil
    if blk
      child = Recorder.new
      blk.call(child)
    end
    @calls << { "name" => name.to_s, "args" => args, "kw" => kw, "block" => child }
    nil
  end

  def respond_to_missing?(*)
    true
  end

  def to_json(*options)
    { "calls" => @calls, "children" => @children }.to_json(*options)
  end
end

module Vagrant
  def self.configure(version)
    raise "unexpected configuration version #{version}" unless version == "2"
    @root = Recorder.new
    yield @root
  end

  def self.root
    @root
  end
end

load ARGV.fetch(0)
puts JSON.generate(Vagrant.root)
"""


@needs_ruby
def test_ruby_syntax_check_passes() -> None:
    assert RUBY is not None
    proc = subprocess.run(
        [RUBY, "-c", str(VAGRANT_DIR / "Vagrantfile")], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "Syntax OK"


def evaluate(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the Vagrantfile under the recorder, from ``tmp_path`` (where it writes its token)."""
    assert RUBY is not None
    shutil.copy(VAGRANT_DIR / "Vagrantfile", tmp_path / "Vagrantfile")
    recorder = tmp_path / "recorder.rb"
    recorder.write_text(RECORDER)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    return subprocess.run(
        [RUBY, str(recorder), str(tmp_path / "Vagrantfile")],
        capture_output=True,
        text=True,
        env={**environ, **env},
        cwd=tmp_path,
    )


def configure(tmp_path: Path, **env: str) -> dict[str, Any]:
    proc = evaluate(tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def calls(node: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [c for c in node["calls"] if c["name"] == name]


def only(node: dict[str, Any], name: str) -> dict[str, Any]:
    (call,) = calls(node, name)
    return call


def machines(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """VM name -> the recorder of its ``define`` block."""
    return {c["args"][0]: c["block"] for c in calls(config["children"]["vm"], "define")}


def provision_args(vm: dict[str, Any]) -> list[str]:
    call = only(vm["children"]["vm"], "provision")
    assert call["args"] == ["fleetd"]
    assert call["kw"]["type"] == "shell" and call["kw"]["path"] == "provision.sh"
    args: list[str] = call["kw"]["args"]
    return args


def options(args: list[str]) -> dict[str, str]:
    result, rest = {}, list(args)
    while rest:
        flag = rest.pop(0)
        result[flag] = "" if flag in ("--no-wait", "--slow") else rest.pop(0)
    return result


@needs_ruby
def test_default_cluster_is_three_debian_vms_on_the_private_network(tmp_path: Path) -> None:
    config = configure(tmp_path)
    vm = config["children"]["vm"]
    assert only(vm, "box=")["args"] == ["debian/bookworm64"]
    synced = only(vm, "synced_folder")
    assert synced["args"] == ["..", "/vagrant"] and synced["kw"]["type"] == "rsync"
    assert ".venv/" in synced["kw"]["rsync__exclude"]
    vms = machines(config)
    assert list(vms) == ["node1", "node2", "node3"]
    for index, (name, node) in enumerate(vms.items(), 1):
        inner = node["children"]["vm"]
        assert only(inner, "hostname=")["args"] == [name]
        network = only(inner, "network")
        assert network["args"] == ["private_network"]
        assert network["kw"] == {"ip": f"192.168.56.{10 + index}"}
        providers = {c["args"][0]: c["block"] for c in calls(inner, "provider")}
        assert set(providers) == {"virtualbox", "libvirt"}
        for provider in providers.values():
            assert only(provider, "memory=")["args"] == [1024]
            assert only(provider, "cpus=")["args"] == [2]
    assert (tmp_path / ".api-token").stat().st_mode & 0o777 == 0o600
    assert re.fullmatch(r"[0-9a-f]{64}\n", (tmp_path / ".api-token").read_text())
    # The cluster's CA, made once on the host; fleetd pki takes it as its own.
    pki = tmp_path / ".pki"
    assert (pki / "ca.key").stat().st_mode & 0o777 == 0o600
    assert Pki(pki).init_ca().outcome is Outcome.KEPT
    before = (pki / "ca.crt").read_bytes()
    configure(tmp_path)
    assert (pki / "ca.crt").read_bytes() == before


@needs_ruby
def test_provisioning_forms_one_etcd_cluster_and_waits_once_it_can(tmp_path: Path) -> None:
    vms = machines(configure(tmp_path))
    peers = "node1=192.168.56.11,node2=192.168.56.12,node3=192.168.56.13"
    metadata = set()
    for index, (name, node) in enumerate(vms.items(), 1):
        opts = options(provision_args(node))
        assert opts["--name"] == name
        assert opts["--ip"] == f"192.168.56.{10 + index}"
        assert opts["--peers"] == peers
        assert opts["--token-file"] == "/vagrant/vagrant/.api-token"
        assert opts["--pki-dir"] == "/vagrant/vagrant/.pki"
        assert opts["--source"] == "/vagrant"
        # node1's etcd has no quorum until node2 is up: only it must not wait.
        assert ("--no-wait" in opts) == (index == 1)
        metadata.add(opts["--metadata"])
    # The metadata the examples' constraints are written for (see examples/units/db.service).
    assert metadata == {
        "disk=ssd,rack=a,cores=4",
        "disk=hdd,rack=b,cores=2",
        "disk=ssd,rack=b,cores=1",
    }


@needs_ruby
def test_every_provisioning_option_is_one_provision_sh_accepts(tmp_path: Path) -> None:
    script = (VAGRANT_DIR / "provision.sh").read_text()
    accepted = set(re.findall(r"^\s+(--[a-z-]+)\)", script, re.MULTILINE))
    accepted |= set(re.findall(r"^\s+(--[a-z-]+) \|", script, re.MULTILINE))
    assert {"--name", "--ip", "--peers", "--no-wait"} <= accepted
    for node in machines(configure(tmp_path, FLEET_NODES="5")).values():
        for flag in options(provision_args(node)):
            assert flag in accepted, flag


@needs_ruby
def test_count_and_memory_come_from_the_environment(tmp_path: Path) -> None:
    vms = machines(configure(tmp_path, FLEET_NODES="5", FLEET_MEMORY="2048", FLEET_CPUS="1"))
    assert list(vms) == [f"node{i}" for i in range(1, 6)]
    for node in vms.values():
        inner = node["children"]["vm"]
        vbox = next(c["block"] for c in calls(inner, "provider") if c["args"] == ["virtualbox"])
        assert only(vbox, "memory=")["args"] == [2048]
        assert only(vbox, "cpus=")["args"] == [1]
    # etcd stays on the first three; node4 and node5 only use it.
    opts = options(provision_args(vms["node5"]))
    assert opts["--peers"] == "node1=192.168.56.11,node2=192.168.56.12,node3=192.168.56.13"
    assert opts["--ip"] == "192.168.56.15" and "--no-wait" not in opts
    assert opts["--metadata"] == "disk=hdd,rack=c,cores=2"


@needs_ruby
def test_the_offline_setup_emulates_and_installs_from_the_wheelhouse(tmp_path: Path) -> None:
    """What vagrant/test.sh runs: its own box, QEMU's emulation, vagrant/.wheelhouse."""
    default = machines(configure(tmp_path))["node1"]
    libvirt = next(
        c["block"] for c in calls(default["children"]["vm"], "provider") if c["args"] == ["libvirt"]
    )
    assert only(libvirt, "driver=")["args"] == ["kvm"] and not calls(libvirt, "cpu_model=")
    assert not {"--wheels", "--slow"} & set(options(provision_args(default)))
    (tmp_path / ".wheelhouse").mkdir()
    config = configure(tmp_path, FLEET_BOX="fleetd/bookworm", FLEET_LIBVIRT_DRIVER="qemu")
    assert only(config["children"]["vm"], "box=")["args"] == ["fleetd/bookworm"]
    assert only(config["children"]["vm"], "boot_timeout=")["args"] == [1800]
    for node in machines(config).values():
        inner = node["children"]["vm"]
        libvirt = next(c["block"] for c in calls(inner, "provider") if c["args"] == ["libvirt"])
        assert only(libvirt, "driver=")["args"] == ["qemu"]
        assert only(libvirt, "cpu_model=")["args"] == ["qemu64"]
        assert only(libvirt, "graphics_type=")["args"] == ["none"]
        opts = options(provision_args(node))
        assert opts["--wheels"] == "/vagrant/vagrant/.wheelhouse"
        assert "--slow" in opts  # an emulated CPU: longer timeouts, slower etcd heartbeats


@needs_ruby
def test_a_venv_archive_beside_it_is_installed_rather_than_the_wheelhouse(tmp_path: Path) -> None:
    """What vagrant/test.sh makes: a venv built on the host, nothing compiled in the VMs."""
    (tmp_path / ".wheelhouse").mkdir()
    (tmp_path / ".fleetd-venv.tar.gz").write_bytes(b"")
    for node in machines(configure(tmp_path)).values():
        opts = options(provision_args(node))
        assert opts["--venv-archive"] == "/vagrant/vagrant/.fleetd-venv.tar.gz"
        assert "--wheels" not in opts


@needs_ruby
def test_an_etcd_binary_beside_it_is_what_the_peers_run(tmp_path: Path) -> None:
    """Offline: vagrant/.etcd/etcd (a copy of Debian's /usr/bin/etcd) instead of apt."""
    assert "--etcd-binary" not in options(provision_args(machines(configure(tmp_path))["node1"]))
    (tmp_path / ".etcd").mkdir()
    (tmp_path / ".etcd" / "etcd").write_text("")
    for node in machines(configure(tmp_path)).values():
        assert options(provision_args(node))["--etcd-binary"] == "/vagrant/vagrant/.etcd/etcd"


@needs_ruby
def test_fewer_than_three_vms_share_one_etcd_member(tmp_path: Path) -> None:
    vms = machines(configure(tmp_path, FLEET_NODES="2", FLEET_SUBNET="10.20.30"))
    for node in vms.values():
        opts = options(provision_args(node))
        assert opts["--peers"] == "node1=10.20.30.11"
        assert "--no-wait" not in opts  # a single member has its quorum at once


@needs_ruby
@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FLEET_NODES": "0"}, "FLEET_NODES=0: must be a whole number from 1 to 9"),
        ({"FLEET_NODES": "three"}, "FLEET_NODES=three"),
        ({"FLEET_MEMORY": "100"}, "FLEET_MEMORY=100"),
        ({"FLEET_SUBNET": "192.168.300"}, "FLEET_SUBNET=192.168.300"),
        ({"FLEET_SUBNET": "192.168.56.0/24"}, "give the first three octets"),
        ({"FLEET_LIBVIRT_DRIVER": "xen"}, "FLEET_LIBVIRT_DRIVER=xen: use kvm or qemu"),
    ],
)
def test_bad_settings_are_refused_by_name(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    proc = evaluate(tmp_path, **env)
    assert proc.returncode != 0
    assert message in proc.stderr


def test_the_readme_names_only_real_commands_options_and_settings() -> None:
    from typer.main import get_command

    from fleetd.cli.main import app

    readme = (VAGRANT_DIR / "README.md").read_text()
    script = (VAGRANT_DIR / "provision.sh").read_text()
    vagrantfile = (VAGRANT_DIR / "Vagrantfile").read_text()
    test_sh = (VAGRANT_DIR / "test.sh").read_text()
    commands = set(get_command(app).commands)  # type: ignore[attr-defined]
    code = "\n".join(re.findall(r"```sh\n(.*?)```", readme, re.DOTALL))
    code += "\n" + "\n".join(re.findall(r"`([^`\n]+)`", readme))
    used = set(re.findall(r"fleetctl ([a-z][a-z-]+)", code))
    assert used and used <= commands, used - commands
    flags, continued = [], False
    for line in code.splitlines():
        if "provision.sh" in line or continued:
            flags += re.findall(r"(?<![\w-])(--[a-z-]+)", line.split("provision.sh")[-1])
        continued = ("provision.sh" in line or continued) and line.endswith("\\")
    assert {"--name", "--peers", "--token-file", "--help"} <= set(flags)
    for flag in flags:
        assert f"{flag})" in script or f"{flag} |" in script, flag
    for setting in set(re.findall(r"\b(FLEET_[A-Z_]+)\b", readme)):
        assert setting in vagrantfile or setting in script or setting in test_sh, setting


@pytest.mark.parametrize("name", ["provision.sh", "test.sh", "build-box.sh"])
def test_the_scripts_are_posix_sh(name: str) -> None:
    """dash (Debian's /bin/sh) parses them; shellcheck, where installed, finds nothing."""
    script = str(VAGRANT_DIR / name)
    proc = subprocess.run(["dash", "-n", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed; dash -n passed")
    proc = subprocess.run([shellcheck, "-s", "sh", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
