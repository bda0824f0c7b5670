"""The Registry contract, run against MemoryRegistry and against a real etcd (marker ``etcd``)."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import pytest

from fleetd.caller import Caller
from fleetd.errors import (
    Conflict,
    InvalidInput,
    LeaseExpired,
    RegistryError,
    RegistryUnavailable,
    WatchCompacted,
)
from fleetd.etcd_server import EtcdServer
from fleetd.model import Unit
from fleetd.registry.base import (
    MAX_TXN_OPS,
    Compare,
    CompareTarget,
    Delete,
    EventType,
    Put,
    Registry,
    WatchEvent,
)
from fleetd.registry.etcd import EtcdRegistry
from fleetd.registry.keys import Keys
from fleetd.registry.memory import MemoryRegistry
from fleetd.registry.store import Store
from fleetd.registry.unitput import UnitPut
from fleetd.unitfile import UnitFile
from fleetd.versions import versions_for

if TYPE_CHECKING:
    from tests.conftest import FakeClock


@dataclass
class Backend:
    registry: Registry
    prefix: str
    clock: FakeClock | None = None
    server: EtcdServer | None = None

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def let_time_pass(self, seconds: float) -> None:
        """On memory, move the clock and expire leases; etcd's time passes by itself."""
        if self.clock is not None:
            assert isinstance(self.registry, MemoryRegistry)
            self.clock.advance(seconds)
            self.registry.expire_leases()

    async def eventually(
        self, condition: Callable[[], Awaitable[bool]], within: float = 15.0
    ) -> None:
        deadline = time.monotonic() + within
        while not await condition():
            assert time.monotonic() < deadline, "condition not reached before the deadline"
            await asyncio.sleep(0.1)


@pytest.fixture(
    params=[
        "memory",
        pytest.param("etcd", marks=pytest.mark.etcd),
        # Debian's maintained etcd 3.4 (production) as well as the bundled 3.5.1 (development).
        pytest.param("etcd-3.4", marks=pytest.mark.etcd),
    ]
)
async def backend(
    request: pytest.FixtureRequest, key_prefix: str, clock: FakeClock
) -> AsyncIterator[Backend]:
    if request.param == "memory":
        registry = MemoryRegistry(clock)
        yield Backend(registry, key_prefix, clock=clock)
        await registry.close()
    else:
        fixture = "etcd_server" if request.param == "etcd" else "debian_etcd_server"
        server = request.getfixturevalue(fixture)
        etcd = EtcdRegistry([server.endpoint], timeout=5.0)
        yield Backend(etcd, key_prefix, server=server)
        await etcd.close()


async def collect(
    watch: AsyncIterator[list[WatchEvent]], count: int, within: float = 10.0
) -> list[WatchEvent]:
    events: list[WatchEvent] = []
    async with asyncio.timeout(within):
        while len(events) < count:
            events.extend(await anext(watch))
    return events


def summary(events: list[WatchEvent]) -> list[tuple[str, str, bytes]]:
    return [(e.type.value, e.key, e.value) for e in events]


# -- key-value -------------------------------------------------------------------


async def test_get_put_delete_and_prefix(backend: Backend) -> None:
    r, k = backend.registry, backend.key
    await r.put(k("b"), b"2")
    await r.put(k("a"), b"1")
    await r.put(k("dir/c"), b"3")
    await r.put(backend.prefix[:-1] + "-sibling", b"outside")

    got = await r.get(k("a"))
    assert got is not None and got.value == b"1" and got.key == k("a")
    assert await r.get(k("missing")) is None
    items, _ = await r.get_prefix(backend.prefix)
    assert [(i.key, i.value) for i in items] == [
        (k("a"), b"1"),
        (k("b"), b"2"),
        (k("dir/c"), b"3"),
    ]

    assert await r.delete(k("a")) == 1
    assert await r.delete(k("a")) == 0
    assert await r.get(k("a")) is None
    assert await r.delete(k("dir/"), prefix=True) == 1
    items, _ = await r.get_prefix(backend.prefix)
    assert [i.key for i in items] == [k("b")]
    await r.delete(backend.prefix[:-1] + "-sibling")


