"""The chaos run's units (pure): their names, files, and what each is.

Of every ten units, one is ``AtMostOnce``, one is in a ``Conflicts`` group of three
(never two of a group on one machine), one has a health check (a command, every
5 s), the rest are plain; all run ``/bin/sleep infinity``.  Each file's
``Description`` carries the run's token, so the file systemd runs can be told from
any other version.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from fleetd.unitfile import UnitFile

PREFIX = "chaos-"
PATTERN = f"{PREFIX}*"


@dataclass(frozen=True, slots=True)
class ChaosUnit:
    name: str
    text: str
    at_most_once: bool = False

    @property
    def description(self) -> str:
        return next(
            line.split("=", 1)[1]
            for line in self.text.splitlines()
            if line.startswith("Description=")
        )

    @property
    def options(self) -> list[tuple[str, str, str]]:
        return [(o.section, o.name, o.value) for o in UnitFile.from_text(self.text).options]

    @property
    def hash(self) -> str:
        """The hash the registry gives it once written as options (fleet's API)."""
        return UnitFile.from_options(self.options).hash


def _text(name: str, token: str, fleet: str) -> str:
    return (
        f"[Unit]\nDescription=chaos {name} {token}\n\n"
        "[Service]\nExecStart=/bin/sleep infinity\n" + (f"\n[X-Fleet]\n{fleet}" if fleet else "")
    )


def unit(name: str, token: str, kind: int = 9) -> ChaosUnit:
    """Unit ``name``: ``kind`` 0 AtMostOnce, 1 in a Conflicts group (``chaos-cgN-K``
    names), 2 with a health check, anything else plain."""
    if kind == 0:
        return ChaosUnit(name, _text(name, token, "AtMostOnce=true\n"), at_most_once=True)
    if kind == 1:
        group = name.split("-")[1]
        return ChaosUnit(name, _text(name, token, f"Conflicts={PREFIX}{group}-*\n"))
    if kind == 2:
        check = "HealthCheck=exec:/bin/true\nHealthCheckInterval=5s\n"
        return ChaosUnit(name, _text(name, token, check))
    return ChaosUnit(name, _text(name, token, ""))


def initial(count: int, seed: int) -> list[ChaosUnit]:
    """The ``count`` units started before the faults."""
    token = f"s{seed}"
    units = []
    for i in range(count):
        kind = i % 10
        if kind == 0:
            name = f"{PREFIX}once-{i:04d}.service"
        elif kind == 1:
            name = f"{PREFIX}cg{i // 30:03d}-{i:04d}.service"
        elif kind == 2:
            name = f"{PREFIX}hc-{i:04d}.service"
        else:
            name = f"{PREFIX}u-{i:04d}.service"
        units.append(unit(name, token, kind))
    return units


def burst(
    seed: int, existing: list[ChaosUnit], starts: int, destroys: int
) -> tuple[list[ChaosUnit], list[str]]:
    """The client's burst: ``starts`` new plain units, and ``destroys`` existing units
    (chosen by the seed) to destroy."""
    rng = random.Random(seed ^ 0xB125)
    new = [unit(f"{PREFIX}burst-{i:04d}.service", f"s{seed}") for i in range(starts)]
    gone = sorted(rng.sample([u.name for u in existing], min(destroys, len(existing))))
    return new, gone
