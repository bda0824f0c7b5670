"""What a sandbox should look like: machine count, etcd layout, per-machine settings (pure).

Parses the ``up`` options (``--metadata m2:rack=a,disk=ssd``,
``--capacity m3:cpu=2,memory=4G``) into a frozen ``SandboxSpec`` and
renders the per-machine fleetd config file.  Every bad value raises
``InvalidInput`` naming the option and the offending text.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from fleetd.errors import InvalidInput

MAX_MACHINES = 200
API_PORT = 49153
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
DEFAULT_SUBNET = "10.87.0.0/24"
DEFAULT_AGENT_TTL = 10.0
# --secure: where a machine keeps its certificates and tokens (security.py makes them).
PKI_DIR = "/etc/fleet/pki"
CA = f"{PKI_DIR}/ca.crt"
MACHINE_CERT = f"{PKI_DIR}/machine.crt"
MACHINE_KEY = f"{PKI_DIR}/machine.key"
ETCD_CLIENT_CERT = f"{PKI_DIR}/etcd-client.crt"
ETCD_CLIENT_KEY = f"{PKI_DIR}/etcd-client.key"
TOKENS_FILE = "/etc/fleet/api-tokens"

_MACHINE = re.compile(r"^m([1-9]\d*)$")
_META_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")
_META_VALUE = re.compile(r"^[^,=\s]*$")
_CPU = re.compile(r"^\d+(\.\d+)?m?$")
_MEMORY = re.compile(r"^\d+(\.\d+)?([KMGT]i?)?B?$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SandboxSpec:
    machines: int = 3
    etcd_members: int = 1
    agent_ttl: float = DEFAULT_AGENT_TTL
    subnet: str = ""  # empty: the first free 10.87.N.0/24, chosen by `up`
    auth: bool = True
    fleetd: bool = True
    # TLS everywhere, client certificates, etcd authentication, scoped tokens (security.py).
    secure: bool = False
    # machine name -> extra metadata pairs / capacity (keys "cpu", "memory")
    metadata: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    capacity: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.machines <= MAX_MACHINES:
            raise InvalidInput(
                f"--machines must be between 1 and {MAX_MACHINES}, got {self.machines}"
            )
        if self.etcd_members not in (1, 3):
            raise InvalidInput(f"--etcd-members must be 1 or 3, got {self.etcd_members}")
        if self.etcd_members == 3 and self.machines < 3:
            raise InvalidInput("--etcd-members 3 needs at least 3 machines (members run on m1..m3)")
        if self.secure and not self.auth:
            raise InvalidInput("--secure and --no-auth exclude each other")
        if self.agent_ttl <= 0:
            raise InvalidInput(f"--agent-ttl must be greater than zero, got {self.agent_ttl}")
        network = self.network
        if network.num_addresses < self.machines + 11:
            raise InvalidInput(f"--subnet {self.subnet} is too small for {self.machines} machines")
        for option, table in (("--metadata", self.metadata), ("--capacity", self.capacity)):
            for name in table:
                if machine_index(name) > self.machines:
                    raise InvalidInput(
                        f"{option} names {name}, but the sandbox has only m1..m{self.machines}"
                    )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f"m{i}" for i in range(1, self.machines + 1))

    @property
    def network(self) -> ipaddress.IPv4Network:
        return parse_subnet(self.subnet or DEFAULT_SUBNET)

    def bridge_ip(self) -> str:
        return str(self.network.network_address + 1)

    def machine_ip(self, name: str) -> str:
        return str(self.network.network_address + 10 + machine_index(name))

    @property
    def scheme(self) -> str:
        return "https" if self.secure else "http"

    def etcd_endpoints(self) -> tuple[str, ...]:
        if self.etcd_members == 1:
            return (f"{self.scheme}://{self.bridge_ip()}:{ETCD_CLIENT_PORT}",)
        return tuple(
            f"{self.scheme}://{self.machine_ip(name)}:{ETCD_CLIENT_PORT}" for name in self.names[:3]
        )

    def machine_metadata(self, name: str) -> tuple[tuple[str, str], ...]:
        pairs = {"hostname": name}
        pairs.update(dict(self.metadata.get(name, ())))
        return tuple(pairs.items())

    def fleet_conf(self, name: str, token_file: str) -> str:
        """The machine's /etc/fleet/fleet.conf."""
        ip = self.machine_ip(name)
        meta = ",".join(f"{k}={v}" for k, v in self.machine_metadata(name))
        lines = [
            "# written by `fleetd sandbox up`",
            f"etcd_servers = {','.join(self.etcd_endpoints())}",
            f"metadata = {meta}",
            f"public_ip = {ip}",
            f"agent_ttl = {self.agent_ttl:g}s",
            f"api_listen = unix:///var/run/fleet.sock,tcp://{ip}:{API_PORT}",
            "units_directory = /run/fleet/units",
        ]
        if self.secure:
            lines += [
                f"etcd_cafile = {CA}",
                f"etcd_certfile = {ETCD_CLIENT_CERT}",
                f"etcd_keyfile = {ETCD_CLIENT_KEY}",
                f"api_cert_file = {MACHINE_CERT}",
                f"api_key_file = {MACHINE_KEY}",
                f"api_ca_file = {CA}",
                f"api_tokens_file = {TOKENS_FILE}",
            ]
        else:
            lines.append("api_insecure_http = true")
        lines.append(f"api_token_file = {token_file}" if self.auth else "api_auth_disabled = true")
        for key, value in self.capacity.get(name, ()):
            lines.append(f"capacity_{key} = {value}")
        return "\n".join(lines) + "\n"


