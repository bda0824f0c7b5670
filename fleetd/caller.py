"""Who asked for a change: the value every write that is recorded carries (pure).

The API's authentication layer (api/auth.py) decides the caller of each
request: the name of the token it presented, ``unix socket`` for the local
socket (guarded by its file mode), ``anonymous`` on a TCP listener with
authentication disabled.  ``fleetctl --driver etcd`` writes the registry
directly and names itself ``etcd driver (user@host)`` (cli/backend.py).  The name is what a
unit version records as its author; the role is what the caller may do.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

MAX_NAME = 200


class Role(IntEnum):
    """What a caller may do; each role includes the ones below it.

    ``read``: every GET (units, states, machines, events, status, journal,
    metrics); ``operate``: also desired-state changes (start, stop, load, unload,
    restart) and cordon/uncordon/drain; ``admin``: also unit files (submit,
    replace, destroy) and machine metadata.
    """

    READ = 1
    OPERATE = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, word: str) -> Role:
        """``read``/``operate``/``admin`` -> Role; ValueError naming the choices."""
        try:
            return cls[word.strip().upper()]
        except KeyError:
            choices = ", ".join(r.label for r in cls)
            raise ValueError(f"unknown role {word!r} (choose {choices})") from None


@dataclass(frozen=True, slots=True)
class Caller:
    """``name``: who (a token's name, ``unix socket``, ...); ``remote``: the client's
    address when it came over the network (empty otherwise); ``role``: what it may do
    (the token's role; the unix socket and the etcd driver have every right)."""

    name: str
    remote: str = ""
    role: Role = Role.ADMIN

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a caller needs a name")
        # A name ends up in the registry and in every history listing: keep it short.
        object.__setattr__(self, "name", self.name[:MAX_NAME])
        object.__setattr__(self, "remote", self.remote[:MAX_NAME])


UNIX_SOCKET = Caller("unix socket")
ANONYMOUS = "anonymous"
"""The caller's name on a TCP listener with authentication disabled."""
UNIDENTIFIED = Caller("unidentified")
"""The caller of a request that reached the app without any authentication layer
(only in-process: every listener fleetd serves has one)."""
