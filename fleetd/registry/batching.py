"""Splitting a batch of operations into transactions etcd accepts (pure).

etcd refuses a transaction with more than MAX_TXN_OPS operations, one that
puts the same key twice (or puts a key it also deletes), and a request
larger than its ``--max-request-bytes`` (1.5 MiB by default).  Both registry
implementations chunk with the same function, so they split identically.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from fleetd.registry.base import MAX_TXN_OPS, Delete, Op, Put

MAX_REQUEST_BYTES = 1_572_864
"""etcd's default ``--max-request-bytes`` (1.5 MiB); larger requests are refused."""

CHUNK_BYTES = 1_048_576
"""Chunks are cut at this size, leaving room for keys, compares and framing."""


def op_size(op: Op) -> int:
    """Approximate encoded size of one operation."""
    if isinstance(op, Put):
        return len(op.key.encode()) + len(op.value) + 16
    return len(op.key.encode()) * 2 + 8


def _overlaps(op: Op, keys: set[str], prefixes: list[str]) -> bool:
    if any(op.key.startswith(p) for p in prefixes):
        return True
    if isinstance(op, Delete) and op.prefix:
        return any(k.startswith(op.key) for k in keys)
    return op.key in keys


def duplicate_key(ops: Sequence[Op]) -> str | None:
    """The first key that ``ops`` touch twice in a way etcd refuses in one txn, if any."""
    keys: set[str] = set()
    prefixes: list[str] = []
    for op in ops:
        if _overlaps(op, keys, prefixes):
            return op.key
        _remember(op, keys, prefixes)
    return None


def _remember(op: Op, keys: set[str], prefixes: list[str]) -> None:
    if isinstance(op, Delete) and op.prefix:
        prefixes.append(op.key)
    else:
        keys.add(op.key)


def chunk_ops(
    ops: Sequence[Op], max_ops: int = MAX_TXN_OPS, max_bytes: int = CHUNK_BYTES
) -> Iterator[list[Op]]:
    """Consecutive chunks of ``ops``, in order, each a valid etcd transaction body.

    A chunk ends before the op that would exceed ``max_ops`` or ``max_bytes``
    or touch a key the chunk already touches.  An op larger than
    ``max_bytes`` forms a chunk on its own (etcd then refuses it).
    """
    chunk: list[Op] = []
    keys: set[str] = set()
    prefixes: list[str] = []
    size = 0
    for op in ops:
        n = op_size(op)
        if chunk and (
            len(chunk) >= max_ops or size + n > max_bytes or _overlaps(op, keys, prefixes)
        ):
            yield chunk
            chunk, keys, prefixes, size = [], set(), [], 0
        chunk.append(op)
        size += n
        _remember(op, keys, prefixes)
    if chunk:
        yield chunk
