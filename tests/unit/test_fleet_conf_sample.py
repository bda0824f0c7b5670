"""fleetd/share/fleet.conf.sample documents every option of ``fleetd.config`` and parses.

Each option appears once as a commented-out ``#name = value`` line whose
comment block starts with the option's help text from ``config.OPTIONS``,
so the sample cannot drift from the code.  Uncommenting every setting gives
a file that ``config.load`` accepts.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest

from fleetd import config

SAMPLE = resources.files("fleetd.share").joinpath("fleet.conf.sample").read_text()
SETTING = re.compile(r"^#([a-z_]+) =(?: (.*))?$")


def blocks() -> dict[str, tuple[list[str], str]]:
    """option -> (its comment lines, the sample value)."""
    result: dict[str, tuple[list[str], str]] = {}
    comments: list[str] = []
    for line in SAMPLE.splitlines():
        m = SETTING.match(line)
        if m:
            assert m.group(1) not in result, f"{m.group(1)} is listed twice"
            result[m.group(1)] = (comments, m.group(2) or "")
            comments = []
        elif line.startswith("# ") and not line.startswith("# ---"):
            comments.append(line[2:])
        else:
            comments = []
    return result


def test_every_option_is_in_the_sample_and_nothing_else() -> None:
    assert set(blocks()) == {o.name for o in config.OPTIONS}


@pytest.mark.parametrize("option", config.OPTIONS, ids=lambda o: o.name)
def test_each_option_opens_with_its_help(option: config.Option) -> None:
    comments, _ = blocks()[option.name]
    assert comments and comments[0] == option.help, (option.name, comments)


def test_the_sample_as_shipped_is_the_default_configuration(tmp_path: Path) -> None:
    path = tmp_path / "fleet.conf"
    path.write_text(SAMPLE)
    assert config.load(str(path)) == config.Config()


def test_every_sample_value_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "fleet.conf"
    path.write_text("".join(f"{name} = {value}\n" for name, (_, value) in blocks().items()))
    cfg = config.load(str(path))
    assert len(cfg.etcd_servers) == 3
    assert dict(cfg.metadata) == {"disk": "ssd", "rack": "a", "cores": "4"}
    assert cfg.agent_ttl == 30.0
    assert cfg.api_listen == ("unix:///var/run/fleet.sock", "tcp://10.0.0.1:49153")
    assert cfg.capacity_memory_bytes == 8 << 30