async def test_revisions(backend: Backend) -> None:
    r, k = backend.registry, backend.key
    first = await r.put(k("x"), b"1")
    second = await r.put(k("x"), b"2")
    assert second > first
    kv = await r.get(k("x"))
    assert kv is not None
    assert (kv.create_revision, kv.mod_revision) == (first, second)
    _, read_at = await r.get_prefix(backend.prefix)
    assert read_at >= second

    await r.delete(k("x"))
    third = await r.put(k("x"), b"3")
    kv = await r.get(k("x"))
    assert kv is not None and kv.create_revision == third > second


async def test_large_prefix_read_is_complete_and_sorted(backend: Backend) -> None:
    r, k = backend.registry, backend.key
    await r.batch([Put(k(f"n{i:05d}"), b"v") for i in range(2500)])
    items, _ = await r.get_prefix(backend.prefix)
    assert [i.key for i in items] == [k(f"n{i:05d}") for i in range(2500)]


# -- transactions ----------------------------------------------------------------


async def test_compare_and_swap_that_loses(backend: Backend) -> None:
    r, k = backend.registry, backend.key
    rev = await r.put(k("cas"), b"v1")
    cas = [Compare(k("cas"), CompareTarget.MOD, rev)]

    won = await r.txn(cas, [Put(k("cas"), b"v2")], [Put(k("lost"), b"yes")])
    assert won.succeeded
    lost = await r.txn(cas, [Put(k("cas"), b"v3")], [Put(k("lost"), b"yes")])
    assert not lost.succeeded

    got = await r.get(k("cas"))
    assert got is not None and got.value == b"v2" and got.mod_revision == won.revision
    lost_marker = await r.get(k("lost"))
    assert lost_marker is not None and lost_marker.mod_revision == lost.revision

    by_value = await r.txn([Compare(k("cas"), CompareTarget.VALUE, b"v1")], [Delete(k("cas"))])
    assert not by_value.succeeded
    by_value = await r.txn([Compare(k("cas"), CompareTarget.VALUE, b"v2")], [Delete(k("cas"))])
    assert by_value.succeeded and await r.get(k("cas")) is None


async def test_create_if_absent(backend: Backend) -> None:
    r, k = backend.registry, backend.key
    first = await r.txn([Compare.absent(k("once"))], [Put(k("once"), b"first")])
    second = await r.txn([Compare.absent(k("once"))], [Put(k("once"), b"second")])
    assert first.succeeded and not second.succeeded
    got = await r.get(k("once"))
    assert got is not None and got.value == b"first"
    version_absent = await r.txn([Compare(k("other"), CompareTarget.VERSION, 0)], [])
    assert version_absent.succeeded
    value_of_absent = await r.txn([Compare(k("other"), CompareTarget.VALUE, b"")], [])
    assert not value_of_absent.succeeded


async def test_fenced_write_by_create_revision(backend: Backend) -> None:
    r, k = backend.registry, backend.key
    leader = k("leader")
    elected = await r.txn([Compare.absent(leader)], [Put(leader, b"m1")])
    guard = [Compare(leader, CompareTarget.CREATE, elected.revision)]
    assert (await r.txn(guard, [Put(k("work"), b"by-m1")])).succeeded

    # A renewal (same key rewritten) keeps the create revision and the fence.
    await r.put(leader, b"m1")
    assert (await r.txn(guard, [Put(k("work"), b"by-m1-again")])).succeeded

    await r.delete(leader)
    await r.txn([Compare.absent(leader)], [Put(leader, b"m2")])
    deposed = await r.txn(guard, [Put(k("work"), b"by-deposed-m1")])
    assert not deposed.succeeded
    work = await r.get(k("work"))
    assert work is not None and work.value == b"by-m1-again"


