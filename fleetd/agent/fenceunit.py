"""The units through which systemd fences on its own (``UnitManager.arm_fence``).

A fence is a *transient* timer with a oneshot service, started together with
``StartTransientUnit``: ``<fence name>-<token>.timer`` with
``OnActiveSec=<within>`` (a monotonic timer: counted from its start, immune
to wall-clock jumps) runs ``<fence name>-<token>.service``, which is
``systemctl stop --no-block -- <units>``.  Nothing is written to disk and
systemd needs no reload; transient units vanish with /run at a reboot.

Re-arming starts a new pair under a new token, then stops the older timers
(found by the pattern ``<fence name>-*.timer``).  If this process dies
between the two steps both stay armed and the earlier fires first, which is
the safe side.  An old timer left armed by a dead process keeps running until
a new process re-arms (or disarms): that is the point of it.

``systemctl stop`` of several units stops every unit it can even if one is
unknown (it then exits 5); the service ignores the exit status, so a fence
that fired leaves no failed unit behind.

The fence name derives from the agent's units directory, so that two agents on
one machine (a test's agent beside fleetd) keep apart fences.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Sequence
from typing import Any

from dbus_fast import Variant

from fleetd.errors import InvalidInput

SYSTEMCTL = "/bin/systemctl"
ACCURACY_USEC = 10_000
"""The timer fires at most this much after its deadline (systemd's ``AccuracySec``)."""
UNIT_EXISTS = "org.freedesktop.systemd1.UnitExists"


def fence_name_for(units_directory: str) -> str:
    """``fleetd-fence-<8 hex of a hash of the units directory>``."""
    digest = hashlib.sha256(units_directory.encode()).hexdigest()[:8]
    return f"fleetd-fence-{digest}"


def fence_pattern(fence_name: str) -> str:
    """The glob matching every fence timer of ``fence_name``."""
    return f"{fence_name}-*.timer"


def new_timer_name(fence_name: str) -> str:
    return f"{fence_name}-{secrets.token_hex(4)}.timer"


def stop_argv(names: Sequence[str]) -> list[str]:
    """What the fence service runs."""
    return [SYSTEMCTL, "stop", "--no-block", "--", *names]


def transient_fence(timer: str, names: Sequence[str], within: float) -> list[Any]:
    """The arguments of ``StartTransientUnit`` (signature ``ssa(sv)a(sa(sv))``) for a
    fence ``timer`` that stops ``names`` ``within`` seconds after it starts."""
    if not names:
        raise InvalidInput("a fence needs at least one unit to stop")
    if not math.isfinite(within) or within < 0:
        raise InvalidInput(f"a fence deadline must be a time from now, got {within!r}")
    service = timer.removesuffix(".timer") + ".service"
    what = f"fleetd fence: stop {len(names)} AtMostOnce unit(s) unless fleetd renews its lease"
    usec = max(1, round(within * 1_000_000))
    timer_properties = [
        ["Description", Variant("s", what)],
        ["TimersMonotonic", Variant("a(st)", [["OnActiveSec", usec]])],
        ["AccuracyUSec", Variant("t", ACCURACY_USEC)],
        ["RemainAfterElapse", Variant("b", False)],
    ]
    argv = stop_argv(names)
    service_properties = [
        ["Description", Variant("s", what)],
        ["Type", Variant("s", "oneshot")],
        ["ExecStart", Variant("a(sasb)", [[argv[0], argv, True]])],
    ]
    return [timer, "fail", timer_properties, [[service, service_properties]]]
