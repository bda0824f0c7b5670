"""vagrant/provision.sh brings up a working cluster on three real systemd machines.

The Vagrant VMs are slow here (QEMU's emulation; vagrant/test.sh brings them
up in .ci/vagrant), so the provisioning script — the code path users run on
real hosts — also runs inside sandbox machines, started
without the sandbox's own fleetd.  It is run the way the Vagrantfile runs
it, one machine after the other: m1 first without waiting (its etcd member
has no quorum yet) and generating the API token, m2 with that token in the
environment, m3 with it in a file.  Offline path: ``--venv`` reuses the
host's venv (the machines see it, through their overlay or bound in), so
nothing is downloaded inside the machines.

etcd: m1 and m2 run Debian's etcd-server (/usr/bin/etcd, 3.4.23: the host's,
which .ci/setup installs with its etcd.service masked; the machines see it
through their overlay), the default; m3 runs a copy of it given with
``--etcd-binary``, the offline path.  Debian's etcd.service is unmasked in m1
before provisioning, so that provision.sh has to mask it there.

The sandbox's own single etcd member keeps running on the bridge address;
the provisioned cluster never talks to it (every endpoint below is a
machine address).
"""

from __future__ import annotations

import hashlib
import json
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import leakcheck
import pytest

from fleetd import config
from fleetd.etcd_server import find_etcd_binary, find_etcdctl
from fleetd.registry.codec import decode_machine
from fleetd.registry.keys import Keys
from fleetd.sandbox import etcd
from fleetd.sandbox.cluster import Sandbox, teardown
from fleetd.sandbox.spec import SandboxSpec
from fleetd.sandbox.state import Instance
from fleetd.sandbox.wait import wait_for
from fleetd.unitfile import UnitFile

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
SCRIPT = str(REPO / "vagrant" / "provision.sh")
VENV = sys.prefix
METADATA = {"m1": "disk=ssd,rack=a,cores=4", "m2": "disk=hdd,rack=b,cores=2", "m3": "disk=ssd"}
FILES = (
    "/etc/fleet/fleet.conf",
    "/etc/fleet/api-token",
    "/etc/fleet/api-tokens",
    "/etc/fleet/pki/ca.crt",
    "/etc/fleet/pki/clients/fleetd.crt",
    "/etc/systemd/system/fleetd.service",
    "/etc/systemd/system/etcd-fleet.service",
    "/etc/systemd/system/fleetd.service.d/10-etcd-fleet.conf",
)


PKI = "/etc/fleet/pki"
DEBIAN_ETCD = "/usr/bin/etcd"
OFFLINE_ETCD = "/root/etcd-3.4/etcd"  # m3's copy of Debian's etcd, given with --etcd-binary


