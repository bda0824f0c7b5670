"""What a user may do to a running rollout: pause, resume, promote, abort (pure).

``controlled(record, action, who, now)`` is the record after the action, the
record itself when the action changes nothing (pausing a paused rollout),
or Conflict naming why the action does not apply in the record's phase.
The driver honours the new phase at its next step: a paused rollout starts
no new target (those in flight are still followed, and may still fail it),
an aborted one is left as it is.
"""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum

from fleetd.errors import Conflict
from fleetd.rollouts.record import Phase, Rollout


class Control(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    PROMOTE = "promote"
    ABORT = "abort"


def controlled(record: Rollout, action: Control, who: str, now: float) -> Rollout:
    """``record`` after ``action`` by ``who`` at wall time ``now`` (see the module doc)."""
    if not record.active:
        raise Conflict(
            f"the rollout of {record.unit} has ended ({record.phase}): nothing to {action}"
        )
    if action is Control.PAUSE:
        if record.phase is Phase.PAUSED:
            return record
        if record.phase is Phase.AWAITING_PROMOTION:
            raise Conflict(
                f"the rollout of {record.unit} awaits a promotion: it starts nothing until then"
            )
        changed = replace(record, phase=Phase.PAUSED, message=f"paused by {who}")
    elif action is Control.RESUME:
        if record.phase is not Phase.PAUSED:
            return record
        phase = Phase.REVERTING if record.reverting else Phase.RUNNING
        changed = replace(record, phase=phase, message=f"resumed by {who}")
    elif action is Control.PROMOTE:
        if record.options.canary == 0 or record.promoted or record.reverting:
            raise Conflict(f"the rollout of {record.unit} has no canaries awaiting a promotion")
        phase = Phase.RUNNING if record.phase is Phase.AWAITING_PROMOTION else record.phase
        changed = replace(record, phase=phase, promoted=True, message=f"promoted by {who}")
    else:
        changed = replace(record, phase=Phase.ABORTED, message=f"aborted by {who}")
    return replace(changed, updated=now)
