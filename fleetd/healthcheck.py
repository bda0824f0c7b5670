"""A unit's health check: the ``HealthCheck*`` keys of ``[X-Fleet]`` (pure).

- ``HealthCheck=http://HOST[:PORT]/PATH``: an HTTP/1.1 GET; a 2xx or 3xx answer
  is healthy (port 80 when none is given; the path may carry a query).
- ``HealthCheck=tcp://HOST:PORT``: a TCP connection can be opened.
- ``HealthCheck=exec:COMMAND ARGS``: the command exits 0.  It runs without a
  shell; the arguments are split as systemd splits ``ExecStart=``
  (``fleetd.commandline``); a bare command name is looked up in systemd's
  default ``PATH``.
- ``HealthCheckInterval=`` (default 5s, at least 100ms), ``HealthCheckTimeout=``
  (default 2s), ``HealthCheckGrace=`` (default 0: how long after the unit
  became active failures do not count): systemd time spans (``fleetd.timespan``).

As in systemd the last assignment of a key wins and an empty one resets it
(``HealthCheck=`` alone: no check).  Specifiers (``fleetd.specifiers``) are
expanded for the unit on the machine that runs the check, so ``%H`` is that
machine's host name and ``%i`` the instance; in an ``exec:`` command each
argument is expanded after splitting.  A submission is checked with a
placeholder machine (and, for a template, instance ``1``): anything that could
never be valid is refused naming the key.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from fleetd import specifiers
from fleetd.commandline import split_command
from fleetd.errors import InvalidInput, InvalidRequirements
from fleetd.specifiers import HostFacts
from fleetd.timespan import parse_timespan
from fleetd.unitfile import UnitFile
from fleetd.unitname import UnitName

HEALTH_KEYS = ("HealthCheck", "HealthCheckInterval", "HealthCheckTimeout", "HealthCheckGrace")
DEFAULT_INTERVAL = 5.0
DEFAULT_TIMEOUT = 2.0
DEFAULT_GRACE = 0.0
MIN_INTERVAL = 0.1
FORMS = "http://HOST:PORT/PATH, tcp://HOST:PORT or exec:COMMAND ARGS"
_LABEL = r"[A-Za-z0-9_][A-Za-z0-9_-]{0,62}"
_HOSTNAME = re.compile(rf"{_LABEL}(\.{_LABEL})*\.?")


@dataclass(frozen=True, slots=True)
class HttpProbe:
    host: str  # a name or an address (IPv6 without brackets)
    port: int
    target: str  # path and query: what follows GET

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.target}"


@dataclass(frozen=True, slots=True)
class TcpProbe:
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ExecProbe:
    argv: tuple[str, ...]

    def __str__(self) -> str:
        return "exec:" + " ".join(self.argv)


Probe = HttpProbe | TcpProbe | ExecProbe


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """``check`` is the ``HealthCheck=`` value as written (specifiers not expanded);
    durations in seconds."""

    check: str
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    grace: float = DEFAULT_GRACE

    def probe(self, name: UnitName, host: HostFacts) -> Probe:
        """What to check for unit ``name`` on machine ``host``; InvalidRequirements if the
        value, expanded there, is not a valid check."""
        try:
            return parse_probe(self.check, name, host)
        except InvalidInput as exc:
            raise InvalidRequirements(f"HealthCheck={self.check}: {exc}") from exc


def parse_probe(value: str, name: UnitName, host: HostFacts) -> Probe:
    """Parse a ``HealthCheck=`` value for unit ``name`` on ``host``; raises InvalidInput."""
    written, sep, rest = value.partition(":")
    scheme = written.lower()
    if not sep or scheme not in ("http", "tcp", "exec"):
        shown = written if sep else value
        raise InvalidInput(f"unknown scheme {shown!r} (use {FORMS})")
    if scheme == "exec":
        argv = tuple(specifiers.expand(a, name, host) for a in split_command(rest))
        if not argv or not argv[0]:
            raise InvalidInput("empty command (write exec:COMMAND ARGS)")
        return ExecProbe(argv)
    url = f"{scheme}:{specifiers.expand(rest, name, host)}"
    if not url.startswith(f"{scheme}://"):
        raise InvalidInput(f"expected {scheme}://HOST:PORT")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(_port_problem(url, exc)) from exc
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("user names and passwords are not supported in the URL")
    if parts.fragment or url.endswith("#"):
        raise InvalidInput("a URL fragment (#...) has no meaning here")
    host_part = _host(parts.hostname or "")
    if scheme == "tcp":
        if parts.path or parts.query:
            raise InvalidInput("tcp:// takes HOST:PORT only (no path)")
        if port is None:
            raise InvalidInput("tcp:// needs a port (tcp://HOST:PORT)")
        return TcpProbe(host_part, _port(port))
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    if any(c.isspace() or not c.isprintable() for c in target):
        raise InvalidInput(f"the path {target!r} holds a blank or control character")
    return HttpProbe(host_part, _port(port if port is not None else 80), target)


def _host(host: str) -> str:
    if not host:
        raise InvalidInput("no host (write 127.0.0.1 for this machine)")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _HOSTNAME.fullmatch(host) or len(host) > 253:
        raise InvalidInput(f"bad host {host!r}")
    return host


def _port(port: int) -> int:
    if not 1 <= port <= 65535:
        raise InvalidInput(f"port {port} is out of range (1-65535)")
    return port


def _port_problem(url: str, exc: ValueError) -> str:
    netloc = url.split("://", 1)[1].split("/", 1)[0]
    port = netloc.rpartition("]")[2].rpartition(":")[2] if ":" in netloc else ""
    if port:
        return f"bad port {port!r} (a number 1-65535)"
    return f"bad URL: {exc}"


def read_health_check(
    unit: UnitFile, name: UnitName, notes: list[str] | None = None
) -> HealthCheck | None:
    """The health check of ``unit`` submitted as ``name`` (None without ``HealthCheck=``).

    Raises InvalidRequirements naming the key for a value that could not be
    valid on any machine; durations given without a check add a note.
    """
    values: dict[str, str] = {}
    for option in unit.section("X-Fleet"):
        if option.name in HEALTH_KEYS:
            values[option.name] = option.value.strip()
    interval = _duration(values, "HealthCheckInterval", DEFAULT_INTERVAL)
    if interval < MIN_INTERVAL:
        raise InvalidRequirements(
            f"HealthCheckInterval={values['HealthCheckInterval']}: must be at least 100ms"
        )
    timeout = _duration(values, "HealthCheckTimeout", DEFAULT_TIMEOUT)
    if timeout <= 0:
        raise InvalidRequirements(
            f"HealthCheckTimeout={values['HealthCheckTimeout']}: must be greater than 0"
        )
    grace = _duration(values, "HealthCheckGrace", DEFAULT_GRACE)
    check = values.get("HealthCheck", "")
    if not check:
        unused = [k for k in HEALTH_KEYS[1:] if values.get(k)]
        if unused and notes is not None:
            notes.append(f"{', '.join(unused)} without HealthCheck=: ignored (no check is run)")
        return None
    found = HealthCheck(check, interval, timeout, grace)
    sample = name.with_instance("1") if name.is_template else name
    found.probe(sample, specifiers.PLACEHOLDER_HOST)
    return found


def _duration(values: dict[str, str], key: str, default: float) -> float:
    raw = values.get(key, "")
    if not raw:
        return default
    try:
        return parse_timespan(raw)
    except InvalidInput as exc:
        raise InvalidRequirements(f"{key}={raw}: {exc}") from exc
