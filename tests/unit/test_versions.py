"""Unit versions, pure: which versions a write adds, what it prunes, how two texts differ,
and how a write of a unit and its versions is cut into transactions."""

from __future__ import annotations

import pytest

from fleetd.caller import Caller
from fleetd.errors import InvalidInput
from fleetd.model import Unit
from fleetd.registry.base import MAX_TXN_OPS, Compare, Put
from fleetd.registry.batching import Group, chunk_groups
from fleetd.registry.keys import Keys
from fleetd.registry.unitput import UnitPut, unit_group
from fleetd.versiondiff import first, summarize, unified
from fleetd.versions import KEEP, UNRECORDED, Head, Version, kept, pruned, versions_for

ME = Caller("me", "10.0.0.1")


def test_a_new_text_is_the_next_version() -> None:
    [v] = versions_for(
        "a.service", "T2", "h2", Unit("a.service", "T1", "h1"), Head(4, "h1"), ME, 9.0
    )
    assert v == Version("a.service", 5, "T2", "h2", 9.0, "me", "10.0.0.1")
    [v] = versions_for("a.service", "T1", "h1", None, None, ME, 9.0)
    assert v.number == 1


def test_the_latest_text_again_adds_nothing() -> None:
    # Destroyed and submitted again with the latest version's text.
    assert versions_for("a.service", "T1", "h1", None, Head(3, "h1"), ME, 9.0) == ()
    # An older text is a change.
    [v] = versions_for("a.service", "T0", "h0", None, Head(3, "h1"), ME, 9.0)
    assert v.number == 4


def test_a_text_written_before_versions_is_recorded_first() -> None:
    old = Unit("a.service", "OLD", "h0")
    recorded, new = versions_for("a.service", "NEW", "h1", old, None, ME, 9.0)
    assert recorded == Version("a.service", 1, "OLD", "h0", None, UNRECORDED)
    assert (new.number, new.text, new.by) == (2, "NEW", "me")
    recorded, new = versions_for("a.service", "NEW", "h1", old, Head(7, "hx"), ME, 9.0)
    assert (recorded.number, new.number) == (8, 9)


def test_pruning_keeps_the_last_20() -> None:
    assert KEEP == 20
    assert list(pruned(0, 1)) == []
    assert list(pruned(19, 20)) == []
    assert list(pruned(20, 21)) == [1]
    assert list(pruned(57, 59)) == [38, 39]
    assert list(kept(3)) == [1, 2, 3]
    assert list(kept(59)) == list(range(40, 60))


def _put(versions: tuple[Version, ...], head_revision: int | None = 7) -> UnitPut:
    return UnitPut(Unit("a.service", "T", "h"), 5, versions, head_revision)


def test_a_unit_put_is_one_group_with_its_versions_head_and_pruning() -> None:
    keys = Keys("/f/")
    versions = (Version("a.service", 21, "T", "h", 1.0, "me"),)
    group = unit_group(keys, _put(versions))
    assert [(c.key, c.value) for c in group.compares] == [
        ("/f/units/a.service", 5),
        ("/f/version-heads/a.service", 7),
    ]
    assert [(type(op).__name__, op.key) for op in group.ops] == [
        ("Put", "/f/units/a.service"),
        ("Put", "/f/versions/a.service/21"),
        ("Put", "/f/version-heads/a.service"),
        ("Delete", "/f/versions/a.service/1"),
    ]
    state_only = unit_group(keys, UnitPut(Unit("a.service", "T", "h"), 5))
    assert [c.key for c in state_only.compares] == ["/f/units/a.service"]
    assert len(state_only.ops) == 1


def test_unit_puts_refuse_inconsistent_versions() -> None:
    v = Version("a.service", 3, "T", "h", 1.0, "me")
    with pytest.raises(ValueError, match="which head"):
        _put((v,), head_revision=None)
    with pytest.raises(ValueError, match="consecutive"):
        _put((v, Version("a.service", 5, "T", "h", 1.0, "me")))
    with pytest.raises(ValueError, match="another unit"):
        _put((Version("b.service", 3, "T", "h", 1.0, "me"),))


def test_a_unit_too_large_to_keep_with_its_version_is_invalid_input() -> None:
    big = "x" * 800_000
    put = UnitPut(
        Unit("a.service", big, "h"), 0, (Version("a.service", 1, big, "h", 1.0, "me"),), 0
    )
    with pytest.raises(
        InvalidInput, match=r"a\.service: its file is too large .* with its version"
    ):
        unit_group(Keys(), put)


def test_groups_are_never_split_across_transactions() -> None:
    def group(n_ops: int, n_compares: int = 2, size: int = 0) -> Group:
        ops = tuple(Put(f"/k{i}", b"x" * size) for i in range(n_ops))
        return Group(tuple(Compare.absent(f"/c{i}") for i in range(n_compares)), ops)

    assert list(chunk_groups([group(3)] * 100)) == [
        list(range(0, 42)),
        list(range(42, 84)),
        list(range(84, 100)),
    ]
    # Compares count against the limit too (etcd refuses more than 128).
    assert [len(r) for r in chunk_groups([group(1, n_compares=50)] * 5)] == [2, 2, 1]
    assert [len(r) for r in chunk_groups([group(2, size=400_000)] * 3)] == [1, 1, 1]
    assert list(chunk_groups([group(MAX_TXN_OPS + 5), group(1)])) == [[0], [1]]
    assert list(chunk_groups([])) == []


def test_summary_counts_lines_and_names_settings() -> None:
    a = "[Unit]\nDescription=A\n\n[Service]\nExecStart=/bin/a\nRestart=no\n"
    b = "[Unit]\nDescription=A\n\n[Service]\nExecStart=/bin/b\n\n[X-Fleet]\nGlobal=true\n"
    s = summarize(a, b)
    assert (s.added, s.removed) == (4, 2)
    assert s.line == (
        "+4 -2 lines; [Service] ExecStart changed, [X-Fleet] Global added, "
        "[Service] Restart removed"
    )
    many = "".join(f"K{i}=1\n" for i in range(6))
    s = summarize("[Service]\n", "[Service]\n" + many)
    assert (
        s.line
        == "+6 -0 lines; [Service] K0 added, [Service] K1 added, [Service] K2 added and 3 more"
    )
    assert summarize(a, a).line == "no change"
    assert first(a).line == "first version (6 lines)"


def test_unified_diff() -> None:
    assert unified("a\nb\n", "a\nc\n", "x v1", "x v2") == (
        "--- x v1\n+++ x v2\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n"
    )
    assert unified("a", "b", "x v1", "x v2").endswith("+b\n\\ No newline at end of file\n")
    assert unified("a\n", "a\n", "x v1", "x v2") == ""
