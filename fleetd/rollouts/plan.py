"""One step of a rollout: what the driver sees -> the writes to make, each with a reason (pure).

``plan_rollout(situation)`` takes a rollout record and what the engine leader
sees of its targets now, and returns the record as it should be after this
step plus the unit texts to write (``Task``).  The driver writes the texts
and then the record (engine leader only, fenced), and calls it again on
the next change or at ``wake_at``.

A step, for an active rollout:

1. the unit itself: destroyed (a Global or plain unit) or given another file
   outside the rollout: the rollout fails;
2. a template's launched instances whose hash differs join as pending targets
   (until the revert leg begins);
3. each target in flight moves on: ready (its machine runs the hash it was
   assigned, active and healthy) -> ``healthy``; ready for
   ``min_healthy_time`` -> ``done``; not done by ``started +
   healthy_deadline`` -> ``failed``; gone (destroyed, no longer launched, its
   machine gone, its file changed by someone else) -> ``skipped``;
4. a failed target fails the rollout, or with ``auto_revert`` (and always
   with ``start_first``) begins the revert leg: every target that was assigned
   the new hash goes back to its old one, rolling the same way (the unit's own
   text goes back first);
5. while ``running`` or ``reverting``: pending targets are assigned their
   hash, in name order, while fewer than ``max_parallel`` are in flight (and
   before a promotion, no more than ``canary`` in all);
6. the phase follows: ``awaiting-promotion`` once the canaries are done,
   ``succeeded``/``reverted`` once no target is pending or in flight.

A target's hash is assigned by writing its unit's text (a template's
instance, a plain unit) or, for a Global unit's machine, by a PIN: the unit
record lists the machines that keep another hash (``Rollout.pins()``), and
the engine schedules each machine with the hash it gives it.  A plain unit
rolled start-first is pinned where its old copy runs while its target is in
flight: the engine starts the new version elsewhere first and stops the old
copy once the new one is up (a start-first move); the pin goes once it is done.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from fleetd.rollouts.record import Kind, Phase, Rollout, State, Target


@dataclass(frozen=True, slots=True)
class Seen:
    """One target as the driver sees it now.

    ``assigned``: the hash it has now (its unit's file, or what its machine is
    scheduled with); ``ready``: its machine runs ``assigned``, active and healthy;
    ``detail``: what it is doing otherwise (for messages); ``gone``: why it is no
    longer a target (empty: it still is)."""

    assigned: str = ""
    ready: bool = False
    detail: str = ""
    gone: str = ""


GONE = Seen(gone="no longer exists")
NOT_UPDATED = "not updated"
"""Why a target is left alone by a revert: it never got the new file."""


@dataclass(frozen=True, slots=True)
class Situation:
    """Everything one step looks at.

    ``unit_hash``: the hash of the rolled unit's own file now (None: destroyed);
    ``candidates``: a template's launched instances and their hashes (targets that
    may join); ``seen``: each target by name (a missing one is gone); ``now``: wall
    seconds."""

    record: Rollout
    unit_hash: str | None
    seen: Mapping[str, Seen]
    now: float
    candidates: Mapping[str, str] | None = None


class Action(StrEnum):
    WRITE = "write"
    PIN = "pin"


@dataclass(frozen=True, slots=True)
class Task:
    """WRITE: the file with hash ``hash`` as unit ``unit``'s text (with a new version);
    PIN: the Global unit ``unit``'s machines keep the hashes ``Rollout.pins()`` gives
    them (in the same write as its text, if it has one)."""

    action: Action
    unit: str
    hash: str
    reason: str


@dataclass(frozen=True, slots=True)
class Step:
    """The record after this step (``changed``: it must be written), the texts to write
    before it, and the earliest time something is due without any change (None: none)."""

    record: Rollout
    tasks: tuple[Task, ...] = ()
    changed: bool = False
    wake_at: float | None = None


def plan_rollout(s: Situation) -> Step:
    """The next step of ``s.record`` (see the module doc)."""
    before = s.record
    if not before.active:
        return Step(before)
    r = _check_unit(before, s)
    if r.active and r.kind is Kind.TEMPLATE and not r.reverting and s.candidates is not None:
        r = _join(r, s.candidates)
    tasks: list[Task] = []
    if r.active:
        r = r.with_targets(
            tuple(_progress(r, t, s.seen.get(t.name, GONE), s.now) for t in r.targets)
        )
        r, revert = _failures(r, s)
        tasks.extend(revert)
    if r.phase in (Phase.RUNNING, Phase.REVERTING):
        r, started = _start(r, s.now)
        tasks.extend(started)
    r = _settle(r)
    if r.pins() != before.pins():
        moved = len(before.pins()) - len(r.pins())
        why = f"{abs(moved)} machine(s) {'moved' if moved > 0 else 'held'}"
        tasks.append(Task(Action.PIN, r.unit, "", f"{why}: {len(r.pins())} keep another file"))
    r = replace(r, message=_message(r))
    changed = r != before
    if changed:
        r = replace(r, updated=s.now)
    return Step(r, tuple(tasks), changed, _wake_at(r))


def _check_unit(r: Rollout, s: Situation) -> Rollout:
    if s.unit_hash is None:
        if r.kind is Kind.TEMPLATE:
            return r  # its instances are units of their own: they still roll
        return _fail(r, f"unit {r.unit} was destroyed")
    if s.unit_hash != r.text_hash:
        return _fail(
            r,
            f"the file of {r.unit} was changed outside this rollout "
            f"(hash {s.unit_hash[:7]}, the rollout's {r.text_hash[:7]})",
        )
    return r


def _fail(r: Rollout, why: str) -> Rollout:
    failure = f"{r.failure}; then the revert failed: {why}" if r.reverting else why
    return replace(r, phase=Phase.FAILED, failure=failure)


def _join(r: Rollout, candidates: Mapping[str, str]) -> Rollout:
    known = {t.name for t in r.targets}
    new = [
        Target(name, hash_, hash_)
        for name, hash_ in sorted(candidates.items())
        if name not in known and hash_ != r.to_hash
    ]
    return r.with_targets((*r.targets, *new)) if new else r


def _progress(r: Rollout, t: Target, seen: Seen, now: float) -> Target:
    """One target's next state (steps 3 of the module doc)."""
    if t.state in (State.DONE, State.SKIPPED, State.FAILED):
        return t
    if seen.gone:
        return replace(t, state=State.SKIPPED, since=now, message=seen.gone)
    want = r.want(t)
    if t.state is State.PENDING:
        if seen.assigned == want != t.current:
            # Assigned already (by a write whose record did not follow): it is on its way.
            return replace(t, state=State.UPDATING, current=want, started=now, message="")
        return t
    if seen.assigned != t.current:
        why = f"its file was changed outside this rollout (hash {seen.assigned[:7]})"
        return replace(t, state=State.SKIPPED, since=now, message=why)
    o = r.options
    if seen.ready:
        since = t.since if t.state is State.HEALTHY else now
        if now - since >= o.min_healthy_time:
            return replace(t, state=State.DONE, since=now, message="")
        return replace(t, state=State.HEALTHY, since=since, message="")
    if now >= t.started + o.healthy_deadline:
        why = f"not healthy within {_span(o.healthy_deadline)}"
        return replace(t, state=State.FAILED, since=now, message=_join_why(why, seen.detail))
    return replace(t, state=State.UPDATING, since=0.0, message=seen.detail)


