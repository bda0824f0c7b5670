"""examples/units: every file is a valid unit that shows what its leading comment says.

Each file is checked three ways: ``fleetctl validate`` accepts it (templates
also as instances), it opens with a comment naming the file and explaining
it, and its ``[X-Fleet]`` requirements carry the feature it demonstrates.
A scheduling pass over all of them on the 3-machine layout the comments
describe checks the placements they promise (metadata, conflicts,
MachineOf, Global, bin packing, the unplaceable one).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleetd.cli.main import app
from fleetd.engine.decision import Job
from fleetd.engine.scheduler import schedule
from fleetd.model import Capacity, Machine
from fleetd.requirements import MetadataOp, Requirements
from fleetd.unitcheck import parse_unit

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "units"
GIB = 1 << 30

# file -> (what it shows, the requirement that shows it)
FEATURES: dict[str, tuple[str, Callable[[Requirements], bool]]] = {
    "hello.service": ("a plain service", lambda r: r == Requirements()),
    "web@.service": ("a template", lambda r: r == Requirements()),
    "cache@.service": ("conflicting units", lambda r: r.conflicts == ("cache@*.service",)),
    "monitor.service": ("a global unit", lambda r: r.global_),
    "app.service": ("a MachineOf pair", lambda r: r == Requirements()),
    "app-sidekick.service": ("a MachineOf pair", lambda r: r.machine_of == ("app.service",)),
    "db.service": (
        "metadata with an operator",
        lambda r: (
            {(c.key, c.op, c.value) for c in r.metadata}
            == {("disk", MetadataOp.EQ, "ssd"), ("cores", MetadataOp.GE, "2")}
        ),
    ),
    "backup.service": (
        "a != metadata condition",
        lambda r: [(c.key, c.op) for c in r.metadata] == [("rack", MetadataOp.NE)],
    ),
    "worker@.service": (
        "reservations",
        lambda r: (r.cpu_millis, r.memory_bytes) == (1000, 256 << 20),
    ),
    "singleton.service": ("AtMostOnce", lambda r: r.at_most_once),
    "cleanup.service": ("a timer's service", lambda r: r == Requirements()),
    "cleanup.timer": ("a timer", lambda r: r.machine_of == ("cleanup.service",)),
    "bigmem.service": ("an unplaceable unit", lambda r: r.memory_bytes == 1 << 40),
}
# Instances the comments start, for templates.
INSTANCES = {
    "web@.service": ["web@8081.service", "web@8082.service"],
    "cache@.service": ["cache@1.service", "cache@2.service", "cache@3.service"],
    "worker@.service": [f"worker@{i}.service" for i in range(1, 5)],
}
# The machine layout the comments describe (db.service's comment spells it out).
# Each machine has 2 cores and 2 GiB.
METADATA = {
    "m1": (("disk", "ssd"), ("rack", "a"), ("cores", "4")),
    "m2": (("disk", "hdd"), ("rack", "b"), ("cores", "2")),
    "m3": (("disk", "ssd"), ("rack", "b"), ("cores", "1")),
}
MACHINES = [
    Machine(name, name, metadata=meta, capacity=Capacity(2000, 2 * GIB))
    for name, meta in METADATA.items()
]


def example_files() -> list[Path]:
    return sorted(p for p in EXAMPLES.iterdir() if p.is_file())


def test_every_example_is_listed_here() -> None:
    """A new example must say here what it shows, so that it is tested too."""
    assert {p.name for p in example_files()} == set(FEATURES)


def test_fleetctl_validate_accepts_every_example() -> None:
    files = [str(p) for p in example_files()]
    result = CliRunner().invoke(app, ["validate", *files])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"OK {Path(f).name}" for f in files]


@pytest.mark.parametrize("name", sorted(FEATURES))
def test_example_opens_with_its_explanation(name: str) -> None:
    lines = (EXAMPLES / name).read_text().splitlines()
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line)
    assert header, f"{name} must open with a comment"
    assert re.match(rf"# {re.escape(name)} — \S", header[0]), (
        f"{name}: the first line must be '# {name} — <what it shows>', got {header[0]!r}"
    )
    prose = " ".join(line.lstrip("# ") for line in header)
    assert len(prose.split()) >= 25, f"{name}: explain the example in a few sentences"
    assert "fleetctl " in prose, f"{name}: show the fleetctl command that runs it"


@pytest.mark.parametrize("name", sorted(FEATURES))
def test_example_shows_its_feature(name: str) -> None:
    what, shows = FEATURES[name]
    text = (EXAMPLES / name).read_text()
    for unit in INSTANCES.get(name, [name]):
        _, unit_file, reqs = parse_unit(unit, text)
        assert shows(reqs), f"{unit} should show {what}: {reqs}"
        assert unit_file.section("Service") or unit_file.section("Timer"), unit


def test_templates_expand_the_instance_name() -> None:
    text = (EXAMPLES / "web@.service").read_text()
    assert "http.server %i " in text
    _, unit_file, _ = parse_unit("web@8081.service", text)
    assert unit_file.last("Service", "ExecStart") is not None


def test_exec_lines_use_only_what_debian_ships() -> None:
    """The examples must run on a bare Debian 12 machine: /bin/sh and python3."""
    for path in example_files():
        _, unit_file, _ = parse_unit(INSTANCES.get(path.name, [path.name])[0], path.read_text())
        for option in unit_file.section("Service"):
            if option.name == "ExecStart":
                program = option.value.split()[0]
                assert program in ("/bin/sh", "/usr/bin/python3"), (path.name, program)


def scheduled() -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    jobs = []
    for path in example_files():
        for unit in INSTANCES.get(path.name, [path.name]):
            jobs.append(Job(unit, parse_unit(unit, path.read_text())[2]))
    decision = schedule(MACHINES, jobs)
    return dict(decision.assignments), dict(decision.unplaceable)


def test_examples_are_placed_as_their_comments_say() -> None:
    where, unplaceable = scheduled()

    def one(unit: str) -> str:
        assert len(where.get(unit, ())) == 1, (unit, where.get(unit), unplaceable.get(unit))
        return where[unit][0]

    assert where["monitor.service"] == ("m1", "m2", "m3")
    assert one("db.service") == "m1"
    assert one("backup.service") != "m1"
    assert len({one(f"cache@{i}.service") for i in (1, 2, 3)}) == 3
    assert one("app-sidekick.service") == one("app.service")
    assert one("cleanup.timer") == one("cleanup.service")
    for unit in ("hello.service", "singleton.service", "web@8081.service", "web@8082.service"):
        one(unit)
    workers = [one(f"worker@{i}.service") for i in range(1, 5)]
    assert workers[0] == workers[1] and workers[2] == workers[3] and workers[0] != workers[2]
    assert "bigmem.service" not in where
    assert "memory" in unplaceable["bigmem.service"]
    assert set(unplaceable) == {"bigmem.service"}


def test_a_fourth_cache_instance_conflicts_everywhere() -> None:
    text = (EXAMPLES / "cache@.service").read_text()
    jobs = [Job(f"cache@{i}.service", parse_unit(f"cache@{i}.service", text)[2]) for i in range(4)]
    decision = schedule(MACHINES, jobs)
    assert len(decision.assignments) == 3
    (left,) = decision.unplaceable
    assert "conflict" in decision.unplaceable[left].lower()
