from __future__ import annotations

from typing import Any

import pytest

from fleetd.errors import InvalidInput, InvalidRequirements, InvalidUnitFile, InvalidUnitName
from fleetd.requirements import (
    MetadataCondition,
    MetadataOp,
    Requirements,
    ReservationDefaults,
    format_cpu,
    format_memory,
    glob_matches,
    metadata_matches,
    parse_cpu,
    parse_memory,
    parse_metadata_condition,
    parse_requirements,
    read_requirements,
)
from fleetd.unitcheck import parse_unit
from fleetd.unitfile import UnitFile, UnitName

MID = "0123456789abcdef0123456789abcdef"
GiB = 1024**3
MiB = 1024**2


def reqs(fleet: str, name: str = "web@1.service", extra: str = "", **kw: Any) -> Requirements:
    got, warnings = read(fleet, name, extra, **kw)
    assert warnings == ()
    return got


def read(
    fleet: str, name: str = "web@1.service", extra: str = "", **kw: Any
) -> tuple[Requirements, tuple[str, ...]]:
    unit = UnitFile.from_text(f"{extra}\n[X-Fleet]\n{fleet}\n")
    got, warnings = read_requirements(unit, UnitName.parse(name), **kw)
    assert parse_requirements(unit, UnitName.parse(name), **kw) == got
    return got, warnings


def cond(key: str, op: str, value: str) -> MetadataCondition:
    return MetadataCondition(key, MetadataOp(op), value)


# --- every key, accepted ----------------------------------------------------------------------

