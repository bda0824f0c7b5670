"""Deciding a unit's health from check results and grace (fleetd/unithealth.py)."""

from __future__ import annotations

from fleetd.model import Health, UnitHealth
from fleetd.unithealth import CheckResult, in_grace, inactive, judge, short, unchecked

NEW = UnitHealth()
OK = CheckResult(True)
REFUSED = CheckResult(False, "connection refused")
HEALTHY = UnitHealth(Health.HEALTHY, "", 10.0)
UNHEALTHY = UnitHealth(Health.UNHEALTHY, "connection refused", 10.0)


def test_a_passed_check_is_healthy_from_then_on() -> None:
    assert judge(NEW, OK, in_grace=False, wall=20.0) == UnitHealth(Health.HEALTHY, "", 20.0)
    assert judge(NEW, OK, in_grace=True, wall=20.0) == UnitHealth(Health.HEALTHY, "", 20.0)
    assert judge(HEALTHY, OK, in_grace=False, wall=20.0) is HEALTHY  # since stays
    assert judge(UNHEALTHY, OK, in_grace=False, wall=20.0) == UnitHealth(Health.HEALTHY, "", 20.0)


def test_a_failed_check_after_grace_is_unhealthy_with_its_message() -> None:
    assert judge(NEW, REFUSED, in_grace=False, wall=20.0) == UnitHealth(
        Health.UNHEALTHY, "connection refused", 20.0
    )
    assert judge(HEALTHY, REFUSED, in_grace=False, wall=20.0) == UnitHealth(
        Health.UNHEALTHY, "connection refused", 20.0
    )
    assert judge(UNHEALTHY, REFUSED, in_grace=False, wall=30.0) is UNHEALTHY
    # a new message, the same health: since does not move
    assert judge(UNHEALTHY, CheckResult(False, "HTTP 500"), in_grace=False, wall=30.0) == (
        UnitHealth(Health.UNHEALTHY, "HTTP 500", 10.0)
    )


def test_failures_within_grace_do_not_count() -> None:
    starting = judge(NEW, REFUSED, in_grace=True, wall=20.0)
    assert starting == UnitHealth(Health.UNKNOWN, "connection refused", 0.0)
    assert judge(HEALTHY, REFUSED, in_grace=True, wall=20.0) is HEALTHY
    assert judge(starting, REFUSED, in_grace=False, wall=25.0) == UnitHealth(
        Health.UNHEALTHY, "connection refused", 25.0
    )


def test_active_without_a_check_is_healthy_and_inactive_is_unknown() -> None:
    assert unchecked(NEW, 5.0) == UnitHealth(Health.HEALTHY, "", 5.0)
    assert unchecked(HEALTHY, 5.0) is HEALTHY
    assert inactive(UNHEALTHY, 30.0) == UnitHealth(Health.UNKNOWN, "", 30.0)
    assert inactive(NEW, 30.0) is NEW


def test_grace_counts_from_activation() -> None:
    assert in_grace(104.9, 100.0, 5.0)
    assert not in_grace(105.0, 100.0, 5.0)
    assert not in_grace(100.0, 100.0, 0.0)


def test_messages_are_one_short_line() -> None:
    assert short("exit status 1:\n  oops\n") == "exit status 1: oops"
    long = short("x" * 1000)
    assert len(long) == 200 and long.endswith("…")
    assert judge(NEW, CheckResult(False, ""), in_grace=False, wall=1.0).message == "check failed"
