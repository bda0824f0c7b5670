"""fleetctl's blocking wait does not take "machine not registered" for an answer: the
machine may be re-registering (its fleetd restarting, its etcd connection blinking), so
the wait goes on, and the reason is reported only if it is still there at the end."""

from __future__ import annotations

import asyncio

import httpx
from apikit import SERVICE, add_machine, make_app, new_store, report, schedule, submit, unplaceable

from fleetd.cli.backend import ApiBackend
from fleetd.cli.progress import Outcome, Waiter
from fleetd.model import DesiredState
from fleetd.registry.store import Store

M1 = "a" * 32
M2 = "b" * 32
NAME = "pinned.service"
PINNED = f"pinned to machine {M2}, which is not registered"


class Counting(httpx.AsyncBaseTransport):
    """The app; ``seen`` is set once it served ``enough`` requests."""

    def __init__(self, app: object, enough: int = 4) -> None:
        self.inner = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        self.served = 0
        self.enough = enough
        self.seen = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.served += 1
        if self.served >= self.enough:
            self.seen.set()
        return response


async def _pinned_to_an_absent_machine() -> tuple[Store, Counting]:
    store = new_store()
    await add_machine(store, M1, ip="10.0.0.1")
    app = make_app(store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://f") as c:
        text = SERVICE + f"\n[X-Fleet]\nMachineID={M2}\n"
        assert (await submit(c, NAME, text, desired="launched")).status_code == 201
    await unplaceable(store, NAME, PINNED)
    return store, Counting(app)


async def _wait(transport: Counting, attempts: int) -> list[Outcome]:
    backend = ApiBackend("http://fleet:1", transport=transport)
    try:
        return await Waiter(backend, DesiredState.LAUNCHED, attempts=attempts).wait(
            [NAME], lambda _o: None
        )
    finally:
        await backend.close()


async def test_a_machine_that_registers_while_waiting_gets_its_unit() -> None:
    store, transport = await _pinned_to_an_absent_machine()

    async def machine_comes_back() -> None:
        await transport.seen.wait()  # a few attempts saw the reason
        await add_machine(store, M2, ip="10.0.0.2")
        await store.registry.delete(store.keys.placement(NAME))
        await schedule(store, M2, NAME)
        await report(store, M2, NAME)

    async with asyncio.timeout(30):
        outcomes, _ = await asyncio.gather(_wait(transport, attempts=0), machine_comes_back())
    assert [o.message for o in outcomes] == [f"Unit {NAME} started on host-bbbb (10.0.0.2)"]
    assert outcomes[0].ok


async def test_a_machine_still_absent_after_the_last_attempt_is_the_answer() -> None:
    _, transport = await _pinned_to_an_absent_machine()
    outcomes = await _wait(transport, attempts=3)
    assert [o.message for o in outcomes] == [
        f"Unit {NAME} could not be placed after 3 attempt(s): "
        f"pinned to machine {M2[:8]}, which is not registered"
    ]
    assert not outcomes[0].ok and outcomes[0].reason == PINNED
