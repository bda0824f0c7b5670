"""Splitting a batch of operations into transactions etcd accepts (pure).

etcd refuses a transaction with more than MAX_TXN_OPS operations (or
compares), one that puts the same key twice (or puts a key it also deletes),
and a request larger than its ``--max-request-bytes`` (1.5 MiB by default).
Both registry implementations chunk with the same function, so they split
identically.  ``chunk_groups`` keeps groups of compares and operations that
must apply together (a unit and its version) in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from fleetd.registry.base import MAX_TXN_OPS, Compare, Delete, Op, Put

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


@dataclass(frozen=True, slots=True)
class Group:
    """Compares and operations that belong in the same transaction."""

    compares: tuple[Compare, ...]
    ops: tuple[Op, ...]
    size: int = field(init=False, compare=False)
    """Approximate encoded size (like ``op_size``)."""

    def __post_init__(self) -> None:
        size = sum(op_size(op) for op in self.ops)
        size += sum(len(c.key) + 16 for c in self.compares)
        object.__setattr__(self, "size", size)


def chunk_groups(
    groups: Sequence[Group], max_ops: int = MAX_TXN_OPS, max_bytes: int = CHUNK_BYTES
) -> Iterator[list[int]]:
    """Consecutive runs of ``groups`` (as indices), each run fitting one transaction:
    at most ``max_ops`` compares and ``max_ops`` operations and about ``max_bytes``.

    A group is never split; one larger than the limits forms a run on its own
    (etcd then refuses it).  Groups must not touch each other's keys.
    """
    run: list[int] = []
    ops = compares = size = 0
    for index, group in enumerate(groups):
        n = group.size
        if run and (
            ops + len(group.ops) > max_ops
            or compares + len(group.compares) > max_ops
            or size + n > max_bytes
        ):
            yield run
            run, ops, compares, size = [], 0, 0, 0
        run.append(index)
        ops += len(group.ops)
        compares += len(group.compares)
        size += n
    if run:
        yield run