async def test_txn_with_too_many_ops_is_refused(backend: Backend) -> None:
    r, k = backend.registry, backend.key
    with pytest.raises(RegistryError):
        await r.txn([], [Put(k(f"x{i}"), b"") for i in range(MAX_TXN_OPS + 1)])
    items, _ = await r.get_prefix(backend.prefix)
    assert items == []


async def test_txn_with_too_many_compares_is_refused(backend: Backend) -> None:
    r, k = backend.registry, backend.key
    compares = [Compare.absent(k(f"c{i}")) for i in range(MAX_TXN_OPS + 1)]
    with pytest.raises(RegistryError):
        await r.txn(compares, [Put(k("x"), b"")])
    assert await r.get(k("x")) is None
    assert (await r.txn(compares[:MAX_TXN_OPS], [Put(k("x"), b"")])).succeeded


async def test_batch_of_500_writes_is_chunked(backend: Backend) -> None:
    r, k = backend.registry, backend.key
    result = await r.batch([Put(k(f"u{i:03d}"), str(i).encode()) for i in range(500)])
    assert result.succeeded
    items, _ = await r.get_prefix(backend.prefix)
    assert len(items) == 500
    assert items[499].value == b"499"
    revisions = sorted({i.mod_revision for i in items})
    assert len(revisions) == 4  # 128 + 128 + 128 + 116
    assert revisions[-1] == result.revision


async def test_batch_with_repeated_key_keeps_order(backend: Backend) -> None:
    r, k = backend.registry, backend.key
    result = await r.batch(
        [Put(k("a"), b"1"), Put(k("a"), b"2"), Delete(k("a")), Put(k("a"), b"3")]
    )
    assert result.succeeded
    got = await r.get(k("a"))
    assert got is not None and got.value == b"3"


async def test_batch_guard_failure_writes_nothing(backend: Backend) -> None:
    r, k = backend.registry, backend.key
    guard = [Compare(k("leader"), CompareTarget.CREATE, 12345)]
    result = await r.batch([Put(k(f"u{i}"), b"") for i in range(300)], guard)
    assert not result.succeeded
    items, _ = await r.get_prefix(backend.prefix)
    assert items == []
    empty = await r.batch([], guard)
    assert not empty.succeeded


async def test_oversized_request_is_invalid_input(backend: Backend) -> None:
    r, k = backend.registry, backend.key
    for size in (2_000_000, 5_000_000):
        with pytest.raises(InvalidInput, match=r"too large|larger than max"):
            await r.put(k("big"), b"x" * size)
    assert await r.get(k("big")) is None


# -- leases ----------------------------------------------------------------------


async def test_lease_grant_refresh_ttl_revoke(backend: Backend) -> None:
    r, k = backend.registry, backend.key
    lease = await r.grant_lease(30)
    assert 0 < await r.lease_ttl(lease) <= 30
    assert 0 < await r.refresh_lease(lease) <= 30
    await r.put(k("owned"), b"x", lease=lease)
    kv = await r.get(k("owned"))
    assert kv is not None and kv.lease == lease

    await r.revoke_lease(lease)
    assert await r.lease_ttl(lease) == -1
    assert await r.get(k("owned")) is None
    with pytest.raises(LeaseExpired):
        await r.refresh_lease(lease)
    with pytest.raises(LeaseExpired):
        await r.put(k("late"), b"x", lease=lease)
    with pytest.raises(LeaseExpired):
        await r.txn([], [Put(k("late"), b"x", lease=lease), Put(k("other"), b"y")])
    assert await r.get(k("other")) is None
    await r.revoke_lease(lease)  # already gone: no error


