"""The registry: the protocol, its etcd and in-memory implementations, and the typed Store.

The implementations are imported lazily so that pure modules importing
``fleetd.registry.keys`` or ``.base`` do not pull in grpc and asyncio.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fleetd.registry.base import (
    MAX_TXN_OPS,
    Compare,
    CompareTarget,
    Delete,
    EventType,
    KeyValue,
    Op,
    Put,
    Registry,
    TxnResult,
    WatchEvent,
)
from fleetd.registry.keys import Keys

if TYPE_CHECKING:
    from fleetd.registry.etcd import EtcdRegistry
    from fleetd.registry.memory import MemoryRegistry
    from fleetd.registry.store import Changes, Leader, Snapshot, Store

_LAZY = {
    "EtcdRegistry": "fleetd.registry.etcd",
    "MemoryRegistry": "fleetd.registry.memory",
    "Changes": "fleetd.registry.store",
    "Leader": "fleetd.registry.store",
    "Snapshot": "fleetd.registry.store",
    "Store": "fleetd.registry.store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "MAX_TXN_OPS",
    "Changes",
    "Compare",
    "CompareTarget",
    "Delete",
    "EtcdRegistry",
    "EventType",
    "KeyValue",
    "Keys",
    "Leader",
    "MemoryRegistry",
    "Op",
    "Put",
    "Registry",
    "Snapshot",
    "Store",
    "TxnResult",
    "WatchEvent",
]
