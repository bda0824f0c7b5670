"""One exception tree for the whole project.

Every boundary (etcd, D-Bus, HTTP, the filesystem) translates the errors of
the library it wraps into one of these, keeping the original as ``__cause__``
(``raise RegistryUnavailable(...) from exc``).  Callers above a boundary
catch only these types.

The HTTP boundary is one table, ``HTTP_STATUSES``: the API answers an error
with ``http_status(exc)``, and its clients (fleetctl, a fleetd forwarding to a
peer) turn the answer back into the same type with ``error_for_status``.
"""

from __future__ import annotations

from typing import Final


class FleetError(Exception):
    """Base of every error fleetd raises on purpose."""


class InvalidInput(FleetError):
    """Input from a user was rejected; the message says why and nothing was changed."""


class InvalidUnitName(InvalidInput):
    """A unit name breaks one of systemd's naming rules (the message names the rule)."""


class InvalidUnitFile(InvalidInput):
    """A unit file could not be parsed."""


class InvalidRequirements(InvalidInput):
    """The ``[X-Fleet]`` section has an unknown key, a bad value or a forbidden combination."""


class ConfigError(InvalidInput):
    """A configuration value is invalid (the message names the option)."""


class NotFound(FleetError):
    """A unit, machine or key that was asked for does not exist."""


class Conflict(FleetError):
    """A write lost a compare-and-swap race or would replace something it must not."""


class Unauthenticated(FleetError):
    """A request carried no valid credentials (a missing or wrong token)."""


class Forbidden(FleetError):
    """The caller is known but its role does not allow the request."""


class Unavailable(FleetError):
    """Something the request needs cannot answer now; the same request may succeed later."""


class PeerUnreachable(Unavailable):
    """Another machine's fleetd, asked on the caller's behalf, could not be reached or failed."""


class ApiError(FleetError):
    """An HTTP answer whose status no other type of this tree stands for (``status``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class RegistryError(FleetError):
    """Base of errors from the registry (etcd or the in-memory fake)."""


class RegistryUnavailable(RegistryError, Unavailable):
    """The registry could not be reached; retry later."""


class LeaseExpired(RegistryError):
    """A lease that was relied upon no longer exists."""


class NotLeader(RegistryError):
    """A fenced engine write was refused because this process is not the leader."""


class WatchCompacted(RegistryError):
    """A watch could not resume because its revision was compacted; re-read and re-watch."""


class SystemdError(FleetError):
    """A D-Bus call to systemd failed; ``name`` is the D-Bus error name systemd returned."""

    def __init__(self, message: str, name: str = "") -> None:
        super().__init__(message)
        self.name = name


class SystemdUnavailable(SystemdError, Unavailable):
    """The connection to systemd's D-Bus API is down; reconnect and retry later."""


class SandboxError(FleetError):
    """The local sandbox cluster could not be created, used or removed."""


class EtcdBinaryNotFound(FleetError):
    """No etcd binary could be found for the embedded etcd."""


HTTP_STATUSES: Final[tuple[tuple[type[FleetError], int], ...]] = (
    (Unauthenticated, 401),
    (Forbidden, 403),
    (InvalidInput, 400),
    (NotFound, 404),
    (Conflict, 409),
    (PeerUnreachable, 502),
    (Unavailable, 503),
    (NotLeader, 503),
)
"""Each error type and the HTTP status it is answered with; the first match wins, so a
subtype comes before its base.  Any other ``FleetError`` is a 500."""

# Statuses fleetd's API answers without a type of its own (its body guards refuse a
# body too large or not JSON; a proxy may time out): read back as the nearest type.
_READ_AS: Final[dict[int, type[FleetError]]] = {
    413: InvalidInput,
    415: InvalidInput,
    504: Unavailable,
}


def http_status(exc: FleetError) -> int:
    """The HTTP status the API answers ``exc`` with."""
    if isinstance(exc, ApiError):
        return exc.status
    for kind, status in HTTP_STATUSES:
        if isinstance(exc, kind):
            return status
    return 500


def error_for_status(status: int, message: str) -> FleetError:
    """The error an HTTP answer with ``status`` (>= 400) stands for: the type the API
    answers that status for, else an ``ApiError`` that keeps the status."""
    for kind, answered in HTTP_STATUSES:
        if answered == status:
            return kind(message)
    nearest = _READ_AS.get(status)
    return nearest(message) if nearest is not None else ApiError(status, message)
