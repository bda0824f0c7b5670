"""One write of a unit with the versions its text adds, as one transaction's worth (pure).

``UnitPut`` is what every writer of a unit's text hands the Store
(``write_unit``/``put_units``); ``unit_group`` turns it into the compares and
operations that must apply together: the unit, its new versions, its version
head, and the deletion of versions that fall out of the last ``KEEP``.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetd import versions
from fleetd.errors import InvalidInput
from fleetd.model import Unit
from fleetd.registry import codec
from fleetd.registry.base import Compare, CompareTarget, Delete, Op, Put
from fleetd.registry.batching import MAX_REQUEST_BYTES, Group
from fleetd.registry.keys import Keys, segment
from fleetd.versions import Head, Version


@dataclass(frozen=True, slots=True)
class UnitPut:
    """One compare-and-swap write of a unit: ``unit`` if ``units/<name>`` still has
    ``expected_revision`` (0: absent).

    A write of a text sets ``head_revision``, the mod revision of the name's
    version head as read (0: absent), and carries the ``versions`` the text
    adds (versions.versions_for); they are written with the unit, and the
    versions that fall out of the last KEEP are deleted, only if the head is
    unchanged.  ``head_revision`` None: the text is not touched (a desired
    state change)."""

    unit: Unit
    expected_revision: int
    versions: tuple[Version, ...] = ()
    head_revision: int | None = None

    def __post_init__(self) -> None:
        if self.versions and self.head_revision is None:
            raise ValueError("a write that adds versions must say which head it read")
        for before, after in zip(self.versions, self.versions[1:], strict=False):
            if after.number != before.number + 1:
                numbers = [v.number for v in self.versions]
                raise ValueError(f"versions of one write must be consecutive, got {numbers}")
        for version in self.versions:
            if version.name != self.unit.name:
                raise ValueError(f"a version of another unit written with {self.unit.name}")


def unit_group(keys: Keys, put: UnitPut) -> Group:
    """The compares and operations of ``put``, to apply in one transaction; InvalidInput
    if they are larger than one etcd request may be."""
    name = segment("unit name", put.unit.name)
    key = keys.unit(name)
    compares = [Compare(key, CompareTarget.MOD, put.expected_revision)]
    ops: list[Op] = [Put(key, codec.encode_unit(put.unit))]
    head_key = keys.version_head(name)
    if put.head_revision is not None:
        compares.append(Compare(head_key, CompareTarget.MOD, put.head_revision))
    for version in put.versions:
        ops.append(Put(keys.unit_version(name, version.number), codec.encode_unit_version(version)))
    if put.versions:
        last = put.versions[-1]
        ops.append(Put(head_key, codec.encode_version_head(Head(last.number, last.hash))))
        before = put.versions[0].number - 1
        ops.extend(Delete(keys.unit_version(name, n)) for n in versions.pruned(before, last.number))
    group = Group(tuple(compares), tuple(ops))
    if group.size > MAX_REQUEST_BYTES:
        kept = " with its version" if put.versions else ""
        raise InvalidInput(
            f"unit {name}: its file is too large to be written{kept} "
            f"({group.size} bytes in one etcd request, etcd takes at most {MAX_REQUEST_BYTES})"
        )
    return group
