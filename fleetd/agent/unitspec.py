"""What systemd makes of a unit file, as far as the fake systemd needs it (pure).

Parsing is lenient the way systemd's is: a line that is not ``key=value`` in
a section is ignored, ``#``/``;`` start comments, a trailing backslash
continues a line.  A file systemd would refuse to load gets the load state it
would get (``bad-setting``): a service without ``ExecStart=``/``ExecStop=``
(or with several ``ExecStart=`` outside ``Type=oneshot``), a timer without
any trigger.

A started unit's program is judged by the base name of ``ExecStart``'s
first command: ``true`` exits 0 at once, ``false`` exits 1 at once, anything
else runs until it is stopped.
"""

from __future__ import annotations

import contextlib
import shlex
from dataclasses import dataclass

from fleetd.errors import FleetError
from fleetd.unitname import UnitName, expand_specifiers

_TIMER_TRIGGERS = frozenset(
    {
        "OnActiveSec",
        "OnBootSec",
        "OnStartupSec",
        "OnUnitActiveSec",
        "OnUnitInactiveSec",
        "OnCalendar",
    }
)
# The state of a started unit that has nothing to run, by unit type.
_IDLE_ACTIVE = {"timer": "waiting", "socket": "listening", "path": "waiting", "mount": "mounted"}
_EXIT_CODES = {"true": 0, "false": 1}
_INSTALL = {"WantedBy": "wants", "RequiredBy": "requires"}


@dataclass(frozen=True, slots=True)
class UnitSpec:
    name: str
    kind: str  # the type suffix without its dot: service, timer...
    load_state: str  # loaded, bad-setting, masked
    description: str
    service_type: str = "simple"
    remain_after_exit: bool = False
    program: str = ""  # base name of the first ExecStart command
    install: tuple[tuple[str, str], ...] = ()  # (target, "wants" | "requires")

    @property
    def oneshot(self) -> bool:
        return self.kind == "service" and self.service_type == "oneshot"


def sections(text: str) -> dict[str, list[tuple[str, str]]]:
    """``[Section]`` -> ``(key, value)`` in file order, parsed as leniently as systemd."""
    found: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = found.setdefault(line[1:-1], [])
        elif "=" in line and current is not None:
            key, _, value = line.partition("=")
            current.append((key.strip(), value.strip()))
    return found


def _last(options: list[tuple[str, str]], key: str, default: str = "") -> str:
    values = [v for k, v in options if k == key]
    return values[-1] if values else default


def _program(exec_start: str) -> str:
    try:
        argv = shlex.split(exec_start.lstrip("-@:+!"))
    except ValueError:
        return ""
    return argv[0].rsplit("/", 1)[-1] if argv else ""


def read_unit(name: str, text: str, *, masked: bool = False) -> UnitSpec:
    """The unit ``name`` as systemd would load it from ``text``."""
    unit_name = UnitName.parse(name)
    kind = unit_name.type
    if masked:
        return UnitSpec(name, kind, "masked", name)
    found = sections(text)
    unit = found.get("Unit", [])
    description = _last(unit, "Description", name)
    with contextlib.suppress(FleetError):  # systemd then keeps the text as it is
        description = expand_specifiers(description, unit_name)
    install = tuple(
        (target, _INSTALL[key])
        for key, value in found.get("Install", [])
        if key in _INSTALL
        for target in value.split()
    )
    load_state = "loaded"
    service = found.get("Service", [])
    service_type = _last(service, "Type", "simple")
    starts = [v for k, v in service if k == "ExecStart" and v]
    if kind == "service":
        stops = [v for k, v in service if k == "ExecStop" and v]
        if (not starts and not stops) or (len(starts) > 1 and service_type != "oneshot"):
            load_state = "bad-setting"
    elif kind == "timer" and not any(k in _TIMER_TRIGGERS for k, _ in found.get("Timer", [])):
        load_state = "bad-setting"
    return UnitSpec(
        name,
        kind,
        load_state,
        description,
        service_type=service_type,
        remain_after_exit=_last(service, "RemainAfterExit", "no").lower()
        in ("yes", "true", "1", "on"),
        program=_program(starts[0]) if starts else "",
        install=install,
    )


def started_state(spec: UnitSpec) -> tuple[str, str, int | None]:
    """``(active state, sub state, exit code)`` right after a start: the code is None
    while the unit's program keeps running (or it has none)."""
    if spec.kind != "service":
        return "active", _IDLE_ACTIVE.get(spec.kind, "active"), None
    return "active", "running", _EXIT_CODES.get(spec.program)
