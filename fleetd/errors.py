"""One exception tree for the whole project.

Every boundary (etcd, D-Bus, HTTP, the filesystem) translates the errors of
the library it wraps into one of these, keeping the original as ``__cause__``
(``raise RegistryUnavailable(...) from exc``).  Callers above a boundary
catch only these types.
"""

from __future__ import annotations


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


class RegistryError(FleetError):
    """Base of errors from the registry (etcd or the in-memory fake)."""


class RegistryUnavailable(RegistryError):
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


class SystemdUnavailable(SystemdError):
    """The connection to systemd's D-Bus API is down; reconnect and retry later."""


class SandboxError(FleetError):
    """The local sandbox cluster could not be created, used or removed."""


class EtcdBinaryNotFound(FleetError):
    """No etcd binary could be found for the embedded etcd."""
