"""When the engine plans everything: timers, the budgeted safety pass, a settled model.

Events get a scoped pass, and so do the timers of units on the move: the look
at AtMostOnce units being stopped (``poll_at``: those seen stopped are placed),
the end of a held AtMostOnce unit's grace period (``grace_at``: it is placed),
the next drain batch (``drain_due``) and the look at start-first moves, move
requests and units waiting for a disruption budget (``look_at``: every scoped
pass plans those units, see ClusterModel.unsettled).  A full pass runs when
the mass-loss guard ends (``wake_at``) and as a safety pass that catches
whatever the scoped passes missed: at least ``interval`` seconds apart,
stretched so that it costs at most ``safety_budget`` of a core.  Once a full
pass found nothing to do and the model has not changed since, another one
would plan the same input (the plan is a pure function, and time enters it
only through the timers above), so the safety pass then waits
``idle_interval`` (an insurance against a change the engine failed to
notice).

Pure bookkeeping: the engine passes the time in, and counts model changes
here (``changed``).
"""

from __future__ import annotations

from fleetd.engine.changes import Cause, FullReason
from fleetd.engine.plan import Plan
from fleetd.engine.settings import EngineSettings


class Cadence:
    """The engine's timers and when its last full pass ran (one per leadership term)."""

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self.full_at = float("-inf")  # when the last full pass started
        self.full_seconds = 0.0  # how long it took
        self.wake_at: float | None = None  # the mass-loss guard ends
        self.poll_at: float | None = None  # to look whether stopping units stopped
        self.grace_at: float | None = None  # a held AtMostOnce unit's grace period ends
        self.drain_due: float | None = None  # the next drain batch is due
        self.look_at: float | None = None  # to look whether units moving are up
        self.changes = 0  # model changes (mirrors, own writes, failed passes)
        self.settled = -1  # ``changes`` when a full pass last found nothing to do

    def changed(self) -> None:
        """The model changed (a settled model is settled no more)."""
        self.changes += 1

    @property
    def is_settled(self) -> bool:
        """Whether the last full pass found nothing to do and nothing changed since."""
        return self.settled == self.changes

    def wait(self, now: float) -> float:
        """Seconds until the next full pass is due (0: it is)."""
        due = min(d for d in (self._safety_at(), self.wake_at, *self._scoped()) if d is not None)
        return max(0.0, due - now)

    def _scoped(self) -> tuple[float | None, ...]:
        return (self.poll_at, self.grace_at, self.drain_due, self.look_at)

    def polls_first(self) -> bool:
        """Whether the next wake-up (``wait``) is for a scoped pass (stopping units, the
        end of a grace period, a drain batch, a look at units on the move), before
        anything else is due."""
        first = min((t for t in self._scoped() if t is not None), default=None)
        if first is None:
            return False
        due = (self._safety_at(), self.wake_at)
        return all(first < d for d in due if d is not None)

    def due(self, now: float) -> FullReason | None:
        """Why a full pass is due at ``now``, or None."""
        if self.wake_at is not None and now >= self.wake_at:
            return FullReason(Cause.TIMER, "the mass-loss guard ends")
        if now >= self._safety_at():
            return FullReason(Cause.SAFETY, self._safety_kind())
        return None

    def drain_batch(self, now: float) -> int:
        """How many units a pass starting at ``now`` may take off draining machines."""
        due = self.drain_due is None or now >= self.drain_due
        return self.settings.drain_batch if due else 0

    def passed(
        self,
        now: float,
        result: Plan,
        *,
        full: bool,
        seconds: float,
        changes: int,
        stopping: bool,
        moving: bool = False,
    ) -> None:
        """Record a pass that started at ``now`` (``changes`` then) and took ``seconds``.

        ``stopping``: AtMostOnce units are being stopped (their states are not
        watched: the engine looks again after ``stop_poll``, with a scoped pass).
        ``moving``: units move start-first, are asked to move, or wait for a disruption
        budget (a scoped pass looks again after ``move_poll``)."""
        s = self.settings
        # More may be left to drain: the next batch is due after drain_interval (a scoped
        # pass plans every unit of a draining machine, as a full one does).
        self.drain_due = now + s.drain_interval if result.drained else None
        if full:
            self.full_at, self.full_seconds = now, seconds
            self.wake_at = result.guard_until
            if not result.tasks and changes == self.changes and not (stopping or moving):
                self.settled = changes
        elif result.guard_until is not None:
            self.wake_at = min(result.guard_until, self.wake_at or result.guard_until)
        self.poll_at = now + s.stop_poll if stopping else None
        self.look_at = now + s.move_poll if moving else None

    def _safety_at(self) -> float:
        s = self.settings
        gap = max(s.interval, self.full_seconds / s.safety_budget)
        if self.is_settled:
            gap = max(gap, s.idle_interval)
        return self.full_at + gap

    def _safety_kind(self) -> str:
        if self.full_at == float("-inf"):
            return "no full pass yet"
        if self.is_settled:
            return "insurance pass of a settled model"
        return "safety pass"