def _failures(r: Rollout, s: Situation) -> tuple[Rollout, list[Task]]:
    """Step 4: a failed target fails the rollout or turns it around."""
    failed = [t for t in r.targets if t.state is State.FAILED]
    if not r.active or not failed:
        return r, []
    why = "; ".join(f"{t.name}: {t.message}" for t in failed[:3])
    if len(failed) > 3:
        why += f"; and {len(failed) - 3} more"
    # Start-first: the old copy never stopped; a failure drops the new one (a revert).
    if r.reverting or not (r.options.auto_revert or r.options.start_first):
        return _fail(r, why), []
    targets = tuple(
        replace(t, state=State.PENDING, started=0.0, since=0.0, message="")
        if t.current != t.old
        else replace(t, state=State.SKIPPED, since=s.now, message=NOT_UPDATED)
        for t in r.targets
    )
    turned = replace(
        r, phase=Phase.REVERTING, reverting=True, failure=why, targets=targets, promoted=True
    )
    tasks = []
    if r.kind is not Kind.UNIT and s.unit_hash is not None:
        # The unit's own text first: new instances and machines get the old file again.
        reason = f"revert {r.unit} to version {r.from_version}: {why}"
        tasks.append(Task(Action.WRITE, r.unit, r.from_hash, reason))
    return turned, tasks


