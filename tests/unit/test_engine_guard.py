"""The mass-loss guard's decision (fleetd/engine/guard.py), on injected time."""

from __future__ import annotations

import pytest

from fleetd.engine.guard import GuardCause, GuardSettings, decide

S = GuardSettings(share=0.3, machines=2, window=10.0, hold=15.0)
LONG_AGO = -1000.0  # became leader long ago


def test_a_machine_lost_alone_is_not_held() -> None:
    assert (
        decide(
            100.0, leading_since=LONG_AGO, departed={"m3": 100.0}, unseen=0, machines=10, settings=S
        )
        is None
    )


@pytest.mark.parametrize(
    ("absent", "registered", "held"),
    [
        ({"a": 100.0, "b": 104.0}, 2, True),  # 2 of 4 within 4 s
        ({"a": 100.0, "b": 104.0}, 10, False),  # 2 of 12: under the share
        ({"a": 100.0, "b": 104.0, "c": 105.0, "d": 109.0}, 8, True),  # 4 of 12 within 9 s
        ({"a": 100.0, "b": 111.0}, 2, False),  # 11 s apart: not together
        ({"a": 100.0, "b": 100.5}, 0, True),  # every machine gone
    ],
)
def test_many_machines_vanishing_together_are_held(
    absent: dict[str, float], registered: int, held: bool
) -> None:
    now = max(absent.values())
    guard = decide(
        now,
        leading_since=LONG_AGO,
        departed=absent,
        unseen=0,
        machines=registered + len(absent),
        settings=S,
    )
    assert (guard is not None) == held
    if guard is not None:
        assert guard.cause is GuardCause.MASS_LOSS
        assert guard.until == now + S.hold  # from the last one to vanish
        assert f"of {len(absent) + registered} machines vanished" in guard.reason


def test_the_hold_ends_a_ttl_and_grace_after_the_last_loss() -> None:
    absent = {"a": 100.0, "b": 103.0}
    assert decide(117.9, leading_since=LONG_AGO, departed=absent, unseen=0, machines=4, settings=S)
    assert (
        decide(118.0, leading_since=LONG_AGO, departed=absent, unseen=0, machines=4, settings=S)
        is None
    )


def test_a_new_leader_holds_for_a_ttl_and_grace_after_it_took_over() -> None:
    absent = {"m3": 105.0}
    guard = decide(105.0, leading_since=100.0, departed=absent, unseen=1, machines=10, settings=S)
    assert guard is not None and guard.cause is GuardCause.NEW_LEADER
    assert guard.until == 115.0 and "became leader" in guard.reason
    later = decide(115.0, leading_since=100.0, departed=absent, unseen=1, machines=10, settings=S)
    assert later is None
    # A machine it saw registered, then vanish, is lost as usual.
    seen = decide(105.0, leading_since=100.0, departed=absent, unseen=0, machines=10, settings=S)
    assert seen is None


def test_the_guard_that_holds_longest_wins() -> None:
    absent = {"a": 110.0, "b": 112.0}
    guard = decide(112.0, leading_since=100.0, departed=absent, unseen=2, machines=4, settings=S)
    assert guard is not None and guard.cause is GuardCause.MASS_LOSS and guard.until == 127.0
