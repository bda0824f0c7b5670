"""Cluster settings (fleetd/clustersettings.py): names, types and ranges, parsing a
command line's value, defaults, the registry value, and the engine settings they make."""

from __future__ import annotations

import math

import pytest

from fleetd import clustersettings
from fleetd.api import wire
from fleetd.clustersettings import ClusterSettings, check, parse
from fleetd.config import Config
from fleetd.engine.guard import GuardSettings
from fleetd.engine.index import Strategy
from fleetd.engine.settings import cluster_defaults, settings_from_config, with_cluster
from fleetd.errors import InvalidInput, RegistryError
from fleetd.model import GuardRecord
from fleetd.registry import codec


def test_each_setting_parses_its_values() -> None:
    assert parse("strategy", "spread") == "spread"
    assert parse("max_unavailable", " 3 ") == 3
    assert parse("guard_machines", "1") == 1
    assert parse("guard_share", "0.5") == 0.5
    assert parse("guard_share", "1") == 1.0 and isinstance(parse("guard_share", "1"), float)
    assert parse("guard_window", "12.5") == 12.5
    assert parse("guard_hold", "0") == 0.0


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("strategy", "fastest", "strategy must be binpack or spread, got 'fastest'"),
        ("max_unavailable", "0", "max_unavailable must be an integer from 1 to 10000"),
        ("max_unavailable", "1.5", "max_unavailable must be an integer"),
        ("max_unavailable", "two", "got 'two'"),
        ("guard_machines", "-1", "guard_machines must be an integer from 1"),
        ("guard_share", "1.5", "guard_share must be a number from 0 to 1, got 1.5"),
        ("guard_share", "nan", "guard_share must be a number"),
        ("guard_window", "inf", "guard_window must be a number from 0 to 86400"),
        ("guard_hold", "-3", "guard_hold must be a number from 0 to 86400"),
        ("guard_hold", "", "guard_hold must be a number"),
    ],
)
def test_a_bad_value_is_refused_saying_what_it_must_be(name: str, text: str, says: str) -> None:
    with pytest.raises(InvalidInput, match="cluster setting") as caught:
        parse(name, text)
    assert says in str(caught.value)


def test_an_unknown_name_is_refused_naming_the_known_ones() -> None:
    for bad in (lambda: parse("strategie", "spread"), lambda: check("nope", 1)):
        with pytest.raises(InvalidInput) as caught:
            bad()
        assert "unknown cluster setting" in str(caught.value)
        assert "strategy, max_unavailable, guard_machines" in str(caught.value)


def test_types_are_strict_in_values_checked_from_json() -> None:
    for name, value in [
        ("max_unavailable", True),
        ("max_unavailable", 2.0),
        ("max_unavailable", "2"),
        ("guard_share", "0.5"),
        ("guard_share", math.inf),
        ("strategy", 1),
    ]:
        with pytest.raises(InvalidInput):
            check(name, value)
    assert check("guard_share", 1) == 1.0


def test_settings_change_one_at_a_time_and_back_to_the_default() -> None:
    s = ClusterSettings().changed({"strategy": "spread", "guard_hold": 40})
    assert s.values() == {"strategy": "spread", "guard_hold": 40.0}
    s = s.changed({"strategy": None})
    assert s.values() == {"guard_hold": 40.0}
    with pytest.raises(InvalidInput):
        s.changed({"guard_hold": -1})
    with pytest.raises(InvalidInput):
        ClusterSettings(max_unavailable=0)
    defaults = {n: 0 for n in clustersettings.NAMES} | {"strategy": "binpack"}
    assert s.effective(defaults)["guard_hold"] == 40.0
    assert s.effective(defaults)["strategy"] == "binpack"


def test_the_registry_value_round_trips_and_a_bad_one_names_its_key() -> None:
    s = ClusterSettings(strategy="spread", max_unavailable=2, guard_share=0.25)
    assert codec.decode_cluster_settings("k", codec.encode_cluster_settings(s)) == s
    assert codec.decode_cluster_settings("k", b'{"v":1}') == ClusterSettings()
    # a newer fleetd's setting is ignored; the old value of maintenance still reads
    assert codec.decode_cluster_settings("k", b'{"v":1,"max_unavailable":3,"x":1}') == (
        ClusterSettings(max_unavailable=3)
    )
    for bad in (b'{"v":1,"max_unavailable":0}', b'{"v":1,"strategy":"x"}', b"[]"):
        with pytest.raises(RegistryError, match="value at k"):
            codec.decode_cluster_settings("k", bad)


def test_the_guard_record_round_trips() -> None:
    g = GuardRecord("mass loss", "why", 1.5, 20.25, ("m2", "m3"), 4)
    assert codec.decode_guard("k", codec.encode_guard(g)) == g
    with pytest.raises(RegistryError, match="value at k"):
        codec.decode_guard("k", b'{"v":1,"cause":"mass loss","until":1,"absent":[1]}')


def test_defaults_follow_the_configuration_and_set_values_override_them() -> None:
    base = settings_from_config(Config(agent_ttl=20.0, scheduler_strategy="spread"))
    assert cluster_defaults(base) == {
        "strategy": "spread",
        "max_unavailable": 1,
        "guard_machines": 2,
        "guard_share": 0.3,
        "guard_window": 20.0,
        "guard_hold": 25.0,
    }
    assert with_cluster(base, ClusterSettings()) == base
    tuned = with_cluster(base, ClusterSettings(strategy="binpack", guard_machines=5))
    assert tuned.strategy is Strategy.BINPACK
    assert tuned.guard == GuardSettings(share=0.3, machines=5, window=20.0, hold=25.0)
    assert tuned.leader_ttl == base.leader_ttl


def test_the_api_body_checks_what_the_table_says() -> None:
    """pydantic at the edge has the table's bounds: what one refuses, so does the other."""
    patch = wire.ClusterSettingsPatch.model_validate
    for s in clustersettings.SETTINGS:
        if s.kind == "choice":
            continue
        for bad in (s.low - 1, s.high + 1):
            value = int(bad) if s.kind == "int" else float(bad)
            with pytest.raises(ValueError, match=s.name):
                patch({s.name: value})
            with pytest.raises(InvalidInput):
                check(s.name, value)
        patch({s.name: int(s.low) if s.kind == "int" else s.low})
    assert patch({"strategy": None}).changes() == {"strategy": None}
    with pytest.raises(ValueError, match="unknown cluster setting 'nope'"):
        patch({"nope": 1})
    with pytest.raises(ValueError, match="max_unavailable"):
        patch({"max_unavailable": "2"})