def _start(r: Rollout, now: float) -> tuple[Rollout, list[Task]]:
    """Step 5: assign pending targets their hash, within max_parallel and the canaries."""
    o = r.options
    in_flight = sum(1 for t in r.targets if t.state.in_flight)
    free = o.max_parallel - in_flight
    canaries = o.canary > 0 and not r.promoted and not r.reverting
    if canaries:
        free = min(free, o.canary - _canaries(r))
    if free <= 0:
        return r, []
    targets = list(r.targets)
    tasks: list[Task] = []
    pending = sorted((t.name, i) for i, t in enumerate(targets) if t.state is State.PENDING)
    total = len(targets)
    # Counted once: starting a pending target does not settle one (a count per target
    # was quadratic: 10,000 targets cost 0.1 s of CPU per step).
    done = sum(1 for x in targets if x.state.settled)
    for _, i in pending[:free]:
        t = targets[i]
        want = r.want(t)
        targets[i] = replace(t, state=State.UPDATING, current=want, started=now, since=0.0)
        verb = "revert" if r.reverting else ("canary" if canaries else "update")
        reason = f"{verb} {t.name} ({done} of {total} settled, max {o.max_parallel} at once)"
        if r.kind is Kind.TEMPLATE:
            tasks.append(Task(Action.WRITE, t.name, want, reason))
        elif r.kind is Kind.UNIT:
            tasks.append(Task(Action.WRITE, r.unit, want, reason))
    return r.with_targets(tuple(targets)), tasks


def _settle(r: Rollout) -> Rollout:
    """Step 6: the phase that follows from the targets."""
    if not r.active:
        return r
    pending = any(t.state is State.PENDING for t in r.targets)
    in_flight = any(t.state.in_flight for t in r.targets)
    if not pending and not in_flight:
        return replace(r, phase=Phase.REVERTED if r.reverting else Phase.SUCCEEDED)
    o = r.options
    canaries_done = o.canary > 0 and not r.promoted and _canaries(r) >= o.canary
    if r.phase is Phase.RUNNING and canaries_done and not in_flight:
        return replace(r, phase=Phase.AWAITING_PROMOTION)
    return r


def _canaries(r: Rollout) -> int:
    """Targets updated or being updated (a skipped one is replaced by the next)."""
    return sum(1 for t in r.targets if t.state.in_flight or t.state is State.DONE)


def _message(r: Rollout) -> str:
    """What the rollout waits for (or how it ended), one line.  It depends on the targets'
    states only, never on the time: a record is written when something happened."""
    n = r.counts()
    untouched = sum(1 for t in r.targets if t.state is State.SKIPPED and t.message == NOT_UPDATED)
    total = len(r.targets) - untouched
    moved = "back on the previous version" if r.reverting else "updated"
    tally = f"{n[State.DONE]} of {total} {moved}"
    if n[State.SKIPPED] - untouched:
        tally += f", {n[State.SKIPPED] - untouched} skipped"
    if untouched:
        tally += f" ({untouched} not updated)"
    if r.phase is Phase.SUCCEEDED:
        return f"{tally}: all on version {r.to_version}"
    if r.phase is Phase.REVERTED:
        return f"{tally}: reverted to version {r.from_version} after: {r.failure}"
    if r.phase is Phase.FAILED:
        return f"{tally}; failed: {r.failure}"
    if r.phase is Phase.ABORTED:
        return r.message or f"{tally}; aborted"
    if r.phase is Phase.AWAITING_PROMOTION:
        return f"{tally}: canaries healthy, waiting for a promotion"
    if r.phase is Phase.PAUSED:
        return f"{tally}: paused"
    flying = [t for t in r.targets if t.state.in_flight]
    if not flying:
        return f"{tally}: waiting for targets"
    shown = ", ".join(_waiting(r, t) for t in flying[:3])
    more = f" and {len(flying) - 3} more" if len(flying) > 3 else ""
    return f"{tally}; waiting for {shown}{more}"


def _waiting(r: Rollout, t: Target) -> str:
    if t.state is State.HEALTHY:
        return f"{t.name} (healthy, for {_span(r.options.min_healthy_time)})"
    return f"{t.name} ({t.message or 'updating'})"


def _wake_at(r: Rollout) -> float | None:
    if not r.active:
        return None
    o = r.options
    due = []
    for t in r.targets:
        if t.state is State.HEALTHY:
            due.append(t.since + o.min_healthy_time)
        elif t.state is State.UPDATING:
            due.append(t.started + o.healthy_deadline)
    return min(due) if due else None


def _join_why(why: str, detail: str) -> str:
    return f"{why} ({detail})" if detail else why


def _span(seconds: float) -> str:
    """``1.5s``, ``4m10s``, ``1h2m``: a short readable duration."""
    if seconds < 60:
        return f"{seconds:.3g}s" if seconds != int(seconds) else f"{int(seconds)}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs}s" if secs else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes}m" if minutes else f"{hours}h"
