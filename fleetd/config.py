"""fleetd configuration: defaults < file < ``FLEETD_*`` environment < command-line flags.

The file uses fleet's format: one ``key = value`` per line, ``#`` comments,
optional quotes around the value.  Every option is declared once in
``OPTIONS`` (name, parser, help); a bad value raises ConfigError naming the
option and where it came from.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetd.clustersettings import STRATEGIES
from fleetd.constraints import parse_bool
from fleetd.errors import ConfigError, InvalidInput
from fleetd.maintenance.window import parse_window
from fleetd.requirements import parse_cpu, parse_memory

DEFAULT_CONFIG_FILE = "/etc/fleet/fleet.conf"


@dataclass(frozen=True, slots=True)
class Config:
    etcd_servers: tuple[str, ...] = ()
    etcd_key_prefix: str = "/fleet/"
    etcd_cafile: str = ""
    etcd_certfile: str = ""
    etcd_keyfile: str = ""
    etcd_server_name: str = ""
    etcd_username: str = ""
    etcd_password: str = ""
    etcd_request_timeout: float = 3.0
    metadata: tuple[tuple[str, str], ...] = ()
    public_ip: str = ""
    agent_ttl: float = 30.0
    engine_reconcile_interval: float = 2.0
    start_first_timeout: float = 300.0
    units_directory: str = "/run/fleet/units"
    disable_engine: bool = False
    token_limit: int = 100
    capacity_cpu_millis: int | None = None
    capacity_memory_bytes: int | None = None
    reserved_cpu_millis: int = 0
    reserved_memory_bytes: int = 0
    scheduler_strategy: str = "binpack"
    default_cpu_reservation_millis: int = 0
    default_memory_reservation_bytes: int = 0
    api_listen: tuple[str, ...] = ("unix:///var/run/fleet.sock",)
    api_token_file: str = ""
    api_tokens_file: str = ""
    api_cert_file: str = ""
    api_key_file: str = ""
    api_client_ca_file: str = ""
    api_ca_file: str = ""
    api_insecure_http: bool = False
    api_auth_disabled: bool = False
    state_dir: str = "/var/lib/fleetd"
    embedded_etcd_listen: str = "127.0.0.1:2379"
    reboot_required_file: str = "/run/reboot-required"
    maintenance_window: str = ""
    verbose: bool = False

    @property
    def embedded_etcd(self) -> bool:
        """No etcd configured: fleetd runs a single-member etcd itself."""
        return not self.etcd_servers


# --- value parsers: each takes the raw string and returns the field value ---


def _str(raw: str) -> str:
    return raw


def _bool(raw: str) -> bool:
    word = raw.strip()
    return parse_bool(word, "value") if word else False


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(raw: str) -> float:
    """``30``, ``30s``, ``500ms``, ``2m`` -> seconds."""
    m = _DURATION.match(raw)
    if not m:
        raise ValueError(f"not a duration: {raw!r} (e.g. 30s, 500ms, 2m)")
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)]


def _positive_duration(raw: str) -> float:
    value = parse_duration(raw)
    if value <= 0:
        raise ValueError(f"must be greater than zero: {raw!r}")
    return value


def _list(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _endpoints(raw: str) -> tuple[str, ...]:
    items = _list(raw)
    for item in items:
        if not re.match(r"^(https?|unix)://[^\s]+$", item):
            raise ValueError(f"not an etcd URL: {item!r} (e.g. http://10.0.0.1:2379)")
    return items


_META_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")


def parse_metadata(raw: str) -> tuple[tuple[str, str], ...]:
    """``k=v,k2=v2`` -> ordered pairs; keys are unique."""
    pairs: dict[str, str] = {}
    for item in _list(raw):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ValueError(f"metadata must be key=value pairs, got {item!r}")
        if not _META_KEY.match(key):
            raise ValueError(f"metadata key {key!r} may only contain letters, digits, _ . -")
        if key in pairs:
            raise ValueError(f"metadata key {key!r} given twice")
        pairs[key] = value
    return tuple(pairs.items())


def _ip(raw: str) -> str:
    if raw == "":
        return ""
    return str(ipaddress.ip_address(raw.strip()))


def _prefix(raw: str) -> str:
    if not raw.startswith("/"):
        raise ValueError(f"must start with '/': {raw!r}")
    return raw if raw.endswith("/") else raw + "/"


def _int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError(f"must not be negative: {raw!r}")
    return value


def _strategy(raw: str) -> str:
    if raw not in STRATEGIES:
        raise ValueError(f"unknown strategy {raw!r} (choose {' or '.join(STRATEGIES)})")
    return raw


def _listen(raw: str) -> tuple[str, ...]:
    items = _list(raw)
    for item in items:
        if item.startswith("unix://") and len(item) > len("unix://"):
            continue
        m = re.match(r"^tcp://([^\s]+):(\d+)$", item)
        if not m or not 0 < int(m.group(2)) < 65536:
            raise ValueError(f"listen address must be unix:///path or tcp://host:port: {item!r}")
    return items


def _absolute(raw: str) -> str:
    if raw and not raw.startswith("/"):
        raise ValueError(f"must be an absolute path: {raw!r}")
    return raw


def _window(raw: str) -> str:
    if not raw.strip():
        return ""
    try:
        return str(parse_window(raw))
    except InvalidInput as exc:
        raise ValueError(str(exc)) from None


def _cpu(raw: str) -> int:
    return parse_cpu(raw)


def _memory(raw: str) -> int:
    return parse_memory(raw)


@dataclass(frozen=True, slots=True)
class Option:
    name: str
    parse: Callable[[str], Any]
    help: str
    field: str = ""

    @property
    def target(self) -> str:
        return self.field or self.name


OPTIONS: tuple[Option, ...] = (
    Option("etcd_servers", _endpoints, "etcd client URLs, comma separated; empty = embedded etcd"),
    Option("etcd_key_prefix", _prefix, "prefix of every registry key"),
    Option("etcd_cafile", _absolute, "CA file for etcd TLS"),
    Option("etcd_certfile", _absolute, "client certificate for etcd TLS"),
    Option("etcd_keyfile", _absolute, "client key for etcd TLS"),
    Option("etcd_server_name", _str, "name every etcd member's certificate carries"),
    Option("etcd_username", _str, "etcd user name"),
    Option("etcd_password", _str, "etcd password"),
    Option("etcd_request_timeout", _positive_duration, "timeout of one etcd request"),
    Option("metadata", parse_metadata, "machine metadata, k=v,k2=v2"),
    Option(
        "public_ip",
        _ip,
        "IP address other machines reach this one on; empty = the default route's interface's",
    ),
    Option("agent_ttl", _positive_duration, "machine lease TTL (e.g. 30s)"),
    Option("engine_reconcile_interval", _positive_duration, "engine safety-pass interval"),
    Option(
        "start_first_timeout",
        _positive_duration,
        "deadline of a start-first move: past it a maintenance draining its machine stops",
    ),
    Option("units_directory", _absolute, "where the agent writes unit files"),
    Option("disable_engine", _bool, "never become the engine leader"),
    Option("token_limit", _int, "page size of API listings"),
    Option(
        "capacity_cpu",
        _cpu,
        "CPU capacity override (cores or millicores); none = the host's",
        "capacity_cpu_millis",
    ),
    Option(
        "capacity_memory",
        _memory,
        "memory capacity override (e.g. 4G); none = the host's",
        "capacity_memory_bytes",
    ),
    Option("reserved_cpu", _cpu, "CPU kept for the host", "reserved_cpu_millis"),
    Option("reserved_memory", _memory, "memory kept for the host", "reserved_memory_bytes"),
    Option("scheduler_strategy", _strategy, "binpack or spread"),
    Option(
        "default_cpu_reservation",
        _cpu,
        "CPU reserved by units that say nothing",
        "default_cpu_reservation_millis",
    ),
    Option(
        "default_memory_reservation",
        _memory,
        "memory reserved by units that say nothing",
        "default_memory_reservation_bytes",
    ),
    Option("api_listen", _listen, "API listen addresses: unix:///path, tcp://host:port"),
    Option("api_token_file", _absolute, "file holding one API bearer token (admin, TCP)"),
    Option("api_tokens_file", _absolute, "file of API tokens, one a line: NAME ROLE SECRET"),
    Option("api_cert_file", _absolute, "certificate of the API's HTTPS listener (PEM)"),
    Option("api_key_file", _absolute, "private key of api_cert_file (PEM)"),
    Option("api_client_ca_file", _absolute, "CA whose client certificates the API requires"),
    Option("api_ca_file", _absolute, "CA of the other machines' API certificates"),
    Option("api_insecure_http", _bool, "serve TCP as plain HTTP (warned at every start)"),
    Option("api_auth_disabled", _bool, "serve TCP without a token (warned at start)"),
    Option("state_dir", _absolute, "fleetd state (embedded etcd data)"),
    Option("embedded_etcd_listen", _str, "host:port of the embedded etcd"),
    Option(
        "reboot_required_file",
        _absolute,
        "file whose presence makes the machine ask for a reboot (empty: never)",
    ),
    Option(
        "maintenance_window",
        _window,
        "when its reboot requests may be served, e.g. 'Sun 03:00 2h' (empty: any time)",
    ),
    Option("verbose", _bool, "debug logging"),
)
_BY_NAME = {opt.name: opt for opt in OPTIONS}
_ALIASES = {"etcd_endpoints": "etcd_servers"}


def _option(name: str, source: str) -> Option:
    name = name.strip()
    key = name.lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    opt = _BY_NAME.get(key)
    if opt is None:
        raise ConfigError(f"{source}: unknown option {name!r}")
    return opt


def parse_file_text(text: str, source: str) -> list[tuple[str, str, str]]:
    """fleet.conf lines -> (``file:line``, option name, raw value); unknown keys are errors."""
    raw: list[tuple[str, str, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        key, sep, value = stripped.partition("=")
        if not sep:
            raise ConfigError(f"{source}:{number}: expected 'key = value', got {stripped!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        where = f"{source}:{number}"
        raw.append((where, _option(key, where).name, value))
    return raw


def load(
    path: str | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, str] | None = None,
) -> Config:
    """Build the configuration; ``path=None`` reads the default file only if it exists."""
    layers: list[tuple[str, str, str]] = []
    file = Path(path or DEFAULT_CONFIG_FILE)
    if path is not None or file.exists():
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config file {file}: {exc.strerror}") from exc
        layers.extend(parse_file_text(text, str(file)))
    for key, value in (env or {}).items():
        if key.startswith("FLEETD_") and key != "FLEETD_ETCD_BIN":
            where = f"environment {key}"
            layers.append((where, _option(key[len("FLEETD_") :], where).name, value))
    for key, value in (flags or {}).items():
        layers.append(("flag", _option(key, f"flag --{key}").name, value))

    values: dict[str, Any] = {}
    for source, name, text in layers:
        opt = _BY_NAME[name]
        try:
            values[opt.target] = opt.parse(text)
        except (ValueError, InvalidInput) as exc:
            raise ConfigError(f"{source}: option {name}: {exc}") from exc
    return dataclasses.replace(Config(), **values)
