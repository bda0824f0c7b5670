"""Who asked for a change: the value every write that is recorded carries (pure).

The API's authentication layer (api/auth.py) decides the caller of each
request: the name of the token it presented, ``unix socket`` for the local
socket (guarded by its file mode), ``anonymous`` on a TCP listener with
authentication disabled.  ``fleetctl --driver etcd`` writes the registry
directly and names itself ``etcd driver (user@host)``.  The name is what a
unit version records as its author.
"""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass

MAX_NAME = 200


@dataclass(frozen=True, slots=True)
class Caller:
    """``name``: who (a token's name, ``unix socket``, ...); ``remote``: the client's
    address when it came over the network (empty otherwise)."""

    name: str
    remote: str = ""

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


def etcd_driver() -> Caller:
    """``fleetctl --driver etcd``: the local user and host, as honestly as they are known."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid {os.getuid()}"
    return Caller(f"etcd driver ({user}@{socket.gethostname()})")