ACCEPTED: list[tuple[str, str, dict[str, Any]]] = [
    ("nothing", "", {}),
    ("MachineID full", f"MachineID={MID}", {"machine_id": MID}),
    ("MachineID prefix", "MachineID=0123abcd", {"machine_id": "0123abcd"}),
    ("MachineID upper-case", "MachineID=0123ABCD", {"machine_id": "0123abcd"}),
    ("MachineID quoted", 'MachineID="0123abcd"', {"machine_id": "0123abcd"}),
    ("MachineID same twice", "MachineID=0123abcd\nMachineID=0123abcd", {"machine_id": "0123abcd"}),
    ("MachineOf", "MachineOf=db.service", {"machine_of": ("db.service",)}),
    (
        "MachineOf several",
        'MachineOf="db.service" "cache.service"\nMachineOf=log.service',
        {"machine_of": ("db.service", "cache.service", "log.service")},
    ),
    (
        "MachineOf with specifiers",
        "MachineOf=%p-data@%i.service",
        {"machine_of": ("web-data@1.service",)},
    ),
    ("MachineMetadata =", "MachineMetadata=rack=a", {"metadata": (cond("rack", "=", "a"),)}),
    ("MachineMetadata !=", "MachineMetadata=rack!=a", {"metadata": (cond("rack", "!=", "a"),)}),
    ("MachineMetadata >=", "MachineMetadata=cores>=4", {"metadata": (cond("cores", ">=", "4"),)}),
    ("MachineMetadata <=", "MachineMetadata=cores<=4", {"metadata": (cond("cores", "<=", "4"),)}),
    ("MachineMetadata >", "MachineMetadata=ram>2.5", {"metadata": (cond("ram", ">", "2.5"),)}),
    ("MachineMetadata <", "MachineMetadata=load<-1", {"metadata": (cond("load", "<", "-1"),)}),
    (
        "MachineMetadata several lines and words",
        'MachineMetadata="region=us east" rack=1\nMachineMetadata=disk=ssd',
        {
            "metadata": (
                cond("region", "=", "us east"),
                cond("rack", "=", "1"),
                cond("disk", "=", "ssd"),
            )
        },
    ),
    (
        "MachineMetadata value with '='",
        "MachineMetadata=opts=a=b",
        {"metadata": (cond("opts", "=", "a=b"),)},
    ),
    (
        "MachineMetadata with specifier",
        "MachineMetadata=role=%p",
        {"metadata": (cond("role", "=", "web"),)},
    ),
    ("Conflicts name", "Conflicts=db.service", {"conflicts": ("db.service",)}),
    (
        "Conflicts globs",
        'Conflicts="web@*.service" "cache-?.service"',
        {"conflicts": ("web@*.service", "cache-?.service")},
    ),
    ("Conflicts with specifier", "Conflicts=%p@*.service", {"conflicts": ("web@*.service",)}),
    ("Conflicts class", "Conflicts=db[0-9].service", {"conflicts": ("db[0-9].service",)}),
    ("Global true", "Global=true", {"global_": True}),
    ("Global yes", "Global=yes", {"global_": True}),
    ("Global on", "Global=on", {"global_": True}),
    ("Global 1", "Global=1", {"global_": True}),
    ("Global TRUE", "Global=TRUE", {"global_": True}),
    ("Global false", "Global=false", {}),
    ("Global no", "Global=no", {}),
    ("Global last wins", "Global=true\nGlobal=false", {}),
    ("Global reset", "Global=true\nGlobal=", {}),
    ("Replaces", "Replaces=old.service", {"replaces": ("old.service",)}),
    ("Replaces glob", "Replaces=old-*.service", {"replaces": ("old-*.service",)}),
    ("CPUReservation cores", "CPUReservation=2", {"cpu_millis": 2000}),
    ("CPUReservation fraction", "CPUReservation=0.5", {"cpu_millis": 500}),
    ("CPUReservation millis", "CPUReservation=250m", {"cpu_millis": 250}),
    ("CPUReservation zero", "CPUReservation=0", {}),
    ("CPUReservation last wins", "CPUReservation=1\nCPUReservation=3", {"cpu_millis": 3000}),
    ("MemoryReservation bytes", "MemoryReservation=1048576", {"memory_bytes": MiB}),
    ("MemoryReservation K", "MemoryReservation=512K", {"memory_bytes": 512 * 1024}),
    ("MemoryReservation M", "MemoryReservation=512M", {"memory_bytes": 512 * MiB}),
    ("MemoryReservation G", "MemoryReservation=2G", {"memory_bytes": 2 * GiB}),
    ("MemoryReservation T", "MemoryReservation=1T", {"memory_bytes": 1024 * GiB}),
    ("MemoryReservation 1.5G", "MemoryReservation=1.5G", {"memory_bytes": 3 * GiB // 2}),
    ("MemoryReservation infinity", "MemoryReservation=infinity", {}),
    ("AtMostOnce", "AtMostOnce=true", {"at_most_once": True}),
    ("AtMostOnce false", "AtMostOnce=no", {}),
    # allowed combinations
    (
        "MachineID with metadata",
        f"MachineID={MID}\nMachineMetadata=rack=a",
        {"machine_id": MID, "metadata": (cond("rack", "=", "a"),)},
    ),
    (
        "Global with Conflicts and metadata",
        "Global=true\nConflicts=x.service\nMachineMetadata=role=edge",
        {"global_": True, "conflicts": ("x.service",), "metadata": (cond("role", "=", "edge"),)},
    ),
    (
        "MachineOf with Conflicts not matching",
        "MachineOf=db.service\nConflicts=web@*.service",
        {"machine_of": ("db.service",), "conflicts": ("web@*.service",)},
    ),
    (
        "AtMostOnce with MachineID",
        f"AtMostOnce=1\nMachineID={MID}",
        {"at_most_once": True, "machine_id": MID},
    ),
    # systemd: an empty assignment resets a list
    (
        "Conflicts reset",
        "Conflicts=a.service\nConflicts=\nConflicts=b.service",
        {"conflicts": ("b.service",)},
    ),
    ("MachineOf reset", "MachineOf=a.service\nMachineOf=", {}),
]


@pytest.mark.parametrize(
    ("fleet", "fields"), [c[1:] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED]
)
def test_accepted(fleet: str, fields: dict[str, Any]) -> None:
    assert reqs(fleet) == Requirements(**fields)


# --- deprecated aliases -----------------------------------------------------------------------

ALIASES: list[tuple[str, dict[str, Any]]] = [
    (f"X-ConditionMachineID={MID}", {"machine_id": MID}),
    (f"X-ConditionMachineBootID={MID}", {"machine_id": MID}),
    ("X-ConditionMachineOf=db.service", {"machine_of": ("db.service",)}),
    ("X-ConditionMachineMetadata=rack=a", {"metadata": (cond("rack", "=", "a"),)}),
    ("X-Conflicts=db.service", {"conflicts": ("db.service",)}),
    # the modern name wins over the deprecated ones for MachineID, as in fleet
    (f"X-ConditionMachineBootID=0123abcd\nMachineID={MID}", {"machine_id": MID}),
    (f"X-ConditionMachineID={MID}\nX-ConditionMachineBootID=0123abcd", {"machine_id": MID}),
    # lists take both names' values, as fleet did (job.go Conflicts(), Peers())
    ("X-Conflicts=a.service\nConflicts=b.service", {"conflicts": ("b.service", "a.service")}),
    (
        "X-ConditionMachineOf=a.service\nMachineOf=b.service",
        {"machine_of": ("b.service", "a.service")},
    ),
    (
        "X-ConditionMachineMetadata=rack=a\nMachineMetadata=disk=ssd",
        {"metadata": (cond("disk", "=", "ssd"), cond("rack", "=", "a"))},
    ),
]


@pytest.mark.parametrize(("fleet", "fields"), ALIASES)
def test_deprecated_aliases(fleet: str, fields: dict[str, Any]) -> None:
    assert reqs(fleet) == Requirements(**fields)


def test_alias_named_in_combination_error() -> None:
    with pytest.raises(
        InvalidRequirements, match="X-ConditionMachineID cannot be used with Global"
    ):
        reqs(f"X-ConditionMachineID={MID}\nGlobal=true")


# --- rejections -------------------------------------------------------------------------------

REJECTED: list[tuple[str, str, str]] = [
    # keys fleet did not have: a wrong value would reserve the wrong amount or fence wrongly
    ("AtMostOnce not bool", "AtMostOnce=2", "AtMostOnce=2: not a boolean"),
    ("AtMostOnce two words", "AtMostOnce=true false", "AtMostOnce takes one value"),
    ("CPUReservation text", "CPUReservation=lots", "CPUReservation=lots: not a CPU amount"),
    ("CPUReservation negative", "CPUReservation=-1", "not a CPU amount"),
    ("CPUReservation too fine", "CPUReservation=0.0001", "finer than a millicore"),
    ("CPUReservation percent", "CPUReservation=50%%", "not a CPU amount"),
    (
        "MemoryReservation text",
        "MemoryReservation=lots",
        "MemoryReservation=lots: not a memory size",
    ),
    ("MemoryReservation unit", "MemoryReservation=5X", "not a memory size"),
    ("MemoryReservation negative", "MemoryReservation=-5M", "not a memory size"),
    # echoed in placement reasons and listings: never a terminal escape
    ("control character", "MachineOf=a\x1b[2J.service", "control characters are not allowed"),
    ("control character quoted", 'Conflicts="a\x07b"', "control characters are not allowed"),
    # forbidden combinations (fleet's), each naming both keys
    (
        "MachineID+MachineOf",
        f"MachineID={MID}\nMachineOf=db.service",
        "MachineID cannot be used with MachineOf",
    ),
    (
        "MachineID+Conflicts",
        f"MachineID={MID}\nConflicts=db.service",
        "MachineID cannot be used with Conflicts",
    ),
    ("MachineID+Global", f"MachineID={MID}\nGlobal=true", "MachineID cannot be used with Global"),
    (
        "MachineID+Replaces",
        f"MachineID={MID}\nReplaces=db.service",
        "MachineID cannot be used with Replaces",
    ),
    (
        "Global+MachineOf",
        "Global=true\nMachineOf=db.service",
        "Global cannot be used with MachineOf",
    ),
    ("Global+Replaces", "Global=true\nReplaces=db.service", "Global cannot be used with Replaces"),
    (
        "Conflicts+Replaces",
        "Conflicts=a.service\nReplaces=b.service",
        "Conflicts cannot be used with Replaces",
    ),
    ("Global+AtMostOnce", "Global=true\nAtMostOnce=true", "Global cannot be used with AtMostOnce"),
    (
        "peer matches conflict",
        "MachineOf=db-1.service\nConflicts=db-*.service",
        "MachineOf=db-1.service matches Conflicts=db-*.service",
    ),
    (
        "peer matches replace",
        "MachineOf=db-1.service\nReplaces=db-1.service",
        "MachineOf=db-1.service matches Replaces=db-1.service",
    ),
]


@pytest.mark.parametrize(
    ("fleet", "message"), [c[1:] for c in REJECTED], ids=[c[0] for c in REJECTED]
)
def test_rejected(fleet: str, message: str) -> None:
    with pytest.raises(InvalidRequirements) as info:
        reqs(fleet)
    assert message in str(info.value)


# --- accepted with a warning: what fleet v1.0 accepted, read as fleet read it ------------------

WARNED: list[tuple[str, str, str, dict[str, Any]]] = [
    # name, [X-Fleet] lines, a substring of the warning, the requirements fleet's reading gives
    ("unknown key", "Foo=bar", "unknown [X-Fleet] key 'Foo'; ignored", {}),
    ("unknown key lists valid ones", "Foo=bar", "valid keys: MachineID, MachineOf", {}),
    ("unknown key suggestion", "MachineOff=a.service", "did you mean MachineOf?", {}),
    ("key names are case-sensitive", "global=true", "unknown [X-Fleet] key 'global'", {}),
    (
        "MachineID not hex",
        "MachineID=xyz12345",
        "MachineID=xyz12345: not a machine ID",
        {"machine_id": "xyz12345"},
    ),
    (
        "MachineID wrong length",
        "MachineID=0123abcd0",
        "starts with '0123abcd0' can take the unit",
        {"machine_id": "0123abcd0"},
    ),
    (
        "MachineID two values: the first, as fleet",
        "MachineID=0123abcd 89abcdef",
        "the first, 0123abcd, is used",
        {"machine_id": "0123abcd"},
    ),
    (
        "MachineID two lines",
        "MachineID=0123abcd\nMachineID=89abcdef",
        "pinned to one machine only",
        {"machine_id": "0123abcd"},
    ),
    (
        "MachineOf without suffix",
        "MachineOf=db",
        "MachineOf=db: 'db': no type suffix",
        {"machine_of": ("db",)},
    ),
    (
        "MachineOf with a slash",
        "MachineOf=../db.service",
        "no unit has this name",
        {"machine_of": ("../db.service",)},
    ),
    (
        "MachineOf itself",
        "MachineOf=%n",
        "a unit cannot follow itself; it will not be placed",
        {"machine_of": ("web@1.service",)},
    ),
    ("metadata without operator", "MachineMetadata=rack", "expected key=value", {}),
    ("metadata without key", "MachineMetadata==a", "ignored, as fleet did", {}),
    ("metadata without value", "MachineMetadata=rack=", "no value after '='", {}),
    ("metadata ==", "MachineMetadata=rack==a", "malformed operator", {}),
    (
        "metadata =>",
        "MachineMetadata=cores=>4",
        "metadata 'cores' must be '>4'",
        {"metadata": (cond("cores", "=", ">4"),)},
    ),
    (
        "metadata bad key",
        "MachineMetadata=ra/ck=a",
        "expected key=value",
        {"metadata": (cond("ra/ck", "=", "a"),)},
    ),
    (
        "metadata >= text",
        "MachineMetadata=cores>=many",
        "cores>=many: >= needs a number",
        {"metadata": (cond("cores>", "=", "many"),)},
    ),
    ("metadata < text", "MachineMetadata=cores<x", "< needs a number", {}),
    ("metadata > nan", "MachineMetadata=cores>nan", "needs a number", {}),
    (
        "Conflicts without suffix: fleet's glob, matching only that name",
        "Conflicts=apache",
        "did you mean apache.service or apache*?",
        {"conflicts": ("apache",)},
    ),
    (
        "Conflicts bad glob char",
        "Conflicts=db$*.service",
        "invalid character '$'",
        {"conflicts": ("db$*.service",)},
    ),
    (
        "Conflicts glob with slash",
        "Conflicts=../*.service",
        "may not contain '/'",
        {"conflicts": ("../*.service",)},
    ),
    (
        "Conflicts unbalanced bracket",
        "Conflicts=db[0-9.service",
        "malformed pattern",
        {"conflicts": ("db[0-9.service",)},
    ),
    ("Global not bool", "Global=maybe", "Global=maybe: not a boolean", {}),
    ("Global two words", "Global=true false", "Global takes one value", {}),
    (
        "Global two quoted words: the last",
        'Global="false" "on"',
        "taken as true",
        {"global_": True},
    ),
    (
        "Replaces itself",
        "Replaces=web@*.service",
        "matches web@1.service itself",
        {"replaces": ("web@*.service",)},
    ),
    ("Replaces without suffix", "Replaces=old", "no type suffix", {"replaces": ("old",)}),
    (
        "unknown specifier: kept, as fleet",
        "MachineOf=%H-%p.service",
        "unknown specifier %H",
        {"machine_of": ("%H-web.service",)},
    ),
    (
        "lone percent",
        "MachineMetadata=load=5%",
        "lone '%'",
        {"metadata": (cond("load", "=", "5%"),)},
    ),
    (
        "unbalanced quote: read whole, as fleet",
        'Conflicts="a.service',
        "unbalanced double quote",
        {"conflicts": ('"a.service',)},
    ),
]


@pytest.mark.parametrize(
    ("fleet", "warning", "fields"), [c[1:] for c in WARNED], ids=[c[0] for c in WARNED]
)
def test_warned(fleet: str, warning: str, fields: dict[str, Any]) -> None:
    got, warnings = read(fleet)
    assert any(warning in w for w in warnings), warnings
    assert got == Requirements(**fields)


def test_each_suspect_value_warns_once() -> None:
    _, warnings = read("Conflicts=apache\nMachineOf=db\nFoo=1")
    assert len(warnings) == 3


# --- reservation defaults ---------------------------------------------------------------------

DEFAULTS = ReservationDefaults(cpu_millis=100, memory_bytes=128 * MiB)

RESERVATIONS: list[tuple[str, str, str, int, int]] = [
    # name, [Service] lines, [X-Fleet] lines, cpu, memory
    ("web.service", "", "", 100, 128 * MiB),
    ("web.service", "CPUQuota=50%", "", 500, 128 * MiB),
    ("web.service", "CPUQuota=200%", "", 2000, 128 * MiB),
    ("web.service", "CPUQuota=12.5%", "", 125, 128 * MiB),
    ("web.service", "CPUQuota=50%\nCPUQuota=", "", 100, 128 * MiB),
    ("web.service", "CPUQuota=50%", "CPUReservation=1", 1000, 128 * MiB),
    ("web.service", "MemoryMax=1G", "", 100, GiB),
    ("web.service", "MemoryLimit=256M", "", 100, 256 * MiB),
    ("web.service", "MemoryMax=1G\nMemoryLimit=256M", "", 100, GiB),
    ("web.service", "MemoryMax=infinity\nMemoryLimit=256M", "", 100, 0),
    ("web.service", "MemoryMax=50%", "", 100, 128 * MiB),
    ("web.service", "MemoryMax=1G", "MemoryReservation=64M", 100, 64 * MiB),
    ("web.service", "", "MemoryReservation=0\nCPUReservation=0", 0, 0),
    # only services get the cluster default; other types their own section's limits
    ("tick.timer", "", "", 0, 0),
    ("app.target", "", "", 0, 0),
]


@pytest.mark.parametrize(("name", "service", "fleet", "cpu", "memory"), RESERVATIONS)
def test_reservation_defaults(name: str, service: str, fleet: str, cpu: int, memory: int) -> None:
    got = reqs(fleet, name=name, extra=f"[Service]\n{service}\n", defaults=DEFAULTS)
    assert (got.cpu_millis, got.memory_bytes) == (cpu, memory)


def test_reservations_from_socket_section() -> None:
    unit = UnitFile.from_text("[Socket]\nListenStream=80\nCPUQuota=20%\nMemoryMax=32M\n")
    got = parse_requirements(unit, UnitName.parse("web.socket"), DEFAULTS)
    assert (got.cpu_millis, got.memory_bytes) == (200, 32 * MiB)


def test_no_defaults_means_zero() -> None:
    assert reqs("", name="web.service") == Requirements()


@pytest.mark.parametrize(
    ("service", "message"),
    [
        ("CPUQuota=half", "[Service] CPUQuota=half: not a CPU quota"),
        ("CPUQuota=0%", "not a CPU quota"),
        ("MemoryMax=big", "[Service] MemoryMax=big: not a memory size"),
        ("MemoryLimit=1Q", "[Service] MemoryLimit=1Q: not a memory size"),
    ],
)
def test_bad_service_limits_warn(service: str, message: str) -> None:
    """systemd ignores a limit it cannot parse: so does the reservation (the default applies)."""
    got, warnings = read("", name="web.service", extra=f"[Service]\n{service}\n", defaults=DEFAULTS)
    assert [w for w in warnings if message in w and "systemd ignores it" in w]
    assert (got.cpu_millis, got.memory_bytes) == (DEFAULTS.cpu_millis, DEFAULTS.memory_bytes)


# --- quantities -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "millis"),
    [
        ("0", 0),
        ("1", 1000),
        ("2", 2000),
        ("0.5", 500),
        (".25", 250),
        ("1.5", 1500),
        ("0.001", 1),
        ("1.2500", 1250),
        ("500m", 500),
        ("0m", 0),
        (" 3 ", 3000),
    ],
)
def test_parse_cpu(raw: str, millis: int) -> None:
    assert parse_cpu(raw) == millis


@pytest.mark.parametrize("raw", ["", "x", "-1", "1.5m", "1 core", "50%", "0.0005", "m"])
def test_parse_cpu_rejects(raw: str) -> None:
    with pytest.raises(InvalidInput):
        parse_cpu(raw)


@pytest.mark.parametrize(
    ("raw", "size"),
    [
        ("0", 0),
        ("100", 100),
        ("100B", 100),
        ("1K", 1024),
        ("1k", 1024),
        ("4M", 4 * MiB),
        ("4G", 4 * GiB),
        ("2T", 2 * 1024 * GiB),
        ("1P", 1024**5),
        ("1E", 1024**6),
        ("1.5G", 3 * GiB // 2),
        ("0.5K", 512),
        ("1 G", GiB),
    ],
)
def test_parse_memory(raw: str, size: int) -> None:
    assert parse_memory(raw) == size


@pytest.mark.parametrize("raw", ["", "G", "lots", "-1G", "1GB", "1Gi", "infinity", "1.2.3M"])
def test_parse_memory_rejects(raw: str) -> None:
    with pytest.raises(InvalidInput):
        parse_memory(raw)


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0"),
        (100, "100"),
        (1024, "1K"),
        (512 * MiB, "512M"),
        (2 * GiB, "2G"),
        (3 * GiB // 2, "1.5G"),
        (1024 * GiB, "1T"),
        (1536, "1.5K"),
        (-512 * MiB, "-512M"),
    ],
)
def test_format_memory(size: int, text: str) -> None:
    assert format_memory(size) == text


@pytest.mark.parametrize(
    ("millis", "text"), [(0, "0"), (500, "500m"), (2000, "2"), (1500, "1.5"), (-250, "-250m")]
)
def test_format_cpu(millis: int, text: str) -> None:
    assert format_cpu(millis) == text


# --- metadata matching ------------------------------------------------------------------------


def conds(*words: str) -> tuple[MetadataCondition, ...]:
    return tuple(parse_metadata_condition(w) for w in words)


MATCHES: list[tuple[tuple[str, ...], dict[str, str], str | None]] = [
    ((), {}, None),
    ((), {"rack": "a"}, None),
    (("rack=a",), {"rack": "a"}, None),
    (("rack=a",), {"rack": "b"}, "metadata rack=a wanted, rack=b"),
    (("rack=a",), {}, "metadata rack=a wanted, rack not set"),
    # OR among values of one key
    (("rack=a", "rack=b"), {"rack": "b"}, None),
    (("rack=a", "rack=b"), {"rack": "c"}, "metadata rack=a|b wanted, rack=c"),
    # AND across keys
    (("rack=a", "disk=ssd"), {"rack": "a", "disk": "ssd"}, None),
    (("rack=a", "disk=ssd"), {"rack": "a", "disk": "hdd"}, "metadata disk=ssd wanted, disk=hdd"),
    # !=
    (("rack!=a",), {"rack": "b"}, None),
    (("rack!=a",), {}, None),
    (("rack!=a",), {"rack": "a"}, "metadata rack!=a wanted, rack=a"),
    (("rack!=a", "rack!=b"), {"rack": "b"}, "metadata rack!=b wanted, rack=b"),
    (("rack=a", "rack!=a"), {"rack": "a"}, "metadata rack!=a wanted, rack=a"),
    # numeric
    (("cores>=4",), {"cores": "4"}, None),
    (("cores>=4",), {"cores": "3"}, "metadata cores>=4 wanted, cores=3"),
    (("cores<=4",), {"cores": "4"}, None),
    (("cores<=4",), {"cores": "5"}, "metadata cores<=4 wanted, cores=5"),
    (("cores>4",), {"cores": "4.5"}, None),
    (("cores>4",), {"cores": "4"}, "metadata cores>4 wanted, cores=4"),
    (("cores<4",), {"cores": "3.99"}, None),
    (("cores<4",), {"cores": "4"}, "metadata cores<4 wanted, cores=4"),
    (("cores>0",), {"cores": "1"}, None),
    (("cores>=0",), {"cores": "-1"}, "metadata cores>=0 wanted, cores=-1"),
    (("cores>=4", "cores<=8"), {"cores": "6"}, None),
    (("cores>=4", "cores<=8"), {"cores": "9"}, "metadata cores<=8 wanted, cores=9"),
    (("cores>=4",), {}, "metadata cores>=4 wanted, cores not set"),
    (("cores>=4",), {"cores": "many"}, "metadata cores>=4 wanted, cores=many is not a number"),
    (("gen=2", "cores>=4"), {"gen": "2", "cores": "8"}, None),
]


@pytest.mark.parametrize(("words", "metadata", "reason"), MATCHES)
def test_metadata_matches(
    words: tuple[str, ...], metadata: dict[str, str], reason: str | None
) -> None:
    assert metadata_matches(conds(*words), metadata) == reason


def test_metadata_condition_str() -> None:
    assert [str(c) for c in conds("a=1", "b!=2", "c>=3", "d<=4", "e>5", "f<6")] == [
        "a=1",
        "b!=2",
        "c>=3",
        "d<=4",
        "e>5",
        "f<6",
    ]


# --- globs and machine ids --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("web.service", "web.service", True),
        ("web.service", "web2.service", False),
        ("web@*.service", "web@1.service", True),
        ("web@*.service", "web@.service", True),
        ("web@*.service", "db@1.service", False),
        ("web-?.service", "web-1.service", True),
        ("web-?.service", "web-10.service", False),
        ("db[0-9].service", "db3.service", True),
        ("db[^0-9].service", "dbx.service", True),
        ("db[^0-9].service", "db3.service", False),
        ("*.service", "web.socket", False),
        # Go's path.Match, as fleet: no suffix added, '!' is no negation, '\\' escapes
        ("apache", "apache.service", False),
        ("apache", "apache", True),
        ("monitor*", "monitor@1.service", True),
        ("monitor*", "monitor.timer", True),
        ("db[!0-9].service", "db!.service", True),
        ("db[!0-9].service", "dbx.service", False),
        ("web\\*", "web*", True),
        ("web\\*", "web.service", False),
        ("srv-www\\\\x2d*", "srv-www\\x2dassets.mount", True),
        ("a?c.service", "a@c.service", True),
        ("[a-c]b.service", "cb.service", True),
        ("[c-a]b.service", "bb.service", False),
        # a malformed pattern matches nothing (fleet ignored path.Match's error)
        ("db[0-9.service", "db1.service", False),
        ("[]a].service", "a.service", False),
        ("[-a].service", "a.service", False),
        ("web\\", "web\\", False),
    ],
)
def test_glob_matches(pattern: str, name: str, matches: bool) -> None:
    assert glob_matches(pattern, name) is matches


