"""A reproducible mixed scheduling workload shared by the engine benchmarks.

Machines: heterogeneous capacities (4-32 cores, 16-128G), metadata
region/rack/disk/cores.  Units: mostly reservations only, plus metadata
constraints (=, OR, !=, >=), Conflicts groups, MachineOf pairs, MachineID
pins and a few Global units.  The mix is fixed by a seed.
"""

from __future__ import annotations

import random

from fleetd.model import Capacity, Machine
from fleetd.requirements import Requirements, parse_metadata_condition

G = 1 << 30
M = 1 << 20


def machines(count: int, seed: int = 1) -> list[Machine]:
    rnd = random.Random(seed)
    out = []
    for i in range(count):
        cores = rnd.choice((4, 8, 16, 32))
        out.append(
            Machine(
                id=f"{rnd.getrandbits(128):032x}",
                hostname=f"node{i}",
                metadata=(
                    ("region", f"r{i % 4}"),
                    ("rack", f"k{i % 40}"),
                    ("disk", "ssd" if i % 3 else "hdd"),
                    ("cores", str(cores)),
                ),
                capacity=Capacity(cores * 1000, cores * 4 * G),
            )
        )
    return out


def units(count: int, fleet: list[Machine], seed: int = 2) -> list[tuple[str, Requirements]]:
    """(name, requirements) pairs; about 1 in 10 constrained by metadata, 1 in 20 by conflicts."""
    rnd = random.Random(seed)
    cond = parse_metadata_condition
    groups = max(1, count // max(1, len(fleet) // 2))  # conflict groups fit the cluster
    out: list[tuple[str, Requirements]] = []
    for g in range(3):
        out.append(
            (f"global{g}.service", Requirements(global_=True, cpu_millis=50, memory_bytes=64 * M))
        )
    i = 0
    while len(out) < count:
        kind, j = i % 20, i // 20  # j varies within a kind
        cpu = rnd.choice((100, 250, 500))
        mem = rnd.choice((128, 256, 512, 1024)) * M
        if kind in (0, 1):
            req = Requirements(metadata=(cond("disk=ssd"),), cpu_millis=cpu, memory_bytes=mem)
        elif kind == 2:
            meta = (cond(f"region=r{j % 4}"), cond(f"region=r{(j + 1) % 4}"), cond("cores>=8"))
            req = Requirements(metadata=meta, cpu_millis=cpu, memory_bytes=mem)
        elif kind == 3:
            req = Requirements(metadata=(cond("rack!=k0"),), cpu_millis=cpu, memory_bytes=mem)
        elif kind == 4:
            name = f"app{j % groups}@{i}.service"
            req = Requirements(conflicts=(f"app{j % groups}@*",), cpu_millis=cpu, memory_bytes=mem)
            out.append((name, req))
            i += 1
            continue
        elif kind == 5:
            out.append((f"db{i}.service", Requirements(cpu_millis=cpu, memory_bytes=mem)))
            follower = Requirements(
                machine_of=(f"db{i}.service",), cpu_millis=100, memory_bytes=mem
            )
            out.append((f"backup{i}.service", follower))
            i += 1
            continue
        elif kind == 6 and j % 5 == 0:
            pin = fleet[rnd.randrange(len(fleet))].id[:8]
            req = Requirements(machine_id=pin, cpu_millis=100, memory_bytes=64 * M)
        else:
            req = Requirements(cpu_millis=cpu, memory_bytes=mem)
        out.append((f"u{i}.service", req))
        i += 1
    return out[:count]
