"""``fleetctl plan``'s diff and exit status, from the API's answer (pure)."""

from __future__ import annotations

from typing import Any

from fleetd.api import wire
from fleetd.cli.plan import exit_status, render

A, B = "a" * 40, "b" * 40


def change(
    action: str, unit: str, machine: str, reason: str, effect: str, **kw: Any
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "hostname": None,
        "hash": A,
        "previousHash": None,
        "desiredState": "launched",
        "previousDesiredState": None,
    }
    fields.update(kw)
    return {
        "action": action,
        "unit": unit,
        "machineID": machine,
        "reason": reason,
        "effect": effect,
        **fields,
    }


def planned(name: str, result: str, **kw: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "hash": B,
        "previousHash": None,
        "desiredState": "launched",
        "previousDesiredState": None,
        "machineIDs": [],
        "reason": None,
        "warnings": [],
    }
    fields.update(kw)
    return {"name": name, "result": result, **fields}


def answer(**kw: Any) -> wire.PlanResponse:
    body: dict[str, Any] = {
        "units": [],
        "changes": [],
        "unplaceable": [],
        "waiting": [],
        "pending": 0,
        "changed": False,
        "strategy": "binpack",
    }
    body.update(kw)
    return wire.PlanResponse.model_validate(body)


def test_a_full_diff() -> None:
    plan = answer(
        units=[
            planned("new.service", "created", machineIDs=["m1"]),
            planned("api.service", "replaced", previousHash=A, previousDesiredState="launched"),
            planned("db.service", "updated", hash=A, previousHash=A, previousDesiredState="loaded"),
            planned(
                "same.service", "unchanged", hash=A, previousHash=A, previousDesiredState="launched"
            ),
        ],
        changes=[
            change(
                "unschedule",
                "cache@2.service",
                "m1",
                "replaced by new.service",
                "stop and unload",
                hostname="host1",
                hash=None,
                previousHash=A,
                previousDesiredState="launched",
            ),
            change(
                "schedule",
                "new.service",
                "m1",
                "pinned by MachineID",
                "load and start",
                hostname="host1",
            ),
            change(
                "update",
                "api.service",
                "m2",
                "unit file changed (aaaaaaa -> bbbbbbb)",
                "restart with the new file",
                hash=B,
                previousHash=A,
            ),
        ],
        unplaceable=[
            {
                "name": "cache@2.service",
                "reason": "m2: conflicts with cache@1.service",
                "reasons": {"m2": "conflicts with cache@1.service"},
            }
        ],
        waiting=[{"name": "once.service", "reason": "AtMostOnce: waiting out the grace period"}],
        pending=3,
        changed=True,
    )
    assert render(plan) == [
        "+ unit new.service (new, launched)",
        "~ unit api.service: unit file aaaaaaa -> bbbbbbb",
        "~ unit db.service: desired state loaded -> launched",
        "- unschedule cache@2.service from host1: stop and unload (replaced by new.service)",
        "+ schedule new.service on host1: load and start (pinned by MachineID)",
        "~ update api.service on m2: restart with the new file "
        "(unit file changed (aaaaaaa -> bbbbbbb))",
        "! unplaceable cache@2.service: m2: conflicts with cache@1.service",
        "? waiting once.service: AtMostOnce: waiting out the grace period",
        "Plan: 1 to schedule, 1 to update, 1 to unschedule; 1 unplaceable.",
        "(3 more schedule changes are pending regardless of these units: "
        "the engine is still at work)",
    ]
    assert exit_status(plan) == 2


def test_no_change() -> None:
    plan = answer(
        units=[
            planned(
                "same.service",
                "unchanged",
                hash=A,
                previousHash=A,
                previousDesiredState="launched",
                machineIDs=["m1"],
            )
        ]
    )
    assert render(plan) == ["No changes: the cluster already has these units as given."]
    assert exit_status(plan) == 0


def test_a_change_only_to_the_unit_record_still_counts() -> None:
    plan = answer(units=[planned("new.service", "created", desiredState="inactive")], changed=True)
    assert render(plan) == [
        "+ unit new.service (new, inactive)",
        "Plan: 0 to schedule, 0 to update, 0 to unschedule.",
    ]
    assert exit_status(plan) == 1


def test_an_unplaceable_unit_wins_over_changes() -> None:
    unplaced = {"name": "big.service", "reason": "m1: needs 1T memory", "reasons": {}}
    plan = answer(units=[planned("big.service", "created")], unplaceable=[unplaced], changed=True)
    assert render(plan)[-2:] == [
        "! unplaceable big.service: m1: needs 1T memory",
        "Plan: 0 to schedule, 0 to update, 0 to unschedule; 1 unplaceable.",
    ]
    assert exit_status(plan) == 2