async def test_lease_expiry_removes_its_keys(backend: Backend) -> None:
    r, k = backend.registry, backend.key
    lease = await r.grant_lease(2)
    _, start = await r.get_prefix(backend.prefix)
    watch = r.watch_prefix(backend.prefix, start + 1)
    await r.put(k("mine"), b"x", lease=lease)
    await r.put(k("kept"), b"y")

    backend.let_time_pass(3)

    async def gone() -> bool:
        return await r.get(k("mine")) is None

    await backend.eventually(gone)
    assert await r.get(k("kept")) is not None
    assert await r.lease_ttl(lease) == -1
    events = await collect(watch, 3)
    assert summary(events) == [
        ("put", k("mine"), b"x"),
        ("put", k("kept"), b"y"),
        ("delete", k("mine"), b""),
    ]
    await watch.aclose()


async def test_refresh_keeps_lease_alive(backend: Backend) -> None:
    r = backend.registry
    lease = await r.grant_lease(10)
    backend.let_time_pass(8)
    await r.refresh_lease(lease)
    backend.let_time_pass(8)
    assert await r.lease_ttl(lease) > 0


# -- watches ---------------------------------------------------------------------


async def test_watch_delivers_puts_and_deletes_in_order(backend: Backend) -> None:
    r, k = backend.registry, backend.key
    _, start = await r.get_prefix(backend.prefix)
    watch = r.watch_prefix(backend.prefix, start + 1)
    await r.put(k("a"), b"1")
    await r.put(backend.prefix[:-1] + "-outside", b"no")
    await r.txn([], [Put(k("b"), b"2"), Put(k("c"), b"3")])
    await r.put(k("a"), b"4")
    await r.delete(k("b"))
    events = await collect(watch, 5)
    assert summary(events) == [
        ("put", k("a"), b"1"),
        ("put", k("b"), b"2"),
        ("put", k("c"), b"3"),
        ("put", k("a"), b"4"),
        ("delete", k("b"), b""),
    ]
    assert events[1].mod_revision == events[2].mod_revision
    assert events[0].mod_revision < events[1].mod_revision < events[3].mod_revision
    assert events[3].create_revision == events[0].mod_revision
    assert events[4].type is EventType.DELETE
    await watch.aclose()
    await r.delete(backend.prefix[:-1] + "-outside")


async def test_watch_resumes_from_a_revision(backend: Backend) -> None:
    r, k = backend.registry, backend.key
    await r.put(k("a"), b"1")
    resume = await r.put(k("b"), b"2")
    await r.put(k("c"), b"3")
    watch = r.watch_prefix(backend.prefix, resume)
    events = await collect(watch, 2)
    assert summary(events) == [("put", k("b"), b"2"), ("put", k("c"), b"3")]
    await watch.aclose()


async def test_watch_after_compaction_raises_watch_compacted(backend: Backend) -> None:
    r, k = backend.registry, backend.key
    old = await r.put(k("a"), b"1")
    await r.put(k("a"), b"2")
    latest = await r.put(k("b"), b"3")
    await r.compact(latest)
    await r.compact(old)  # older than the compaction point: nothing to do

    watch = r.watch_prefix(backend.prefix, old)
    with pytest.raises(WatchCompacted):
        await asyncio.wait_for(anext(watch), 10)
    await watch.aclose()

    items, read_at = await r.get_prefix(backend.prefix)
    assert [i.value for i in items] == [b"2", b"3"]
    fresh = r.watch_prefix(backend.prefix, read_at + 1)
    await r.put(k("c"), b"4")
    assert summary(await collect(fresh, 1)) == [("put", k("c"), b"4")]
    await fresh.aclose()


# -- etcd only -------------------------------------------------------------------


