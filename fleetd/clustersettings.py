"""Cluster settings (pure): what an operator tunes at run time for the whole cluster.

They live in one registry key, ``cluster/settings`` (docs/registry.md), that every
engine watches (fleetd/engine/engine.py) and ``fleetctl config get|set`` shows and
changes (docs/configuration.md).  A setting that was never set takes its default:
``max_unavailable`` 1; the others follow the configuration of the engine that reads
them (``scheduler_strategy``; the mass-loss guard's from ``agent_ttl``), so a cluster
where nobody set anything behaves as its fleet.conf says.

``SETTINGS`` is the one table of them: name, type, bounds, what it does.  Values are
checked here (``check``), whoever writes them: the API (after pydantic checked the
types), ``fleetctl --driver etcd``, the registry codec reading them back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Literal

from fleetd.errors import InvalidInput

Value = int | float | str
Kind = Literal["int", "float", "choice"]


@dataclass(frozen=True, slots=True)
class Setting:
    """One cluster setting: ``kind`` and its bounds (``low``..``high``) or ``choices``."""

    name: str
    kind: Kind
    help: str
    low: float = 0
    high: float = 0
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        """Its type and range, as an error names them."""
        if self.kind == "choice":
            return " or ".join(self.choices)
        low = int(self.low) if self.kind == "int" else self.low
        high = int(self.high) if self.kind == "int" else self.high
        word = "an integer" if self.kind == "int" else "a number"
        return f"{word} from {low:g} to {high:g}"


STRATEGIES = ("binpack", "spread")
DAY = 86_400.0
MAX_UNAVAILABLE = 1
"""``max_unavailable`` when not set."""

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "strategy",
        "choice",
        "how the engine picks a machine for a unit: binpack (the fullest that fits) or "
        "spread (the least loaded)",
        choices=STRATEGIES,
    ),
    Setting(
        "max_unavailable",
        "int",
        "machines taken down at once for reboot requests, and by fleetctl reboot without "
        "--max-unavailable",
        low=1,
        high=10_000,
    ),
    Setting(
        "guard_machines",
        "int",
        "mass-loss guard: at least this many machines vanishing together hold their units",
        low=1,
        high=1_000_000,
    ),
    Setting(
        "guard_share",
        "float",
        "mass-loss guard: ... and at least this share of all machines (0 to 1)",
        low=0.0,
        high=1.0,
    ),
    Setting(
        "guard_window",
        "float",
        "mass-loss guard: ... within this many seconds of each other (default: agent_ttl)",
        low=0.0,
        high=DAY,
    ),
    Setting(
        "guard_hold",
        "float",
        "mass-loss guard: seconds their units wait for them to register again, from the "
        "last to vanish; also a new leader's wait (default: agent_ttl + 5)",
        low=0.0,
        high=DAY,
    ),
)
BY_NAME: Mapping[str, Setting] = {s.name: s for s in SETTINGS}
NAMES = tuple(BY_NAME)


def setting(name: str) -> Setting:
    """The setting called ``name`` (InvalidInput naming the known ones if none is)."""
    found = BY_NAME.get(name)
    if found is None:
        raise InvalidInput(f"unknown cluster setting {name!r} (known: {', '.join(NAMES)})")
    return found


def check(name: str, value: object) -> Value:
    """``value`` for setting ``name`` if it has the right type and range (an int is a
    float too), else InvalidInput saying what it must be."""
    s = setting(name)
    bad = InvalidInput(f"cluster setting {name} must be {s.describe()}, got {value!r}")
    if s.kind == "choice":
        if not isinstance(value, str) or value not in s.choices:
            raise bad
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad
    if s.kind == "int" and not isinstance(value, int):
        raise bad
    if not math.isfinite(value) or not s.low <= value <= s.high:
        raise bad
    return value if s.kind == "int" else float(value)


def parse(name: str, text: str) -> Value:
    """A value typed on a command line (``fleetctl config set NAME TEXT``), checked."""
    s = setting(name)
    raw = text.strip()
    if s.kind == "choice":
        return check(name, raw)
    try:
        number: int | float = int(raw) if s.kind == "int" else float(raw)
    except ValueError:
        raise InvalidInput(f"cluster setting {name} must be {s.describe()}, got {text!r}") from None
    return check(name, number)


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """``cluster/settings``: the settings set (None: not set, its default applies)."""

    strategy: str | None = None
    max_unavailable: int | None = None
    guard_machines: int | None = None
    guard_share: float | None = None
    guard_window: float | None = None
    guard_hold: float | None = None

    def __post_init__(self) -> None:
        for name, value in self.values().items():
            check(name, value)

    def values(self) -> dict[str, Value]:
        """The settings that are set, by name."""
        found: dict[str, Value] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                found[f.name] = value
        return found

    def changed(self, changes: Mapping[str, Value | None]) -> ClusterSettings:
        """These settings with ``changes`` (None: back to the default), each checked."""
        checked: dict[str, Value | None] = {}
        for name, value in changes.items():
            checked[name] = None if value is None else check(name, value)
        return replace(self, **checked)  # type: ignore[arg-type]

    def effective(self, defaults: Mapping[str, Value]) -> dict[str, Value]:
        """Every setting's value: the one set, else its default from ``defaults``."""
        chosen = self.values()
        return {name: chosen.get(name, defaults[name]) for name in NAMES}


def from_values(values: Mapping[str, object]) -> ClusterSettings:
    """Settings from name -> value (unknown names and bad values: InvalidInput)."""
    return ClusterSettings().changed({n: check(n, v) for n, v in values.items()})
