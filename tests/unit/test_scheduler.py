"""Table-driven tests of the pure scheduler (fleetd.engine.scheduler)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import pytest

from fleetd.engine.checks import Reason, summarise
from fleetd.engine.decision import Decision, Job
from fleetd.engine.index import Strategy, binpack_score
from fleetd.engine.scheduler import schedule
from fleetd.engine.slot import Slot
from fleetd.model import Capacity, Machine, MachineFlags
from fleetd.requirements import Requirements, parse_metadata_condition

G = 1 << 30
M = 1 << 20


def machine(mid: str, cpu: int = 4000, mem: int = 8 * G, **metadata: str) -> Machine:
    return Machine(id=mid, metadata=tuple(metadata.items()), capacity=Capacity(cpu, mem))


def job(name: str, *conds: str, **kw: object) -> Job:
    metadata = tuple(parse_metadata_condition(c) for c in conds)
    return Job(name, Requirements(metadata=metadata, **kw))  # type: ignore[arg-type]


def three() -> list[Machine]:
    return [machine("m1"), machine("m2"), machine("m3")]


def cut_off(m: Machine) -> Machine:
    """``m`` as registered by an agent that cannot reach systemd."""
    return replace(m, systemd_connected=False)


def m1_cut_off() -> list[Machine]:
    return [cut_off(machine("m1")), machine("m2"), machine("m3")]


@dataclass
class Case:
    id: str
    machines: Sequence[Machine]
    jobs: Sequence[Job]
    current: Mapping[str, Sequence[str]] = field(default_factory=dict)
    flags: Mapping[str, MachineFlags] = field(default_factory=dict)
    strategy: Strategy = Strategy.BINPACK
    drain_batch: int | None = None
    # expectations
    assigned: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    unplaceable: Mapping[str, Sequence[str]] = field(default_factory=dict)  # substrings
    removed: Mapping[tuple[str, str], str] = field(default_factory=dict)  # substring of reason
    no_changes: bool = False


CASES = [
    Case(
        "metadata equality, OR within a key",
        [machine("m1", rack="a"), machine("m2", rack="b"), machine("m3", rack="c")],
        [job("u.service", "rack=b"), job("v.service", "rack=c", "rack=x")],
        assigned={"u.service": ("m2",), "v.service": ("m3",)},
    ),
    Case(
        "metadata keys AND-ed and operators",
        [
            machine("m1", rack="a", cores="2", disk="ssd"),
            machine("m2", rack="a", cores="8", disk="hdd"),
            machine("m3", rack="b", cores="16", disk="ssd"),
        ],
        [
            job("big.service", "cores>=8", "disk=ssd"),
            job("notb.service", "rack!=b", "cores>4"),
            job("small.service", "cores<4"),
            job("le.service", "cores<=2"),
        ],
        assigned={
            "big.service": ("m3",),
            "notb.service": ("m2",),
            "small.service": ("m1",),
            "le.service": ("m1",),
        },
    ),
    Case(
        "metadata from a %i-expanded value (web@2 wants rack=2)",
        [machine("m1", rack="1"), machine("m2", rack="2")],
        [job("web@2.service", "rack=2")],
        assigned={"web@2.service": ("m2",)},
    ),
    Case(
        "metadata mismatch is unplaceable with the machine's value",
        [machine("m1", rack="b"), machine("m2")],
        [job("u.service", "rack=a")],
        unplaceable={
            "u.service": [
                "m1: metadata rack=a wanted, rack=b",
                "m2: metadata rack=a wanted, rack not set",
            ]
        },
    ),
    Case(
        "non-numeric metadata fails a numeric condition",
        [machine("m1", cores="many")],
        [job("u.service", "cores>=2")],
        unplaceable={"u.service": ["m1: metadata cores>=2 wanted, cores=many is not a number"]},
    ),
    Case(
        "five mutually conflicting units on three machines: three placed, two with reasons",
        three(),
        [job(f"web@{i}.service", conflicts=("web@*",)) for i in range(1, 6)],
        assigned={
            "web@1.service": ("m1",),
            "web@2.service": ("m2",),
            "web@3.service": ("m3",),
        },
        unplaceable={
            "web@4.service": ["m1: conflicts with web@1.service", "m3: conflicts with web@3"],
            "web@5.service": ["m2: conflicts with web@2.service"],
        },
    ),
    Case(
        "conflicts are symmetric: the declared glob also keeps others away",
        [machine("m1"), machine("m2")],
        [job("a.service", conflicts=("b.service",)), job("b.service")],
        current={"a.service": ["m1"]},
        assigned={"a.service": ("m1",), "b.service": ("m2",)},
    ),
    Case(
        "MachineOf follows its peer",
        three(),
        [job("a.service", cpu_millis=1000), job("b.service", machine_of=("a.service",))],
        current={"a.service": ["m2"]},
        assigned={"a.service": ("m2",), "b.service": ("m2",)},
    ),
    Case(
        "MachineOf pairs move together when the machine is gone",
        [machine("m1"), machine("m3")],
        [job("a.service"), job("b.service", machine_of=("a.service",))],
        current={"a.service": ["m2"], "b.service": ["m2"]},
        assigned={"a.service": ("m1",), "b.service": ("m1",)},
        removed={("a.service", "m2"): "machine m2 is gone", ("b.service", "m2"): "gone"},
    ),
    Case(
        "MachineOf pair is placed where both fit (reservations add up)",
        [machine("m1", mem=3 * G), machine("m2", mem=2 * G)],
        [
            job("a.service", memory_bytes=1 * G),
            job("b.service", machine_of=("a.service",), memory_bytes=2 * G),
        ],
        assigned={"a.service": ("m1",), "b.service": ("m1",)},
    ),
    Case(
        "MachineOf a unit that is not placed",
        three(),
        [job("b.service", machine_of=("a.service",))],
        unplaceable={"b.service": ["must run with a.service, which is not placed"]},
    ),
    Case(
        "MachineOf cycle",
        three(),
        [
            job("a.service", machine_of=("b.service",)),
            job("b.service", machine_of=("a.service",)),
        ],
        unplaceable={"a.service": ["MachineOf cycle"], "b.service": ["MachineOf cycle"]},
    ),
    Case(
        "Global unit on every matching machine, except where it conflicts",
        [machine("m1", role="web"), machine("m2", role="web"), machine("m3", role="db")],
        [
            job("agent.service", "role=web", global_=True, conflicts=("legacy*",)),
            job("legacy.service", "role=web"),
        ],
        current={"legacy.service": ["m2"]},
        assigned={"agent.service": ("m1",), "legacy.service": ("m2",)},
    ),
    Case(
        "Global unit with no matching machine is unplaceable",
        three(),
        [job("agent.service", "role=web", global_=True)],
        unplaceable={"agent.service": ["metadata role=web wanted"]},
    ),
    Case(
        "Replaces evicts the replaced unit, which moves elsewhere",
        [machine("m1", disk="ssd"), machine("m2")],
        [job("old.service"), job("new.service", "disk=ssd", replaces=("old.service",))],
        current={"old.service": ["m1"]},
        assigned={"new.service": ("m1",), "old.service": ("m2",)},
        removed={("old.service", "m1"): "replaced by new.service"},
    ),
    Case(
        "a replaced unit cannot come back next to its replacement",
        [machine("m1")],
        [job("old.service"), job("new.service", replaces=("old*",))],
        current={"new.service": ["m1"]},
        assigned={"new.service": ("m1",)},
        unplaceable={"old.service": ["m1: would be replaced by new.service"]},
    ),
    Case(
        "pin by full MachineID",
        [machine("0123456789abcdef0123456789abcdef"), machine("fedcba9876543210fedcba9876543210")],
        [job("u.service", machine_id="fedcba9876543210fedcba9876543210")],
        assigned={"u.service": ("fedcba9876543210fedcba9876543210",)},
    ),
    Case(
        "pin by 8-character MachineID prefix",
        [machine("0123456789abcdef0123456789abcdef"), machine("fedcba9876543210fedcba9876543210")],
        [job("u.service", machine_id="01234567")],
        assigned={"u.service": ("0123456789abcdef0123456789abcdef",)},
    ),
    Case(
        "pin to an unknown machine",
        three(),
        [job("u.service", machine_id="deadbeef")],
        unplaceable={"u.service": ["pinned to machine deadbeef, which is not registered"]},
    ),
    Case(
        "binpack fills machine 1 before machine 2",
        [machine("m1", mem=4 * G), machine("m2", mem=4 * G)],
        [job(f"u{i}.service", memory_bytes=1 * G, cpu_millis=100) for i in range(5)],
        assigned={
            "u0.service": ("m1",),
            "u1.service": ("m1",),
            "u2.service": ("m1",),
            "u3.service": ("m1",),
            "u4.service": ("m2",),
        },
    ),
    Case(
        "binpack prefers the fuller machine that still fits",
        [machine("m1", mem=4 * G), machine("m2", mem=4 * G)],
        [job("small.service", memory_bytes=3 * G), job("x.service", memory_bytes=2 * G)],
        current={"small.service": ["m2"]},
        assigned={"small.service": ("m2",), "x.service": ("m1",)},
    ),
    Case(
        "spread alternates (least loaded, ties by machine id)",
        [machine("m1"), machine("m2")],
        [job(f"u{i}.service", memory_bytes=1 * G) for i in range(4)],
        strategy=Strategy.SPREAD,
        assigned={
            "u0.service": ("m1",),
            "u1.service": ("m2",),
            "u2.service": ("m1",),
            "u3.service": ("m2",),
        },
    ),
    Case(
        "binpack without reservations spreads by unit count",
        [machine("m1"), machine("m2")],
        [job("a.service"), job("b.service")],
        assigned={"a.service": ("m1",), "b.service": ("m2",)},
    ),
    Case(
        "a unit larger than any machine is unplaceable with reasons",
        [machine("m1", mem=1 * G), machine("m2", mem=512 * M, cpu=500)],
        [job("huge.service", memory_bytes=2 * G, cpu_millis=1000)],
        unplaceable={
            "huge.service": [
                "m1: needs 2G memory, 1G free",
                "m2: needs 2G memory, 512M free",
            ]
        },
    ),
    Case(
        "CPU reservation",
        [machine("m1", cpu=500)],
        [job("u.service", cpu_millis=1500)],
        unplaceable={"u.service": ["m1: needs 1.5 CPU, 500m free"]},
    ),
    Case(
        "unschedulable and draining machines get no new units",
        three(),
        [job("u.service"), job("v.service")],
        flags={"m1": MachineFlags(unschedulable=True), "m2": MachineFlags(draining=True)},
        assigned={"u.service": ("m3",), "v.service": ("m3",)},
    ),
    Case(
        "a machine whose agent cannot reach systemd gets no new units, with the reason",
        m1_cut_off(),
        [job("u.service"), job("v.service"), job("p.service", machine_id="m1")],
        strategy=Strategy.SPREAD,
        assigned={"u.service": ("m2",), "v.service": ("m3",)},
        unplaceable={"p.service": ["pinned to machine m1: m1: agent cannot reach systemd"]},
    ),
    Case(
        "units stay on a machine whose agent cannot reach systemd (they keep running)",
        m1_cut_off(),
        [job("u.service", memory_bytes=G), job("g.service", global_=True)],
        current={"u.service": ["m1"], "g.service": ["m1"]},
        assigned={"u.service": ("m1",), "g.service": ("m1", "m2", "m3")},
    ),
    Case(
        "a MachineOf follower does not join its peer where systemd cannot be reached",
        m1_cut_off(),
        [job("a.service"), job("f.service", machine_of=("a.service",))],
        current={"a.service": ["m1"]},
        assigned={"a.service": ("m1",)},
        unplaceable={"f.service": ["must run with a.service: m1: agent cannot reach systemd"]},
    ),
    Case(
        "a follower joins a cordoned peer, but not one cut off from systemd",
        m1_cut_off(),
        [job("a.service"), job("f.service", machine_of=("a.service",))],
        current={"a.service": ["m1"]},
        flags={"m1": MachineFlags(unschedulable=True)},
        assigned={"a.service": ("m1",)},
        unplaceable={"f.service": ["must run with a.service: m1: agent cannot reach systemd"]},
    ),
    Case(
        "every machine cut off: nothing is placed, every machine says why",
        [cut_off(m) for m in three()],
        [job("u.service")],
        unplaceable={
            "u.service": [
                "m1: agent cannot reach systemd; m2: agent cannot reach systemd; "
                "m3: agent cannot reach systemd"
            ]
        },
    ),
    Case(
        "cordoned machine keeps its units",
        three(),
        [job("u.service")],
        current={"u.service": ["m1"]},
        flags={"m1": MachineFlags(unschedulable=True)},
        no_changes=True,
    ),
    Case(
        "draining moves AtMostOnce units (stop-first), one batch at a time",
        three(),
        [job(f"u{i}.service", at_most_once=True) for i in range(3)],
        current={f"u{i}.service": ["m1"] for i in range(3)},
        flags={"m1": MachineFlags(draining=True)},
        drain_batch=2,
        assigned={"u0.service": ("m2",), "u1.service": ("m3",), "u2.service": ("m1",)},
        removed={("u0.service", "m1"): "draining", ("u1.service", "m1"): "draining"},
    ),
    Case(
        "draining moves other units start-first, all at once",
        three(),
        [job(f"u{i}.service") for i in range(3)],
        current={f"u{i}.service": ["m1"] for i in range(3)},
        flags={"m1": MachineFlags(draining=True)},
        drain_batch=1,
        assigned={"u0.service": ("m2",), "u1.service": ("m3",), "u2.service": ("m2",)},
        removed={(f"u{i}.service", "m1"): "draining" for i in range(3)},
    ),
    Case(
        "a Global unit leaves a draining machine (it has nowhere else to go)",
        [machine("m1"), machine("m2")],
        [job("g.service", global_=True)],
        current={"g.service": ["m1", "m2"]},
        flags={"m1": MachineFlags(draining=True)},
        drain_batch=1,
        assigned={"g.service": ("m2",)},
        removed={("g.service", "m1"): "machine m1 is draining"},
    ),
    Case(
        "a unit that fits nowhere else stays on its draining machine",
        [machine("m1", mem=4 * G), machine("m2", mem=1 * G)],
        [job("u.service", memory_bytes=2 * G)],
        current={"u.service": ["m1"]},
        flags={"m1": MachineFlags(draining=True)},
        assigned={"u.service": ("m1",)},
        unplaceable={"u.service": ["cannot leave draining machine m1", "m2: needs 2G memory"]},
    ),
    Case(
        "flag metadata overrides are what metadata checks see",
        [machine("m1", rack="a"), machine("m2", rack="b")],
        [job("u.service", "rack=z")],
        flags={"m2": MachineFlags(metadata_overrides=(("rack", "z"),))},
        assigned={"u.service": ("m2",)},
    ),
    Case(
        "a constraint that now forbids the machine moves the unit",
        [machine("m1", rack="a"), machine("m2", rack="b")],
        [job("u.service", "rack=b")],
        current={"u.service": ["m1"]},
        assigned={"u.service": ("m2",)},
        removed={("u.service", "m1"): "metadata rack=b wanted, rack=a"},
    ),
    Case(
        "over-committed machine sheds the last units by name",
        [machine("m1", mem=2 * G), machine("m2", mem=2 * G)],
        [job("a.service", memory_bytes=1 * G), job("b.service", memory_bytes=2 * G)],
        current={"a.service": ["m1"], "b.service": ["m1"]},
        assigned={"a.service": ("m1",), "b.service": ("m2",)},
        removed={("b.service", "m1"): "needs 2G memory, 1G free"},
    ),
    Case(
        "duplicate placements of a non-global unit are dropped",
        three(),
        [job("u.service")],
        current={"u.service": ["m1", "m2"]},
        assigned={"u.service": ("m1",)},
        removed={("u.service", "m2"): "already placed"},
    ),
    Case(
        "stability: placed units do not move when a new machine appears",
        [machine("m1", mem=2 * G), machine("m2", mem=2 * G), machine("m0", mem=64 * G)],
        [job("a.service", memory_bytes=1 * G), job("b.service", memory_bytes=1 * G)],
        current={"a.service": ["m1"], "b.service": ["m2"]},
        strategy=Strategy.SPREAD,
        no_changes=True,
    ),
    Case(
        "no machines at all",
        [],
        [job("u.service")],
        unplaceable={"u.service": ["no machines registered"]},
    ),
]


def run(case: Case) -> Decision:
    return schedule(
        case.machines,
        case.jobs,
        current=case.current,
        flags=case.flags,
        strategy=case.strategy,
        drain_batch=case.drain_batch,
    )


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_schedule(case: Case) -> None:
    decision = run(case)
    for unit, machines in case.assigned.items():
        assert decision.assignments.get(unit) == machines, (unit, decision)
    for unit, parts in case.unplaceable.items():
        text = decision.unplaceable.get(unit)
        assert text is not None, (unit, decision)
        for part in parts:
            assert part in text, (part, text)
    for key, part in case.removed.items():
        found = [r.reason for r in decision.removals if (r.unit, r.machine) == key]
        assert found and part in found[0], (key, decision.removals)
    if case.no_changes:
        assert not decision.placed and not decision.removals, decision
    # No unit is unplaceable unless the case says so (draining leftovers are both).
    assert set(decision.unplaceable) <= set(case.unplaceable), decision.unplaceable
    # Every current placement is kept or removed, never forgotten.
    removed = {(r.unit, r.machine) for r in decision.removals}
    for unit, machines in case.current.items():
        for m in machines:
            assert m in decision.assignments.get(unit, ()) or (unit, m) in removed, (unit, m)
    # A pass over its own outcome changes nothing (placements are stable).
    again = schedule(
        case.machines,
        case.jobs,
        current=decision.assignments,
        flags=case.flags,
        strategy=case.strategy,
        drain_batch=0,
    )
    assert not again.placed and not again.removals, again


def test_reasons_stay_bounded_with_a_thousand_machines() -> None:
    machines = [machine(f"m{i:04}", mem=1 * G, rack="a" if i % 2 else "b") for i in range(1000)]
    machines.append(machine("special", mem=64 * G, rack="c"))
    decision = schedule(machines, [job("huge.service", "rack!=c", memory_bytes=2 * G)])
    text = decision.unplaceable["huge.service"]
    assert "1000 machines: needs 2G memory (max free 1G)" in text
    assert "special: metadata rack!=c wanted, rack=c" in text
    assert len(text) < 300
    # A bounded sample of per-machine reasons: one machine per kind of rejection.
    assert decision.rejections["huge.service"] == (
        ("m0000", "needs 2G memory, 1G free"),
        ("special", "metadata rack!=c wanted, rack=c"),
    )


def test_many_conflicting_units_are_explained_once_per_kind() -> None:
    machines = [machine(f"m{i}") for i in range(20)]
    jobs = [job(f"web@{i}.service", conflicts=("web@*",)) for i in range(30)]
    decision = schedule(machines, jobs)
    assert len(decision.assignments) == 20
    assert len(decision.unplaceable) == 10
    for text in decision.unplaceable.values():
        assert text == "20 machines: conflicts with units there"


def test_binpack_score_matches_nomad() -> None:
    slot = Slot("m", (), 1000, 1000)
    assert binpack_score(slot, 0, 0) == pytest.approx(0.0)  # empty: 20 - (10 + 10)
    assert binpack_score(slot, 1000, 1000) == pytest.approx(18.0)  # full: 20 - (1 + 1)
    assert binpack_score(slot, 500, 500) > binpack_score(slot, 100, 100)


def test_summarise_lists_few_machines_and_groups_many() -> None:
    few = [("m1", Reason("conflicts with web@1.service")), ("m2", Reason("x"))]
    assert summarise(few) == "m1: conflicts with web@1.service; m2: x"
    many = [(f"m{i}", Reason(f"r{i}", group=f"g{i % 10}")) for i in range(100)]
    text = summarise(many)
    assert text.count("machines:") == 7  # six groups and "other reasons"
    assert "40 more machines: other reasons" in text


def test_global_units_claim_new_machines_without_moving_others() -> None:
    jobs = [job("agent.service", global_=True, memory_bytes=1 * G), job("u.service")]
    first = schedule([machine("m1"), machine("m2")], jobs)
    assert first.assignments["agent.service"] == ("m1", "m2")
    later = schedule([machine("m1"), machine("m2"), machine("m3")], jobs, current=first.assignments)
    assert later.assignments["agent.service"] == ("m1", "m2", "m3")
    assert [(p.unit, p.machine) for p in later.placed] == [("agent.service", "m3")]
    assert not later.removals


def test_unplaceable_unit_is_placed_once_room_appears() -> None:
    jobs = [job("big.service", memory_bytes=16 * G)]
    assert "big.service" in schedule([machine("m1")], jobs).unplaceable
    decision = schedule([machine("m1"), machine("m2", mem=32 * G)], jobs)
    assert decision.assignments == {"big.service": ("m2",)}
    assert decision.placed[0].reason == "best fit (binpack)"


@pytest.mark.parametrize("strategy", list(Strategy))
@pytest.mark.parametrize("seed", range(0, 12000, 300))
def test_random_clusters_keep_every_invariant(strategy: Strategy, seed: int) -> None:
    import random

    from fleetd.requirements import glob_matches, metadata_matches

    rnd = random.Random(seed)
    machines = [
        machine(
            f"m{i:02}",
            cpu=rnd.choice((1000, 2000, 4000)),
            mem=rnd.choice((2, 4, 8)) * G,
            rack=rnd.choice("ab"),
            cores=str(rnd.choice((2, 8))),
        )
        for i in range(rnd.randint(1, 12))
    ]
    machines = [cut_off(m) if rnd.random() < 0.15 else m for m in machines]
    flags = {
        m.id: rnd.choice((MachineFlags(unschedulable=True), MachineFlags(draining=True)))
        for m in machines
        if rnd.random() < 0.15
    }
    jobs: list[Job] = []
    for i in range(rnd.randint(1, 60)):
        kind = rnd.random()
        res = {"cpu_millis": rnd.choice((0, 250, 500)), "memory_bytes": rnd.choice((0, 1, 2)) * G}
        if kind < 0.15:
            jobs.append(job(f"web@{i}.service", conflicts=("web@*",), **res))
        elif kind < 0.3:
            jobs.append(job(f"r{i}.service", rnd.choice(("rack=a", "rack!=a", "cores>=4")), **res))
        elif kind < 0.4 and jobs:
            jobs.append(job(f"f{i}.service", machine_of=(rnd.choice(jobs).name,), **res))
        elif kind < 0.45:
            jobs.append(job(f"p{i}.service", machine_id=rnd.choice(machines).id, **res))
        elif kind < 0.5:
            jobs.append(job(f"g{i}.service", global_=True, cpu_millis=50))
        elif kind < 0.55:
            jobs.append(job(f"n{i}.service", replaces=(f"u{rnd.randint(0, i)}.service",), **res))
        else:
            jobs.append(job(f"u{i}.service", **res))
    current = {j.name: [rnd.choice(machines).id] for j in jobs if rnd.random() < 0.3}
    decision = schedule(
        machines,
        jobs,
        current=current,
        flags=flags,
        strategy=strategy,
        drain_batch=rnd.choice((None, 0, 2)),
    )

    reqs = {j.name: j.requirements for j in jobs}
    by_id = {m.id: m for m in machines}
    on: dict[str, list[str]] = {}
    for name, placed in decision.assignments.items():
        stuck = name in decision.unplaceable and not reqs[name].global_
        assert not stuck or flags[placed[0]].draining  # could not leave a draining machine
        assert len(placed) == 1 or reqs[name].global_
        for mid in placed:
            on.setdefault(mid, []).append(name)
            r = reqs[name]
            assert metadata_matches(r.metadata, dict(by_id[mid].metadata)) is None
            assert r.machine_id is None or mid.startswith(r.machine_id)
            for peer in r.machine_of:
                assert mid in decision.assignments.get(peer, ())
    for mid, names in on.items():
        cap = by_id[mid].capacity
        assert sum(reqs[n].cpu_millis for n in names) <= cap.cpu_millis
        assert sum(reqs[n].memory_bytes for n in names) <= cap.memory_bytes
        for a in names:
            for b in names:
                if a != b:
                    assert not any(glob_matches(g, b) for g in reqs[a].conflicts), (mid, a, b)
    for name in reqs:
        assert name in decision.assignments or decision.unplaceable.get(name), name
    new = {(p.unit, p.machine) for p in decision.placed}
    for unit, machines_now in decision.assignments.items():
        for mid in machines_now:
            if (unit, mid) not in new:
                assert mid in current.get(unit, ()), (unit, mid)
            elif flags.get(mid, MachineFlags()) != MachineFlags():
                assert reqs[unit].machine_of, (unit, mid)  # only followers join a cordon
            assert (unit, mid) not in new or by_id[mid].systemd_connected, (unit, mid)
    # Placed units never move; a second pass may only place units the first could not
    # (when room was freed after their turn, e.g. by an eviction).
    again = schedule(
        machines,
        jobs,
        current=decision.assignments,
        flags=flags,
        strategy=strategy,
        drain_batch=0,
    )
    assert not again.removals
    assert all(p.unit in decision.unplaceable for p in again.placed), again.placed
