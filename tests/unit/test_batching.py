"""Splitting batches into transactions etcd accepts."""

from __future__ import annotations

from fleetd.registry.base import MAX_TXN_OPS, Delete, Put
from fleetd.registry.batching import chunk_ops, duplicate_key


def test_chunks_respect_the_op_limit_and_keep_order() -> None:
    ops = [Put(f"/k{i}", b"") for i in range(300)]
    chunks = list(chunk_ops(ops))
    assert [len(c) for c in chunks] == [MAX_TXN_OPS, MAX_TXN_OPS, 300 - 2 * MAX_TXN_OPS]
    assert [op for chunk in chunks for op in chunk] == ops


def test_chunks_respect_the_byte_limit() -> None:
    ops = [Put(f"/k{i}", b"x" * 400_000) for i in range(5)]
    assert [len(c) for c in chunk_ops(ops)] == [2, 2, 1]
    huge = [Put("/huge", b"x" * 3_000_000), Put("/small", b"")]
    assert [len(c) for c in chunk_ops(huge)] == [1, 1]


def test_a_key_touched_twice_starts_a_new_chunk() -> None:
    ops = [Put("/a", b"1"), Put("/b", b""), Put("/a", b"2"), Delete("/a")]
    assert [len(c) for c in chunk_ops(ops)] == [2, 1, 1]
    assert [len(c) for c in chunk_ops([Delete("/d/", prefix=True), Put("/d/x", b"")])] == [1, 1]
    assert [len(c) for c in chunk_ops([Put("/d/x", b""), Delete("/d/", prefix=True)])] == [1, 1]
    assert list(chunk_ops([])) == []


def test_duplicate_key() -> None:
    assert duplicate_key([Put("/a", b""), Put("/b", b"")]) is None
    assert duplicate_key([Put("/a", b""), Put("/a", b"")]) == "/a"
    assert duplicate_key([Delete("/a/", prefix=True), Put("/a/b", b"")]) == "/a/b"