@dataclass
class Cluster:
    sandbox: Sandbox
    peers: str
    token: str
    outputs: dict[str, subprocess.CompletedProcess[str]]
    host_pki: Path | None = None

    def ip(self, name: str) -> str:
        return self.sandbox.machine(name).ip

    def endpoints(self) -> list[str]:
        return [f"https://{self.ip(n)}:2379" for n in ("m1", "m2", "m3")]

    def fetch_pki(self, into: Path) -> None:
        """The CA and etcd root's client certificate, from m1 to the host."""
        for part in ("ca.crt", "clients/root.crt", "clients/root.key"):
            target = into / part
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(self.read("m1", f"{PKI}/{part}"))
            target.chmod(0o600)
        self.host_pki = into

    @property
    def access(self) -> etcd.Access:
        """etcd as its root, as the host sees it."""
        assert self.host_pki is not None
        ca, cert, key = (
            str(self.host_pki / p) for p in ("ca.crt", "clients/root.crt", "clients/root.key")
        )
        tls = ssl.create_default_context(cafile=ca)
        tls.load_cert_chain(cert, key)
        return etcd.Access(tls, ca, cert, key, server_name="fleetd-etcd")

    def etcdctl(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        """etcdctl inside ``name`` as etcd's root (its client certificate)."""
        return self.sandbox.exec(
            name, str(find_etcdctl()), f"--endpoints=https://{self.ip(name)}:2379",
            f"--cacert={PKI}/ca.crt", f"--cert={PKI}/clients/root.crt",
            f"--key={PKI}/clients/root.key", *args,
        )  # fmt: skip

    def provision(
        self, name: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run provision.sh in ``name`` with its usual arguments plus ``args``."""
        settings = [f"{k}={v}" for k, v in (env or {}).items()]
        usual = ["--name", name, "--ip", self.ip(name), "--peers", self.peers]
        usual += ["--metadata", METADATA[name], "--venv", VENV]
        if name == "m3":
            usual += ["--etcd-binary", OFFLINE_ETCD]
        return self.sandbox.exec(name, "env", *settings, "sh", SCRIPT, *usual, *args, timeout=240)

    def active(self, name: str, unit: str) -> bool:
        return self.sandbox.exec(name, "systemctl", "is-active", "--quiet", unit).returncode == 0

    def main_pid(self, name: str, unit: str) -> str:
        out = self.sandbox.exec(name, "systemctl", "show", "-p", "MainPID", "--value", unit)
        return out.stdout.strip()

    def read(self, name: str, path: str) -> str:
        proc = self.sandbox.exec(name, "cat", path)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def fingerprint(self, name: str) -> dict[str, str]:
        """Content, mode and mtime of every file provision.sh writes."""
        proc = self.sandbox.exec(name, "stat", "-c", "%n %a %Y", *FILES)
        assert proc.returncode == 0, proc.stderr
        result = {}
        for line in proc.stdout.splitlines():
            path, rest = line.split(" ", 1)
            result[path] = rest + " " + hashlib.sha256(self.read(name, path).encode()).hexdigest()
        return result


def _free_instance() -> str:
    for digit in range(10):
        name = f"pv{digit}"
        if not Instance(name).state_dir.exists():
            return name
    raise RuntimeError("no free sandbox name pv0..pv9 (stale sandboxes? `fleetd sandbox down`)")


def _check(proc: subprocess.CompletedProcess[str], what: str) -> None:
    assert proc.returncode == 0, f"{what} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    name = _free_instance()
    try:
        sandbox = Sandbox.up(SandboxSpec(machines=3, fleetd=False, auth=False), name=name)
        peers = ",".join(f"{m}={sandbox.machine(m).ip}" for m in ("m1", "m2", "m3"))
        c = Cluster(sandbox, peers, "", {})
        # The host masks Debian's etcd.service (.ci/setup); in m1 provision.sh must do it.
        unmask = sandbox.exec("m1", "rm", "-f", "/etc/systemd/system/etcd.service")
        _check(unmask, "unmask etcd.service in m1")
        copy = [
            "sh",
            "-c",
            f"mkdir -p {Path(OFFLINE_ETCD).parent} && cp {DEBIAN_ETCD} {OFFLINE_ETCD}",
        ]
        _check(sandbox.exec("m3", *copy), "copy Debian's etcd in m3")
        c.outputs["m1"] = c.provision("m1", "--no-wait")
        _check(c.outputs["m1"], "provision m1")
        # Made by provision.sh in m1: registered for the whole run's secret check.
        c.token = leakcheck.secret(
            c.read("m1", "/etc/fleet/api-token").strip(), "provision's token"
        )
        c.fetch_pki(tmp_path_factory.mktemp("pki"))
        # The cluster's CA goes to the other machines as the token does (--pki-dir).
        for other in ("m2", "m3"):
            for part in ("ca.crt", "ca.key"):
                text = c.read("m1", f"{PKI}/{part}")
                sandbox.exec(
                    other,
                    "sh",
                    "-c",
                    f"umask 077; mkdir -p /root/pki; cat >/root/pki/{part}",
                    input=text,
                )
        # Without the token m2 must refuse before changing anything (checked in a test).
        c.outputs["m2-no-token"] = c.provision("m2")
        c.outputs["m2-conf-before"] = c.sandbox.exec("m2", "cat", "/etc/fleet/fleet.conf")
        c.outputs["m2-no-ca"] = c.provision("m2", env={"FLEET_API_TOKEN": c.token})
        c.outputs["m2"] = c.provision(
            "m2", "--pki-dir", "/root/pki", env={"FLEET_API_TOKEN": c.token}
        )
        _check(c.outputs["m2"], "provision m2")
        sandbox.exec("m3", "sh", "-c", "umask 077; cat >/root/token", input=c.token + "\n")
        c.outputs["m3"] = c.provision("m3", "--token-file", "/root/token", "--pki-dir", "/root/pki")
        _check(c.outputs["m3"], "provision m3")
        yield c
    finally:
        teardown(name)


def test_the_first_machine_does_not_wait_and_makes_the_token(cluster: Cluster) -> None:
    out = cluster.outputs["m1"].stdout
    assert "generated a new API token" in out
    assert "fleetd is starting on m1" in out
    assert len(cluster.token) == 64
    assert "fleetd is active on m2" in cluster.outputs["m2"].stdout
    assert "fleetd is active on m3" in cluster.outputs["m3"].stdout


def test_etcd_is_one_cluster_of_three_healthy_members(cluster: Cluster) -> None:
    for name, endpoint in zip(("m1", "m2", "m3"), cluster.endpoints(), strict=True):
        assert etcd.healthy(endpoint, timeout=5, access=cluster.access), endpoint
        listed = cluster.etcdctl(name, "member", "list", "-w", "json")
        assert listed.returncode == 0, listed.stderr
        members = json.loads(listed.stdout)["members"]
        assert sorted(m["name"] for m in members) == ["m1", "m2", "m3"]
        assert sorted(m["clientURLs"][0] for m in members) == sorted(cluster.endpoints())
    for name in ("m1", "m2", "m3"):
        assert cluster.active(name, "etcd-fleet.service")


def test_etcd_is_debians_maintained_one_and_its_own_service_stays_masked(
    cluster: Cluster,
) -> None:
    """Debian's etcd 3.4.23 on every member (m3's from --etcd-binary), never the bundled
    3.5.1; Debian's own etcd.service masked and not running."""
    for name, binary in (("m1", DEBIAN_ETCD), ("m2", DEBIAN_ETCD), ("m3", OFFLINE_ETCD)):
        shown = cluster.sandbox.exec(name, "systemctl", "show", "-p", "ExecStart", "etcd-fleet")
        assert f"path={binary} " in shown.stdout, shown.stdout
        status = cluster.etcdctl(name, "endpoint", "status", "-w", "json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)[0]["Status"]["version"] == "3.4.23"
        enabled = cluster.sandbox.exec(name, "systemctl", "is-enabled", "etcd.service")
        assert enabled.stdout.strip() == "masked", (name, enabled.stdout)
        assert not cluster.active(name, "etcd.service")


def test_a_member_is_not_moved_back_from_a_newer_etcd(cluster: Cluster) -> None:
    """A member set up by an older provision.sh with the bundled 3.5.1: its data cannot be
    run by 3.4, so a run that would switch it to Debian's etcd is refused, nothing changed."""
    unit = "/etc/systemd/system/etcd-fleet.service"
    original = cluster.read("m2", unit)
    bundled = str(find_etcd_binary())
    older = original.replace(f"ExecStart={DEBIAN_ETCD} ", f"ExecStart={bundled} ")
    assert older != original
    cluster.sandbox.exec("m2", "sh", "-c", f"cat >{unit}", input=older)
    try:
        before = cluster.fingerprint("m2")
        refused = cluster.provision(
            "m2", "--pki-dir", "/root/pki", env={"FLEET_API_TOKEN": cluster.token}
        )
        assert refused.returncode == 1, refused.stdout
        assert "written by etcd 3.5.1" in refused.stderr, refused.stderr
        assert "cannot go back to 3.4" in refused.stderr, refused.stderr
        assert cluster.fingerprint("m2") == before
    finally:
        cluster.sandbox.exec("m2", "sh", "-c", f"cat >{unit}", input=original)
    assert cluster.read("m2", unit) == original


def test_every_fleetd_is_active_and_registered(cluster: Cluster) -> None:
    wanted = {Keys().machine(cluster.sandbox.machine(n).machine_id) for n in ("m1", "m2", "m3")}
    registered = set(etcd.keys(cluster.endpoints(), Keys().machines, access=cluster.access))
    assert wanted <= registered
    for name in ("m1", "m2", "m3"):
        assert cluster.active(name, "fleetd.service")
        # m1 was left starting: it registered once m2's etcd member made a quorum.
        exec_start = cluster.sandbox.exec(name, "systemctl", "show", "-p", "ExecStart", "fleetd")
        assert f"path={VENV}/bin/fleetd " in exec_start.stdout
        enabled = cluster.sandbox.exec(name, "systemctl", "is-enabled", "fleetd", "etcd-fleet")
        assert enabled.stdout.split() == ["enabled", "enabled"]


def test_registered_machines_carry_their_metadata(cluster: Cluster) -> None:
    for name in ("m1", "m2", "m3"):
        key = Keys().machine(cluster.sandbox.machine(name).machine_id)
        got = cluster.etcdctl("m1", "get", "--print-value-only", key)
        assert got.returncode == 0, got.stderr
        machine = decode_machine(key, got.stdout.strip().encode())
        assert machine.public_ip == cluster.ip(name)
        expected = [("hostname", name), *(p.split("=") for p in METADATA[name].split(","))]
        assert [list(p) for p in machine.metadata] == [list(p) for p in expected]


def test_config_token_and_units_are_consistent(cluster: Cluster, tmp_path: Path) -> None:
    for name in ("m1", "m2", "m3"):
        conf = tmp_path / f"{name}.conf"
        conf.write_text(cluster.read(name, "/etc/fleet/fleet.conf"))
        cfg = config.load(str(conf))
        assert sorted(cfg.etcd_servers) == sorted(cluster.endpoints())
        assert cfg.public_ip == cluster.ip(name)
        assert dict(cfg.metadata)["hostname"] == name
        assert f"tcp://{cluster.ip(name)}:49153" in cfg.api_listen
        assert cfg.api_token_file == "/etc/fleet/api-token"
        assert cfg.api_tokens_file == "/etc/fleet/api-tokens"
        assert not cfg.api_auth_disabled and not cfg.api_insecure_http
        assert cfg.api_cert_file == f"{PKI}/machines/{name}.crt"
        assert (cfg.etcd_cafile, cfg.etcd_certfile) == (
            f"{PKI}/ca.crt",
            f"{PKI}/clients/fleetd.crt",
        )
        # One CA for the cluster: every machine's certificate verifies against m1's CA.
        verify = cluster.sandbox.exec(
            name, "openssl", "verify", "-CAfile", f"{PKI}/ca.crt", cfg.api_cert_file
        )
        assert verify.returncode == 0 and cluster.read(name, f"{PKI}/ca.crt") == cluster.read(
            "m1", f"{PKI}/ca.crt"
        ), verify.stdout + verify.stderr
        for key in (f"{PKI}/ca.key", f"{PKI}/machines/{name}.key", "/etc/fleet/api-tokens"):
            bits = cluster.sandbox.exec(name, "stat", "-c", "%a", key).stdout.strip()
            assert bits == "600", (key, bits)
        assert cluster.read(name, "/etc/fleet/api-token").strip() == cluster.token
        mode = cluster.sandbox.exec(name, "stat", "-c", "%a %U", "/etc/fleet/api-token")
        assert mode.stdout.split() == ["600", "root"]
        fleetctl = cluster.sandbox.exec(name, "readlink", "/usr/local/bin/fleetctl")
        assert fleetctl.stdout.strip() == f"{VENV}/bin/fleetctl"


def test_a_machine_without_the_token_is_refused_and_left_alone(cluster: Cluster) -> None:
    refused = cluster.outputs["m2-no-token"]
    assert refused.returncode == 1
    assert "no API token" in refused.stderr and "m1" in refused.stderr
    # The sandbox's seed config was still there afterwards: nothing was written.
    assert "written by `fleetd sandbox up`" in cluster.outputs["m2-conf-before"].stdout
    no_ca = cluster.outputs["m2-no-ca"]
    assert no_ca.returncode == 1
    assert "no cluster CA" in no_ca.stderr and "--pki-dir" in no_ca.stderr


def test_etcd_refuses_plain_http_and_clients_without_a_certificate(cluster: Cluster) -> None:
    endpoint = cluster.endpoints()[0]
    assert not etcd.healthy(endpoint.replace("https://", "http://"), timeout=3)
    assert cluster.host_pki is not None
    no_cert = etcd.Access(
        ssl.create_default_context(cafile=str(cluster.host_pki / "ca.crt")), "", "", ""
    )
    assert not etcd.healthy(endpoint, timeout=3, access=no_cert)
    # Authentication is on (etcd 3.4 has no `auth status`: with it off, any certificate
    # could write anywhere): fleetd's role is limited to the registry prefix.
    role = cluster.etcdctl("m1", "role", "get", "fleet").stdout
    assert "[/fleet/, /fleet0)" in role, role
    as_fleetd = [f"--cert={PKI}/clients/fleetd.crt", f"--key={PKI}/clients/fleetd.key"]
    outside = cluster.etcdctl("m1", *as_fleetd, "put", "/outside", "x")
    assert outside.returncode != 0 and "permission denied" in outside.stderr, outside
    inside = cluster.etcdctl("m1", *as_fleetd, "get", "--prefix", "--keys-only", "/fleet/")
    assert inside.returncode == 0, inside.stderr


def test_running_it_again_changes_nothing(cluster: Cluster) -> None:
    before = cluster.fingerprint("m2")
    pids = {u: cluster.main_pid("m2", u) for u in ("fleetd.service", "etcd-fleet.service")}
    again = cluster.provision(
        "m2", "--pki-dir", "/root/pki", env={"FLEET_API_TOKEN": cluster.token}
    )
    _check(again, "second provision of m2")
    assert "restarting" not in again.stdout
    assert cluster.fingerprint("m2") == before
    assert {u: cluster.main_pid("m2", u) for u in pids} == pids


def test_slow_machines_get_longer_timeouts_and_slower_heartbeats(cluster: Cluster) -> None:
    """--slow (what the Vagrantfile gives emulated VMs), then without it: as before."""
    dropin = "/etc/systemd/system/fleetd.service.d/20-slow.conf"
    usual = ("m3", "--token-file", "/root/token", "--pki-dir", "/root/pki")
    before = cluster.fingerprint("m3")

    def timeout() -> str:
        out = cluster.sandbox.exec(
            "m3", "systemctl", "show", "-p", "TimeoutStartUSec", "--value", "fleetd.service"
        )
        return out.stdout.strip()

    try:
        slow = cluster.provision(*usual, "--slow")
        _check(slow, "provision --slow")
        assert "waiting up to 1200s" in slow.stdout
        assert timeout() == "10min"
        conf = config.parse_file_text(cluster.read("m3", "/etc/fleet/fleet.conf"), "fleet.conf")
        settings = {k: v for _, k, v in conf}
        assert settings["etcd_request_timeout"] == "30s"
        assert settings["engine_reconcile_interval"] == "10s"
        etcd_unit = cluster.read("m3", "/etc/systemd/system/etcd-fleet.service")
        assert "--heartbeat-interval=1000" in etcd_unit and "--election-timeout=10000" in etcd_unit
        assert cluster.active("m3", "fleetd.service") and cluster.active("m3", "etcd-fleet.service")
    finally:
        again = cluster.provision(*usual)
    _check(again, "provision without --slow")
    assert timeout() == "1min"
    assert cluster.sandbox.exec("m3", "test", "-e", dropin).returncode == 1
    after = cluster.fingerprint("m3")
    assert {p: v.split(" ", 2)[2] for p, v in after.items()} == {
        p: v.split(" ", 2)[2] for p, v in before.items()
    }


BAD_INPUT = [
    (["--ip", "10.87.0.300"], "not an IPv4 address"),
    (["--ip", "192.0.2.1"], "is not an address of this machine"),
    (["--peers", "m1=10.0.0.1,m2"], "is not NAME=IP"),
    (["--peers", "m1=10.0.0.1,m1=10.0.0.2,m3=10.0.0.3"], "listed twice"),
    (["--peers", "a=10.0.0.1,b=10.0.0.2"], "needs 1, 3 or 5"),
    (["--metadata", "disk=s s d"], "may only contain"),
    (["--metadata", "rack=a,rack=b"], "given twice"),
    (["--token-file", "/etc/hostname"], "is not a token"),
    (["--token-file", "/nonexistent"], "cannot read it"),
    (["--venv", "/nonexistent"], "no bin/fleetd"),
    (["--venv-archive", "/etc/hostname"], "give one of --venv, --wheels and --venv-archive"),
    (["--api-port", "70000"], "not a TCP port"),
    (["--name", "bad name"], "use letters, digits"),
    (["--bogus"], "unknown argument: --bogus"),
    (["--pki-dir", "/nonexistent"], "no ca.crt and ca.key there"),
    (["--etcd-binary", "/nonexistent"], "not an executable file"),
    (["--etcd-binary", str(find_etcd_binary())], "3.5.0 to 3.5.2"),  # the bundled 3.5.1
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUT, ids=[m for _, m in BAD_INPUT])
def test_bad_input_is_named_and_changes_nothing(
    cluster: Cluster, args: list[str], message: str
) -> None:
    before = cluster.fingerprint("m3")
    # Later options win, so each bad one overrides the usual good value.
    proc = cluster.provision("m3", "--token-file", "/root/token", "--pki-dir", "/root/pki", *args)
    assert proc.returncode in (1, 2), proc.stdout
    assert message in proc.stderr, proc.stderr
    assert cluster.fingerprint("m3") == before


def _api(
    cluster: Cluster, name: str, method: str, path: str, body: object = None, token: str = ""
) -> tuple[int, dict[str, Any]]:
    """One request to the fleet v1 API on ``name``'s TCP address, from the host."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    url = f"https://{cluster.ip(name)}:49153/fleet/v1{path}"
    request = urllib.request.Request(url, data, headers, method=method)
    assert cluster.host_pki is not None
    tls = ssl.create_default_context(cafile=str(cluster.host_pki / "ca.crt"))
    try:
        with urllib.request.urlopen(request, timeout=10, context=tls) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _hello_runs_on(cluster: Cluster, api_on: str) -> str | None:
    ids = {cluster.sandbox.machine(n).machine_id: n for n in ("m1", "m2", "m3")}
    _, page = _api(cluster, api_on, "GET", "/state?unitName=hello.service", token=cluster.token)
    for state in page.get("states", []):
        if state.get("systemdActiveState") == "active" and state.get("machineID") in ids:
            return ids[state["machineID"]]
    return None


def test_the_api_answers_on_every_machine_with_the_cluster_token(cluster: Cluster) -> None:
    ids = {cluster.sandbox.machine(n).machine_id: cluster.ip(n) for n in ("m1", "m2", "m3")}
    for name in ("m1", "m2", "m3"):
        status, _ = _api(cluster, name, "GET", "/machines")
        assert status == 401
        status, page = _api(cluster, name, "GET", "/machines", token=cluster.token)
        assert status == 200, page
        seen = {m["id"]: m["primaryIP"] for m in page["machines"]}
        assert seen == ids
        # fleetctl inside the machine uses the unix socket, no token needed.
        proc = cluster.sandbox.exec(name, "fleetctl", "list-machines", "--no-legend")
        assert proc.returncode == 0, proc.stderr
        assert len(proc.stdout.splitlines()) == 3


def test_a_unit_submitted_on_one_machine_starts_somewhere(cluster: Cluster) -> None:
    text = (REPO / "examples" / "units" / "hello.service").read_text()
    options = [o.to_dict() for o in UnitFile.from_text(text).options]
    body = {"name": "hello.service", "desiredState": "launched", "options": options}
    status, reply = _api(cluster, "m2", "PUT", "/units/hello.service", body, cluster.token)
    assert status in (200, 201, 204), reply
    machine = wait_for(
        lambda: _hello_runs_on(cluster, "m1"), 60, "hello.service did not become active anywhere"
    )
    assert isinstance(machine, str)
    assert cluster.active(machine, "hello.service")


def test_fleetctl_places_by_the_provisioned_metadata(cluster: Cluster) -> None:
    """db.service wants disk=ssd and cores>=2: of the three machines only m1 has both."""
    unit = str(REPO / "examples" / "units" / "db.service")
    proc = cluster.sandbox.exec("m3", "fleetctl", "start", unit, timeout=90)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert cluster.active("m1", "db.service")
    for name in ("m2", "m3"):
        assert not cluster.active(name, "db.service")


def test_a_machine_that_powers_off_hands_its_units_over(cluster: Cluster) -> None:
    """The machine running hello.service shuts down: fleetd stops before the local etcd
    member and releases its lease, the two others keep etcd's quorum, the unit moves."""
    victim = _hello_runs_on(cluster, "m1")
    assert victim is not None, "hello.service should run (see the submission test)"
    survivors = [n for n in ("m1", "m2", "m3") if n != victim]
    key = Keys().machine(cluster.sandbox.machine(victim).machine_id)
    endpoints = [f"https://{cluster.ip(n)}:2379" for n in survivors]
    cluster.sandbox.poweroff(victim)
    wait_for(
        lambda: key not in etcd.keys(endpoints, Keys().machines, access=cluster.access),
        20,
        f"{victim}'s machine key is still registered after its shutdown",
    )
    for endpoint in endpoints:
        assert etcd.healthy(endpoint, timeout=5, access=cluster.access), endpoint
    moved = wait_for(
        lambda: _hello_runs_on(cluster, survivors[0]),
        60,
        f"hello.service did not move off {victim}",
    )
    assert moved in survivors
    assert cluster.active(str(moved), "hello.service")
    for name in survivors:
        assert cluster.active(name, "fleetd.service")


def test_fleetctl_driver_etcd_reaches_the_members_by_their_common_name(cluster: Cluster) -> None:
    assert cluster.host_pki is not None
    pki = cluster.host_pki
    base = [
        str(Path(sys.executable).with_name("fleetctl")), "--driver", "etcd",
        "--etcd-endpoints", ",".join(cluster.endpoints()), "--request-timeout", "5",
        "--ca-file", str(pki / "ca.crt"), "--cert-file", str(pki / "clients/root.crt"),
        "--key-file", str(pki / "clients/root.key"),
    ]  # fmt: skip
    named = subprocess.run(
        [*base, "--etcd-server-name", "fleetd-etcd", "list-machines", "--no-legend"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert named.returncode == 0, named.stderr
    assert len(named.stdout.splitlines()) >= 2
    unnamed = subprocess.run([*base, "list-machines"], capture_output=True, text=True, timeout=60)
    assert unnamed.returncode == 1
