"""Loss times the engine's model keeps for lost machines (ClusterModel.forget_machines)."""

from __future__ import annotations

import random

import pytest

from fleetd.engine.model import ClusterModel
from fleetd.engine.plan import UnitSpec
from fleetd.model import Capacity, DesiredState, Machine, ScheduleEntry


def _model(rnd: random.Random, ledger: bool) -> ClusterModel:
    """Six machines known to the schedule, some of them live, some lost, some entries gone."""
    model = ClusterModel()
    ids = [f"m{i}" for i in range(6)]
    for mid in ids:
        if rnd.random() < 0.5:
            model.put_machine(Machine(id=mid, capacity=Capacity(1000, 1 << 30)))
    for n in range(8):
        name = f"u{n}.service"
        model.set_unit(name, UnitSpec(name, "h", DesiredState.LAUNCHED))
        for mid in rnd.sample(ids, rnd.randrange(3)):
            model.set_entry(mid, name, ScheduleEntry(mid, name, "h", DesiredState.LAUNCHED))
    if ledger:
        model.rebuild_ledger()
    for mid in ids:
        if rnd.random() < 0.6:
            model.lost[mid] = 1.0
    for mid, name in rnd.sample(sorted(model.schedule), len(model.schedule) // 3):
        model.set_entry(mid, name, None)  # a pass moved the unit away
    return model


@pytest.mark.parametrize("ledger", [True, False], ids=["ledger", "no ledger"])
def test_forgets_exactly_the_machines_no_entry_names_or_that_came_back(ledger: bool) -> None:
    for seed in range(200):
        model = _model(random.Random(seed), ledger)
        used = {mid for mid, _ in model.schedule}
        kept = {m: t for m, t in model.lost.items() if m in used and m not in model.machines}
        model.forget_machines()
        assert model.lost == kept, seed


def test_nothing_lost_nothing_to_do() -> None:
    model = _model(random.Random(1), ledger=True)
    model.lost.clear()
    model.forget_machines()
    assert model.lost == {}