@pytest.mark.etcd
async def test_watch_continues_across_an_etcd_restart(
    etcd_server: EtcdServer,
    etcd_registry: EtcdRegistry,
    key_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="fleetd.registry.etcd")
    r = etcd_registry
    _, start = await r.get_prefix(key_prefix)
    watch = r.watch_prefix(key_prefix, start + 1)
    await r.put(f"{key_prefix}before", b"1")
    assert summary(await collect(watch, 1)) == [("put", f"{key_prefix}before", b"1")]
    pending = asyncio.ensure_future(collect(watch, 2, within=30))

    lease = await r.grant_lease(30)
    etcd_server.stop()
    try:
        with pytest.raises(RegistryUnavailable):
            await r.get(f"{key_prefix}before")
        with pytest.raises(RegistryUnavailable):
            await r.txn([Compare.absent(f"{key_prefix}x")], [Put(f"{key_prefix}x", b"")])
        with pytest.raises(RegistryUnavailable):
            await r.refresh_lease(lease)
    finally:
        await asyncio.to_thread(etcd_server.start)

    async def put_after_restart() -> None:
        deadline = time.monotonic() + 15
        while True:
            try:
                await r.put(f"{key_prefix}after", b"2")
                return
            except RegistryUnavailable:
                assert time.monotonic() < deadline, "etcd did not come back"
                await asyncio.sleep(0.1)

    await put_after_restart()
    assert await r.refresh_lease(lease) > 0
    await r.delete(f"{key_prefix}before")
    events = await pending
    assert summary(events) == [
        ("put", f"{key_prefix}after", b"2"),
        ("delete", f"{key_prefix}before", b""),
    ]
    await watch.aclose()
    gc.collect()  # a task or generator the resume left behind is reported when collected
    await asyncio.sleep(0)
    left = [rec.getMessage() for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert left == [], "the resumed watch left something running"
    # The watch's retries go through fleetd.retry's Backoff: logged with the revision
    # it resumes at and the delay before the next attempt.
    resumed = [
        m for m in caplog.messages if m.startswith(f"watch {key_prefix} (resuming at revision ")
    ]
    assert resumed and all("; retrying in " in m for m in resumed), caplog.messages


@pytest.mark.etcd
async def test_unreachable_etcd_is_registry_unavailable() -> None:
    from fleetd.etcd_server import free_port

    registry = EtcdRegistry([f"http://127.0.0.1:{free_port()}"], timeout=1.0)
    try:
        with pytest.raises(RegistryUnavailable) as caught:
            await registry.get("/x")
        assert caught.value.__cause__ is not None
        with pytest.raises(RegistryUnavailable):
            await registry.txn([Compare.absent("/x")], [Put("/x", b"")])
    finally:
        await registry.close()


# -- unit versions: the Store's versions collection over each registry ---------------------


def _store(backend: Backend) -> Store:
    return Store(backend.registry, Keys(backend.prefix))


def _unit(name: str, text: str) -> Unit:
    unit_file = UnitFile.from_text(text)
    return Unit(name, unit_file.text, unit_file.hash)


async def _put(store: Store, name: str, text: str) -> UnitPut:
    """What a writer of ``text`` hands the Store, from the unit and head as they are now."""
    found = await store.get_unit_with_revision(name)
    head = await store.get_version_head(name)
    unit = _unit(name, text)
    added = versions_for(
        name,
        unit.text,
        unit.hash,
        found[0] if found else None,
        head[0] if head else None,
        Caller("tester", "10.0.0.9"),
        1000.0 + (head[0].number if head else 0),
    )
    return UnitPut(unit, found[1] if found else 0, added, head[1] if head else 0)


def _text(i: int) -> str:
    return f"[Service]\nExecStart=/bin/echo {i}\n"


async def test_a_unit_and_its_version_are_one_write(backend: Backend) -> None:
    store = _store(backend)
    await store.write_unit(await _put(store, "web.service", _text(1)))
    unit_kv = await backend.registry.get(store.keys.unit("web.service"))
    version_kv = await backend.registry.get(store.keys.unit_version("web.service", 1))
    head_kv = await backend.registry.get(store.keys.version_head("web.service"))
    assert unit_kv and version_kv and head_kv
    assert unit_kv.mod_revision == version_kv.mod_revision == head_kv.mod_revision
    [version] = await store.list_versions("web.service")
    assert (version.number, version.by, version.remote, version.time) == (
        1,
        "tester",
        "10.0.0.9",
        1000.0,
    )
    assert version.text == _text(1) and version.hash == _unit("x", _text(1)).hash
    assert await store.get_version("web.service", 1) == version


async def test_a_losing_write_leaves_no_version(backend: Backend) -> None:
    store = _store(backend)
    await store.write_unit(await _put(store, "web.service", _text(1)))
    stale_unit = await _put(store, "web.service", _text(2))
    stale_head = await _put(store, "web.service", _text(3))
    await store.write_unit(await _put(store, "web.service", _text(4)))  # version 2
    # Either compare failing refuses the whole write: unit, version, head, pruning.
    with pytest.raises(Conflict, match="changed meanwhile"):
        await store.write_unit(stale_unit)
    before = await store.get_unit_with_revision("web.service")
    assert before is not None
    with pytest.raises(Conflict):
        await store.write_unit(replace(stale_head, expected_revision=before[1]))
    assert [v.number for v in await store.list_versions("web.service")] == [1, 2]
    head = await store.get_version_head("web.service")
    assert head is not None and head[0].number == 2
    unit = await store.get_unit("web.service")
    assert unit is not None and unit.text == _text(4)
    # A create that lost (the unit exists now) writes no version either.
    with pytest.raises(Conflict, match="already exists"):
        await store.write_unit(
            replace(await _put(store, "web.service", _text(5)), expected_revision=0)
        )
    assert [v.number for v in await store.list_versions("web.service")] == [1, 2]


async def test_versions_are_pruned_to_the_last_20_and_numbers_never_repeat(
    backend: Backend,
) -> None:
    store = _store(backend)
    for i in range(1, 26):
        await store.write_unit(await _put(store, "web.service", _text(i)))
    kept = await store.list_versions("web.service")
    assert [v.number for v in kept] == list(range(6, 26))
    assert [v.text for v in kept] == [_text(i) for i in range(6, 26)]
    assert await store.get_version("web.service", 5) is None
    # Destroyed, the history stays; submitted again, it continues.
    assert await store.delete_unit("web.service")
    assert len(await store.list_versions("web.service")) == 20
    same = await _put(store, "web.service", _text(25))
    assert same.versions == ()  # the latest version's text: no new version
    await store.write_unit(same)
    await store.write_unit(await _put(store, "web.service", _text(99)))
    assert [v.number for v in await store.list_versions("web.service")] == list(range(7, 27))
    heads = await store.list_version_heads()
    assert {n: h.number for n, (h, _) in heads.items()} == {"web.service": 26}


async def test_many_units_with_versions_are_chunked_never_split(backend: Backend) -> None:
    store = _store(backend)
    names = [f"u{i:03d}.service" for i in range(100)]
    lost = await store.put_units([await _put(store, n, _text(i)) for i, n in enumerate(names)])
    assert lost == []
    revisions = set()
    for name in names:
        unit_kv = await backend.registry.get(store.keys.unit(name))
        version_kv = await backend.registry.get(store.keys.unit_version(name, 1))
        assert unit_kv and version_kv and unit_kv.mod_revision == version_kv.mod_revision
        revisions.add(unit_kv.mod_revision)
    assert len(revisions) == 3  # 100 units x 3 ops in transactions of <= 128 ops


async def test_a_batch_transaction_that_loses_writes_none_of_its_units(backend: Backend) -> None:
    store = _store(backend)
    names = [f"u{i:03d}.service" for i in range(10)]
    puts = [await _put(store, n, _text(i)) for i, n in enumerate(names)]
    await store.write_unit(await _put(store, "u004.service", "[Service]\nExecStart=/bin/racer\n"))
    lost = await store.put_units(puts)
    assert [p.unit.name for p in lost] == names
    assert [u.name for u in await store.list_units()] == ["u004.service"]
    assert list(await store.list_version_heads()) == ["u004.service"]
