from __future__ import annotations

from pathlib import Path

import pytest

from fleetd import config
from fleetd.errors import ConfigError


def test_defaults_from_empty_file(tmp_path: Path) -> None:
    cfg = config.load(str(_write(tmp_path, "")), env={}, flags={})
    assert cfg.etcd_key_prefix == "/fleet/"
    assert cfg.agent_ttl == 30.0
    assert cfg.embedded_etcd


def test_file_env_flags_layering(tmp_path: Path) -> None:
    conf = tmp_path / "fleet.conf"
    conf.write_text(
        "# comment\n"
        "etcd_servers = http://10.0.0.1:2379,http://10.0.0.2:2379\n"
        'metadata = "region=eu,rack=a"\n'
        "agent_ttl = 10s\n"
        "capacity_memory = 4G\n"
        "capacity_cpu = 1500m\n"
        "public_ip = 10.0.0.5\n"
    )
    cfg = config.load(
        str(conf),
        env={"FLEETD_AGENT_TTL": "20", "PATH": "/bin", "FLEETD_ETCD_BIN": "/x/etcd"},
        flags={"scheduler-strategy": "spread"},
    )
    assert cfg.etcd_servers == ("http://10.0.0.1:2379", "http://10.0.0.2:2379")
    assert cfg.metadata == (("region", "eu"), ("rack", "a"))
    assert cfg.agent_ttl == 20.0
    assert cfg.capacity_memory_bytes == 4 * 1024**3
    assert cfg.capacity_cpu_millis == 1500
    assert cfg.public_ip == "10.0.0.5"
    assert cfg.scheduler_strategy == "spread"
    assert not cfg.embedded_etcd


def test_flags_win_over_env(tmp_path: Path) -> None:
    cfg = config.load(
        str(_write(tmp_path, "")), env={"FLEETD_AGENT_TTL": "20"}, flags={"agent_ttl": "5s"}
    )
    assert cfg.agent_ttl == 5.0


def test_etcd_endpoints_alias(tmp_path: Path) -> None:
    cfg = config.load(str(_write(tmp_path, "etcd_endpoints=http://127.0.0.1:2379")), env={})
    assert cfg.etcd_servers == ("http://127.0.0.1:2379",)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fleet.conf"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "env", "flags", "message"),
    [
        ("agent_ttl = soon", {}, {}, "option agent_ttl: not a duration"),
        ("agent_ttl = 0", {}, {}, "option agent_ttl: must be greater than zero"),
        ("bogus = 1", {}, {}, "unknown option 'bogus'"),
        ("just a line", {}, {}, "expected 'key = value'"),
        ("metadata = rack", {}, {}, "metadata must be key=value"),
        ("metadata = a=1,a=2", {}, {}, "given twice"),
        ("etcd_servers = 10.0.0.1:2379", {}, {}, "not an etcd URL"),
        ("public_ip = 10.0.0.300", {}, {}, "option public_ip"),
        ("scheduler_strategy = random", {}, {}, "unknown strategy 'random'"),
        ("api_listen = tcp://0.0.0.0", {}, {}, "listen address must be"),
        ("units_directory = run/units", {}, {}, "must be an absolute path"),
        ("disable_engine = maybe", {}, {}, "not a boolean"),
        ("capacity_memory = lots", {}, {}, "option capacity_memory"),
        ("", {"FLEETD_NOPE": "1"}, {}, "environment FLEETD_NOPE: unknown option"),
        ("", {}, {"token_limit": "-1"}, "flag: option token_limit: must not be negative"),
    ],
)
def test_bad_values_name_the_option(
    tmp_path: Path, text: str, env: dict[str, str], flags: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        config.load(str(_write(tmp_path, text)), env=env, flags=flags)
    assert message in str(info.value)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        config.load(str(tmp_path / "nope.conf"), env={})


def test_line_numbers_in_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"fleet.conf:3: "):
        config.load(str(_write(tmp_path, "# a\n\nagent_ttl = x\n")), env={})
