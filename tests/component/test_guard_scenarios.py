"""The mass-loss guard on the in-process cluster (fleetd/engine/guard.py): machines that
vanish together, or that a new leader finds absent, keep their units while they may
register again; what is still absent once the guard ends is lost as usual."""

from __future__ import annotations

from pathlib import Path

from guardkit import SERVICE, one_unit_per_machine, vanish

from fleetd.testing.cluster import cluster


def pinned_nowhere(i: int) -> str:
    return SERVICE.replace("web", f"web{i}")


async def test_machines_vanishing_together_keep_their_units_until_they_are_back(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path, machines=3) as c:
        placed = await one_unit_per_machine(c)
        pids = {n: c.nodes[m].systemd.unit(n).main_pid for n, m in placed.items()}
        await vanish(c.nodes["m2"], c.nodes["m3"])

        async def held() -> bool:
            reasons = [await c.reason(n) for n, m in placed.items() if m != "m1"]
            return all(r.startswith("mass-loss guard: 2 of 3 machines vanished") for r in reasons)

        await c.wait_for(held, "the guard holds the units of m2 and m3")
        await c.wait_for(lambda: c.engine is not None and c.engine.metrics.guarded == 2, "metric")
        assert {n: ms[0] for n, ms in (await c.where()).items()} == placed
        c.nodes["m2"].start()
        c.nodes["m3"].start()

        async def back() -> bool:
            return [await c.reason(n) for n in placed] == [""] * len(placed)

        await c.wait_for(back, "m2 and m3 registered again")
        assert {n: ms[0] for n, ms in (await c.where()).items()} == placed
        assert {n: c.nodes[m].systemd.unit(n).main_pid for n, m in placed.items()} == pids


async def test_once_the_guard_ends_a_machine_still_absent_is_lost(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=3) as c:
        placed = await one_unit_per_machine(c)
        await vanish(c.nodes["m2"], c.nodes["m3"])
        on_m3 = next(n for n, m in placed.items() if m == "m3")
        on_m2 = next(n for n, m in placed.items() if m == "m2")
        await c.wait_for(
            lambda: c.engine is not None and c.engine.metrics.guarded == 2, "the guard holds"
        )
        c.nodes["m2"].start()
        await c.wait_for(
            lambda: c.engine is not None and c.engine.metrics.guarded == 1, "m2 is back"
        )
        c.advance(c.settings.guard.hold)

        async def lost() -> bool:  # unscheduled (its Conflicts= leave it no other machine)
            return (await c.where()).get(on_m3) is None

        await c.wait_for(lost, f"{on_m3} taken off m3 once the guard ended")
        assert (await c.where()).get(on_m2) == ["m2"]


async def test_a_machine_lost_alone_moves_at_once(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=3) as c:
        names = [f"web{i}.service" for i in range(4)]
        for i, name in enumerate(names):
            await c.submit(name, pinned_nowhere(i))
        await c.wait_for(lambda: all(c.running(n) for n in names), "all running")
        victim = c.running(names[0])[0]
        await vanish(c.nodes[victim])

        async def moved() -> bool:
            where = await c.where()
            return all(where.get(n) and victim not in where[n] for n in names)

        await c.wait_for(moved, f"the units of {victim} moved without waiting")
        assert c.engine is not None and c.engine.metrics.guarded == 0


async def test_a_new_leader_waits_for_machines_slow_to_register_again(tmp_path: Path) -> None:
    async with cluster(tmp_path, machines=3) as c:
        placed = await one_unit_per_machine(c)
        await c.cancel("engine")  # the leader goes...
        await vanish(c.nodes["m3"])  # ...and m3's registration with it
        engine = c.start_engine()
        on_m3 = next(n for n, m in placed.items() if m == "m3")

        async def held() -> bool:
            return (await c.reason(on_m3)).startswith("mass-loss guard: this engine became leader")

        await c.wait_for(held, f"the new leader keeps {on_m3} on m3")
        await c.wait_for(lambda: engine.metrics.guarded == 1, "the metric says so")
        c.nodes["m3"].start()
        await c.wait_for(lambda: engine.metrics.guarded == 0, "m3 registered again")
        assert {n: ms[0] for n, ms in (await c.where()).items()} == placed
