"""systemd's specifiers for a unit on a machine (``systemd.unit(5)``, "Specifiers") (pure).

``expand(value, name, host)`` replaces each ``%x`` as systemd (as the system
manager) would in a setting of unit ``name`` on the machine ``host``
describes.  Supported:

- the unit: ``%n`` full name, ``%N`` name without the type suffix, ``%p``
  prefix, ``%P`` unescaped prefix, ``%i`` instance, ``%I`` unescaped instance,
  ``%j`` the last ``-``-separated part of the prefix, ``%J`` it unescaped,
  ``%f`` the unescaped instance (else prefix) as a path;
- the machine: ``%H`` host name, ``%l`` short host name (up to the first
  dot), ``%m`` machine id, ``%b`` boot id, ``%v`` kernel release;
- the system manager's directories: ``%t`` /run, ``%S`` /var/lib,
  ``%C`` /var/cache, ``%L`` /var/log, ``%E`` /etc, ``%T`` /tmp, ``%V`` /var/tmp;
- ``%%`` a literal ``%``.

Anything else (a user's specifier such as ``%u``, an unknown letter, a lone
``%`` at the end) raises InvalidInput naming it.  Unescaping is systemd's:
``\\xNN`` is the byte NN and ``-`` is ``/``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from fleetd.errors import InvalidInput
from fleetd.unitname import UnitName


@dataclass(frozen=True, slots=True)
class HostFacts:
    """What the machine-dependent specifiers expand to on one machine."""

    hostname: str
    machine_id: str
    boot_id: str
    kernel_release: str


PLACEHOLDER_HOST = HostFacts(
    hostname="localhost", machine_id="0" * 32, boot_id="0" * 32, kernel_release="0"
)
"""Stands for "some machine" when a value is checked before it is placed."""

_DIRECTORIES = {
    "t": "/run",
    "S": "/var/lib",
    "C": "/var/cache",
    "L": "/var/log",
    "E": "/etc",
    "T": "/tmp",
    "V": "/var/tmp",
}
SUPPORTED = "%n %N %p %P %i %I %j %J %f %H %l %m %b %v %t %S %C %L %E %T %V %%"
_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


def unescape(text: str) -> str:
    """systemd's ``unit_name_unescape``: ``-`` -> ``/``, ``\\xNN`` -> the byte NN."""
    raw = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text.replace("-", "/"))
    return raw.encode("latin-1", "backslashreplace").decode("utf-8", "replace")


def _path(text: str) -> str:
    """systemd's ``unit_name_path_unescape``: ``-`` is ``/``, else ``/`` + unescaped."""
    if text in ("", "-"):
        return "/"
    return "/" + unescape(text).strip("/")


def _table(name: UnitName, host: HostFacts) -> dict[str, Callable[[], str]]:
    last = name.prefix.rpartition("-")[2]
    return {
        "n": lambda: name.name,
        "N": lambda: name.stem,
        "p": lambda: name.prefix,
        "P": lambda: unescape(name.prefix),
        "i": lambda: name.instance,
        "I": lambda: unescape(name.instance),
        "j": lambda: last,
        "J": lambda: unescape(last),
        "f": lambda: _path(name.instance or name.prefix),
        "H": lambda: host.hostname,
        "l": lambda: host.hostname.partition(".")[0],
        "m": lambda: host.machine_id,
        "b": lambda: host.boot_id,
        "v": lambda: host.kernel_release,
        "%": lambda: "%",
        **{k: _constant(v) for k, v in _DIRECTORIES.items()},
    }


def _constant(value: str) -> Callable[[], str]:
    return lambda: value


def expand(value: str, name: UnitName, host: HostFacts) -> str:
    """``value`` with its specifiers replaced; raises InvalidInput for an unsupported one."""
    if "%" not in value:
        return value
    table = _table(name, host)
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch != "%":
            out.append(ch)
            i += 1
            continue
        if i + 1 == len(value):
            raise InvalidInput(f"{value!r} ends with a lone '%' (write %% for a literal %)")
        spec = value[i + 1]
        if spec not in table:
            raise InvalidInput(f"unsupported specifier %{spec} (supported: {SUPPORTED})")
        out.append(table[spec]())
        i += 2
    return "".join(out)
