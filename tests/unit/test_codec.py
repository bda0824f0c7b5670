"""Registry values: JSON with a schema version, round trips and clear refusals."""

from __future__ import annotations

import json

import pytest

from fleetd.errors import RegistryError
from fleetd.model import (
    Capacity,
    DesiredState,
    Health,
    Machine,
    MachineFlags,
    Placement,
    ScheduleEntry,
    Unit,
    UnitHealth,
    UnitState,
)
from fleetd.registry import codec


def test_round_trips() -> None:
    unit = Unit(
        "a@1.service", "[Service]\nExecStart=/bin/sh -c 'echo é'\n", "f00", DesiredState.LOADED
    )
    assert codec.decode_unit("k", codec.encode_unit(unit)) == unit
    machine = Machine(
        "m1", "h", "10.0.0.1", (("rack", "a"), ("rack", "b")), Capacity(1500, 1 << 33), "1"
    )
    assert codec.decode_machine("k", codec.encode_machine(machine)) == machine
    cut_off = Machine("m2", systemd_connected=False)
    assert codec.decode_machine("k", codec.encode_machine(cut_off)) == cut_off
    entry = ScheduleEntry("m1", "a.service", "f00", DesiredState.LAUNCHED)
    assert codec.decode_schedule("m1", "a.service", "k", codec.encode_schedule(entry)) == entry
    state = UnitState("m1", "a.service", "f00", "loaded", "active", "running", 17.25)
    assert codec.decode_state("m1", "a.service", "k", codec.encode_state(state)) == state
    flags = MachineFlags(True, False, (("disk", "ssd"),))
    assert codec.decode_flags("k", codec.encode_flags(flags)) == flags
    placement = Placement("a.service", "nowhere", (("m1", "conflicts with b.service"),), 2.0)
    assert codec.decode_placement("a.service", "k", codec.encode_placement(placement)) == placement
    assert codec.decode_leader("k", codec.encode_leader("m1")) == "m1"
    assert codec.decode_version("k", codec.encode_version()) == 1


def test_values_carry_the_schema_version() -> None:
    entry = ScheduleEntry("m1", "a.service", "f00", DesiredState.LAUNCHED)
    assert json.loads(codec.encode_schedule(entry)) == {
        "v": 1,
        "hash": "f00",
        "desired": "launched",
    }


def test_unknown_fields_are_ignored_and_defaults_apply() -> None:
    data = b'{"v":1,"id":"m1","future":"field"}'
    assert codec.decode_machine("k", data) == Machine("m1")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"name":"a"}', "no schema version"),
        (b'{"v":2,"name":"a","text":"","hash":"","desired":"loaded"}', "schema version 2"),
        (b'{"v":1,"name":"a","text":"","hash":""}', "'desired' must be str"),
        (b'{"v":1,"name":"a","text":"","hash":"","desired":"running"}', "unknown desired state"),
        (b'{"v":1,"name":7,"text":"","hash":"","desired":"loaded"}', "'name' must be str"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_bad_unit_values_name_the_key_and_the_problem(data: bytes, message: str) -> None:
    with pytest.raises(RegistryError, match=message) as caught:
        codec.decode_unit("/fleet/units/a", data)
    assert "/fleet/units/a" in str(caught.value)


def test_bad_nested_values() -> None:
    with pytest.raises(RegistryError, match="'cpu_millis' must be int"):
        codec.decode_machine("k", b'{"v":1,"id":"m","capacity":{"cpu_millis":true}}')
    with pytest.raises(RegistryError, match="'metadata' must be a list"):
        codec.decode_machine("k", b'{"v":1,"id":"m","metadata":{"a":"b"}}')
    with pytest.raises(RegistryError, match="'unschedulable' must be bool"):
        codec.decode_flags("k", b'{"v":1,"unschedulable":"yes"}')


def test_unit_states_carry_health() -> None:
    state = UnitState(
        "m1", "a.service", "f00", "loaded", "active", "running", 17.25,
        Health.UNHEALTHY, "connection refused", 18.5,
    )  # fmt: skip
    data = codec.encode_state(state)
    assert json.loads(data)["health"] == "unhealthy"
    assert codec.decode_state("m1", "a.service", "k", data) == state
    assert state.unit_health == UnitHealth(Health.UNHEALTHY, "connection refused", 18.5)


def test_a_state_from_a_fleetd_without_health_checks_decodes_as_unknown() -> None:
    old = b'{"v":1,"hash":"f00","load":"loaded","active":"active","sub":"running","since":3}'
    state = codec.decode_state("m1", "a.service", "k", old)
    assert state == UnitState("m1", "a.service", "f00", "loaded", "active", "running", 3.0)
    assert (state.health, state.health_message, state.health_since) == (Health.UNKNOWN, "", 0.0)
    newer = old[:-1] + b',"health":"degraded"}'
    assert codec.decode_state("m1", "a.service", "k", newer).health is Health.UNKNOWN
    with pytest.raises(RegistryError, match="'health_msg' must be str"):
        codec.decode_state("m1", "a.service", "k", old[:-1] + b',"health_msg":1}')


def test_rollout_records_round_trip_and_bad_ones_are_refused() -> None:
    from fleetd.rollouts.record import Kind, Options, Phase, Rollout, State, Target

    record = Rollout(
        "abc",
        "web@.service",
        Kind.TEMPLATE,
        3,
        "o" * 40,
        4,
        "n" * 40,
        Options(2, 1.5, 30.0, True, 1, False),
        Phase.REVERTING,
        (
            Target("web@1.service", "o" * 40, "n" * 40, State.HEALTHY, 10.0, 12.5, ""),
            Target("web@2.service", "o" * 40, "o" * 40, State.SKIPPED, 0.0, 13.0, "not updated"),
        ),
        by="ops (10.0.0.9)",
        created=1.0,
        updated=2.0,
        message="m",
        failure="f",
        promoted=True,
        reverting=True,
        revert_version=5,
        held=(("m1", "o" * 40),),
    )
    data = codec.encode_rollout(record)
    assert codec.decode_rollout("web@.service", "k", data) == record
    obj = json.loads(data)
    obj["targets"][0][3] = "sleeping"
    with pytest.raises(RegistryError, match="k: unknown target state 'sleeping'"):
        codec.decode_rollout("web@.service", "k", json.dumps(obj).encode())
    obj["targets"][0] = ["web@1.service"]
    with pytest.raises(RegistryError, match="a target must be"):
        codec.decode_rollout("web@.service", "k", json.dumps(obj).encode())
    obj = json.loads(data)
    obj["phase"] = "dancing"
    with pytest.raises(RegistryError, match="unknown rollout phase 'dancing'"):
        codec.decode_rollout("web@.service", "k", json.dumps(obj).encode())


def test_a_unit_s_pins_round_trip_and_are_left_out_when_none() -> None:
    pinned = Unit("g.service", "[Service]\nExecStart=/bin/true\n", "new", DesiredState.LAUNCHED,
                  (("m1", "old"), ("m2", "old")))  # fmt: skip
    data = codec.encode_unit(pinned)
    assert json.loads(data)["pinned"] == [["m1", "old"], ["m2", "old"]]
    assert codec.decode_unit("k", data) == pinned
    assert pinned.hash_on("m1") == "old" and pinned.hash_on("m3") == "new"
    plain = Unit("g.service", "x", "h", DesiredState.LAUNCHED)
    assert "pinned" not in json.loads(codec.encode_unit(plain))
    with pytest.raises(RegistryError, match="'pinned' must be a list of"):
        codec.decode_unit("k", data.replace(b'"old"]', b"1]", 1))
