"""The rebalance that ends a maintenance: which units go back to the machines that
were taken down, so the units are spread over the machines again (pure).

A machine taken down is drained and comes back empty; the next machine's drain
fills it again (it is the emptiest machine then), so units are not asked back after
each machine: that would double the starts while the next drain runs.  Once no
machine is draining or down, each machine back gets as many units as it had when it
was cordoned (its *target*), with as few moves as that takes: only units the
maintenance moved (a *guest*: a unit away from the machine it was on when that
machine was cordoned, its *home*) are taken, from the machines holding more than
they had; a unit goes to its home first, else to any machine short of units.  Units
it never moved stay where they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def refills(
    targets: Sequence[tuple[str, tuple[str, ...]]],
    on: Mapping[str, tuple[str, ...]],
    where: Mapping[str, tuple[str, ...]],
) -> dict[str, tuple[str, ...]]:
    """Units to move to each machine back (machine -> units).

    ``targets``: the machines back, in the maintenance's order, each with the units
    that were on it when it was cordoned (a unit named by two: the first one's);
    ``on``: the units that may move scheduled on each of those machines now;
    ``where``: unit -> the machines it is scheduled on, for the units of ``targets``
    that may be asked to move (a unit not there is gone, not to run, or moves only
    with another one: it is never taken)."""
    home: dict[str, str] = {}
    for machine, units in targets:
        for unit in units:
            home.setdefault(unit, machine)
    target = {machine: len(units) for machine, units in targets}
    guests: dict[str, list[str]] = {}  # machine -> guests there, by name
    for unit in sorted(home):
        found = where.get(unit, ())
        if len(found) == 1 and found[0] != home[unit]:  # placed once (not moving), away
            guests.setdefault(found[0], []).append(unit)
    # What a machine holds beyond what it had: a machine back, its count over its
    # target; any other, its guests (the rest of its units it had before).
    surplus = {
        machine: len(on.get(machine, ())) - target[machine] if machine in target else len(units)
        for machine, units in guests.items()
    }
    need = {m: n - len(on.get(m, ())) for m, n in target.items() if n > len(on.get(m, ()))}
    taken: dict[str, list[str]] = {m: [] for m in need}

    def take(unit: str, source: str, machine: str) -> None:
        taken[machine].append(unit)
        need[machine] -= 1
        surplus[source] -= 1
        guests[source].remove(unit)

    for machine in need:  # its own units first: they ran there
        for source in sorted(guests):
            for unit in [u for u in guests[source] if home[u] == machine]:
                if need[machine] == 0 or surplus[source] <= 0:
                    break
                take(unit, source, machine)
    for machine in need:  # then any guest, from the machines holding the most
        for source in sorted(guests, key=lambda s: (-surplus[s], s)):
            for unit in list(guests[source]):
                if need[machine] == 0 or surplus[source] <= 0:
                    break
                take(unit, source, machine)
    return {machine: tuple(units) for machine, units in taken.items()}