def parse_subnet(raw: str) -> ipaddress.IPv4Network:
    try:
        network = ipaddress.IPv4Network(raw, strict=True)
    except ValueError as exc:
        raise InvalidInput(f"--subnet must be an IPv4 network such as 10.87.0.0/24: {exc}") from exc
    if network.prefixlen > 24 or not network.is_private:
        raise InvalidInput(f"--subnet must be a private network of at least /24, got {raw}")
    return network


def machine_index(name: str) -> int:
    m = _MACHINE.match(name)
    if not m:
        raise InvalidInput(f"not a sandbox machine name: {name!r} (machines are m1, m2, ...)")
    return int(m.group(1))


def _pairs(option: str, spec: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    name, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise InvalidInput(f"{option} must look like MACHINE:key=value,..., got {spec!r}")
    machine_index(name)
    pairs: dict[str, str] = {}
    for item in rest.split(","):
        key, eq, value = item.partition("=")
        if not eq or not _META_KEY.match(key) or not _META_VALUE.match(value):
            raise InvalidInput(f"{option} {spec!r}: {item!r} is not key=value")
        if key in pairs:
            raise InvalidInput(f"{option} {spec!r}: key {key!r} given twice")
        pairs[key] = value
    return name, tuple(pairs.items())


def parse_metadata(specs: Iterable[str]) -> dict[str, tuple[tuple[str, str], ...]]:
    """``["m2:rack=a,disk=ssd"]`` -> ``{"m2": (("rack", "a"), ("disk", "ssd"))}``."""
    result: dict[str, tuple[tuple[str, str], ...]] = {}
    for spec in specs:
        name, pairs = _pairs("--metadata", spec)
        result[name] = result.get(name, ()) + pairs
    return result


def parse_capacity(specs: Iterable[str]) -> dict[str, tuple[tuple[str, str], ...]]:
    """``["m3:cpu=2,memory=4G"]`` -> ``{"m3": (("cpu", "2"), ("memory", "4G"))}``."""
    result: dict[str, tuple[tuple[str, str], ...]] = {}
    for spec in specs:
        name, pairs = _pairs("--capacity", spec)
        for key, value in pairs:
            pattern = {"cpu": _CPU, "memory": _MEMORY}.get(key)
            if pattern is None:
                raise InvalidInput(f"--capacity {spec!r}: unknown key {key!r} (use cpu, memory)")
            if not pattern.match(value):
                raise InvalidInput(f"--capacity {spec!r}: {key}={value!r} is not a valid amount")
        result[name] = result.get(name, ()) + pairs
    return result
