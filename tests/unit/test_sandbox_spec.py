"""Sandbox options: parsing --metadata/--capacity, addresses, the per-machine fleet.conf."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetd import config
from fleetd.errors import InvalidInput
from fleetd.sandbox.spec import SandboxSpec, parse_capacity, parse_metadata


def test_addresses_and_single_etcd_on_the_bridge() -> None:
    spec = SandboxSpec(machines=3)
    assert spec.names == ("m1", "m2", "m3")
    assert spec.bridge_ip() == "10.87.0.1"
    assert spec.machine_ip("m3") == "10.87.0.13"
    assert spec.etcd_endpoints() == ("http://10.87.0.1:2379",)


def test_three_etcd_members_live_on_m1_to_m3() -> None:
    spec = SandboxSpec(machines=4, etcd_members=3, subnet="10.99.0.0/24")
    assert spec.etcd_endpoints() == tuple(f"http://10.99.0.{i}:2379" for i in (11, 12, 13))


def test_fleet_conf_carries_metadata_capacity_and_token() -> None:
    spec = SandboxSpec(
        machines=3,
        agent_ttl=5,
        metadata=parse_metadata(["m2:rack=a,disk=ssd"]),
        capacity=parse_capacity(["m2:cpu=2,memory=4G"]),
    )
    conf = spec.fleet_conf("m2", "/etc/fleet/api-token").splitlines()
    assert "metadata = hostname=m2,rack=a,disk=ssd" in conf
    assert "etcd_servers = http://10.87.0.1:2379" in conf
    assert "public_ip = 10.87.0.12" in conf
    assert "agent_ttl = 5s" in conf
    assert "api_listen = unix:///var/run/fleet.sock,tcp://10.87.0.12:49153" in conf
    assert "api_token_file = /etc/fleet/api-token" in conf
    assert "api_insecure_http = true" in conf
    assert "capacity_cpu = 2" in conf and "capacity_memory = 4G" in conf
    assert not [line for line in spec.fleet_conf("m1", "/t").splitlines() if "capacity" in line]


def test_secure_is_tls_everywhere_with_tokens_per_role(tmp_path: Path) -> None:
    spec = SandboxSpec(machines=3, secure=True, etcd_members=3)
    assert spec.etcd_endpoints() == tuple(f"https://10.87.0.1{i}:2379" for i in (1, 2, 3))
    conf = spec.fleet_conf("m2", "/etc/fleet/api-token")
    path = tmp_path / "fleet.conf"
    path.write_text(conf)
    cfg = config.load(str(path))
    assert cfg.etcd_servers[0].startswith("https://")
    assert (cfg.etcd_cafile, cfg.api_ca_file) == ("/etc/fleet/pki/ca.crt",) * 2
    assert cfg.etcd_certfile == "/etc/fleet/pki/etcd-client.crt"
    assert cfg.api_cert_file == "/etc/fleet/pki/machine.crt"
    assert cfg.api_tokens_file == "/etc/fleet/api-tokens"
    assert not cfg.api_insecure_http
    with pytest.raises(InvalidInput, match="--secure and --no-auth"):
        SandboxSpec(secure=True, auth=False)


def test_no_auth_disables_the_token() -> None:
    conf = SandboxSpec(machines=1, auth=False).fleet_conf("m1", "/etc/fleet/api-token")
    assert "api_auth_disabled = true" in conf
    assert "api_token_file" not in conf


def test_metadata_may_override_the_default_hostname() -> None:
    spec = SandboxSpec(machines=1, metadata=parse_metadata(["m1:hostname=alpha"]))
    assert spec.machine_metadata("m1") == (("hostname", "alpha"),)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"machines": 0}, "--machines"),
        ({"machines": 201}, "--machines"),
        ({"etcd_members": 2}, "--etcd-members must be 1 or 3"),
        ({"machines": 2, "etcd_members": 3}, "at least 3 machines"),
        ({"agent_ttl": 0}, "--agent-ttl"),
        ({"subnet": "10.0.0.0/28"}, "at least /24"),
        ({"subnet": "8.8.8.0/24"}, "private"),
        ({"subnet": "10.0.0.1/24"}, "--subnet"),
        ({"metadata": {"m4": (("a", "b"),)}}, "only m1..m3"),
    ],
)
def test_bad_spec_is_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        SandboxSpec(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("rack=a", "MACHINE:key=value"),
        ("m2:", "MACHINE:key=value"),
        ("x2:rack=a", "not a sandbox machine name"),
        ("m2:rack", "not key=value"),
        ("m2:rack=a,rack=b", "given twice"),
        ("m2:ra ck=a", "not key=value"),
    ],
)
def test_bad_metadata_is_rejected(raw: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_metadata([raw])


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("m3:disk=2", "unknown key 'disk'"),
        ("m3:cpu=two", "not a valid amount"),
        ("m3:memory=4X", "not a valid amount"),
    ],
)
def test_bad_capacity_is_rejected(raw: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_capacity([raw])


def test_capacity_accepts_common_amounts() -> None:
    parsed = parse_capacity(["m1:cpu=500m,memory=512Mi", "m2:cpu=1.5,memory=2G"])
    assert parsed == {
        "m1": (("cpu", "500m"), ("memory", "512Mi")),
        "m2": (("cpu", "1.5"), ("memory", "2G")),
    }
