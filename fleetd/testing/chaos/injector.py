"""The nemesis's hands: each ``FaultKind`` applied to a sandbox and undone, with the
sandbox's own fault tools (``Sandbox.partition``/``cut``/``heal``, ``poweroff``/
``boot``, ``kill_fleetd``, and ``fleetd.sandbox.faults`` for SIGSTOP/SIGCONT and the
etcd members of ``--etcd-members 3``).

``inject`` returns what it hit; ``undo`` puts it back and waits (bounded) until a
killed fleetd runs again and etcd is healthy, so the next fault starts from a whole
cluster; how long that took goes in the details.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fleetd.errors import FleetError
from fleetd.sandbox import Sandbox, faults
from fleetd.sandbox import etcd as sandbox_etcd
from fleetd.sandbox.cuts import Cut
from fleetd.testing.chaos.nemesis import FaultKind, Step

RECOVER = 60.0  # at most this long waiting for etcd or fleetd after undoing a fault


@dataclass
class Injected:
    step: Step
    machines: tuple[str, ...]
    details: dict[str, object] = field(default_factory=dict)


class Injector:
    def __init__(self, sandbox: Sandbox, leader: Callable[[], str | None]) -> None:
        self.sandbox = sandbox
        self.leader = leader  # the machine whose engine leads, None if unknown
        self.names = [m.name for m in sandbox.machines]

    def _resolve(self, target: str) -> tuple[str, ...]:
        if target == "all":
            return tuple(self.names)
        if target in ("leader", "follower"):
            leader = self.leader() or self.names[0]
            if target == "leader":
                return (leader,)
            return (next(n for n in self.names if n != leader),)
        return (target,)

    def inject(self, step: Step) -> Injected:
        """Apply ``step``'s fault.  A sandbox error is kept in the details (the fault may
        have half happened: a machine powered off whose cgroup stayed busy), and the
        fault is undone as any other."""
        done = Injected(step, self._resolve(step.target))
        for m in done.machines:
            try:
                self._inject(step, m, done)
            except FleetError as exc:
                done.details["error"] = str(exc)
        return done

    def _inject(self, step: Step, m: str, done: Injected) -> None:
        sb = self.sandbox
        match step.kind:
            case FaultKind.KILL_FLEETD:
                done.details["pid"] = faults.fleetd_pid(sb, m)
                sb.kill_fleetd(m)
            case FaultKind.PAUSE_LEADER:
                faults.signal_fleetd(sb, m, "STOP")
            case FaultKind.PARTITION:
                sb.partition(m)
            case FaultKind.PARTITION_ETCD_ALL:
                sb.cut(m, Cut.ETCD_CLIENTS)
            case FaultKind.PARTITION_ETCD_MEMBER:
                sb.cut(m, Cut.ETCD_PEERS)
            case FaultKind.POWEROFF:
                sb.poweroff(m)
            case FaultKind.KILL_ETCD_MEMBER:
                faults.etcd_member(sb, m, "kill")
                faults.etcd_member(sb, m, "stop")  # no automatic restart: it stays down

    def undo(self, injected: Injected) -> None:
        sb = self.sandbox
        began = time.monotonic()
        for m in injected.machines:
            match injected.step.kind:
                case FaultKind.KILL_FLEETD:
                    self._wait(m, injected.details.get("pid"))
                case FaultKind.PAUSE_LEADER:
                    faults.signal_fleetd(sb, m, "CONT")
                case FaultKind.POWEROFF:
                    try:
                        sb.boot(m, timeout=RECOVER)
                    except FleetError as exc:  # booted, but fleetd did not register in time
                        injected.details["boot"] = str(exc)
                case FaultKind.KILL_ETCD_MEMBER:
                    faults.etcd_member(sb, m, "start")
                case _:
                    sb.heal(m)
        try:
            sandbox_etcd.wait_healthy(sb.etcd_endpoints, RECOVER)
        except FleetError as exc:
            injected.details["etcd"] = str(exc)
        injected.details["recovered_in"] = round(time.monotonic() - began, 2)

    def _wait(self, machine: str, old: object) -> None:
        """Until systemd restarted the fleetd killed on ``machine`` (``old``: its PID)."""
        deadline = time.monotonic() + RECOVER
        while faults.fleetd_pid(self.sandbox, machine) in (0, old):
            if time.monotonic() > deadline:
                raise FleetError(f"fleetd on {machine} not restarted within {RECOVER:g}s")
            time.sleep(0.1)