def test_allows_machine_id() -> None:
    assert Requirements().allows_machine_id(MID)
    assert Requirements(machine_id=MID[:8]).allows_machine_id(MID)
    assert Requirements(machine_id=MID).allows_machine_id(MID.upper())
    assert not Requirements(machine_id="ffffffff").allows_machine_id(MID)


# --- parse_unit: name + file + requirements ---------------------------------------------------


def test_parse_unit() -> None:
    name, unit, got = parse_unit(
        "web@2.service", b"[Service]\nExecStart=/bin/true\n[X-Fleet]\nConflicts=%p@*.service\n"
    )
    assert name.instance == "2"
    assert unit.get("Service", "ExecStart") == ["/bin/true"]
    assert got.conflicts == ("web@*.service",)


@pytest.mark.parametrize(
    ("name", "text", "error", "message"),
    [
        ("web", "[Service]\nExecStart=/bin/true\n", InvalidUnitName, "no type suffix"),
        ("web.service", "ExecStart=/bin/true\n", InvalidUnitFile, "has no options"),
        ("web.service", "# only a comment\n", InvalidUnitFile, "has no options"),
        ("web.service", "[X-Fleet]\nAtMostOnce=perhaps\n", InvalidRequirements, "not a boolean"),
        ("a@.mount", "[Mount]\nWhat=x\n", InvalidUnitName, "only service, socket"),
    ],
)
def test_parse_unit_rejects(name: str, text: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        parse_unit(name, text)
    assert message in str(info.value)
