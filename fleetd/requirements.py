"""[X-Fleet] -> Requirements (pure).

The value the scheduler works with.  Parsing (``parse_requirements``) lives
below the dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class MetadataOp(StrEnum):
    EQ = "="
    NE = "!="
    GE = ">="
    LE = "<="
    GT = ">"
    LT = "<"


@dataclass(frozen=True, slots=True)
class MetadataCondition:
    """``key op value``; for ``=`` several conditions on one key are OR-ed, keys are AND-ed."""

    key: str
    op: MetadataOp
    value: str


@dataclass(frozen=True, slots=True)
class Requirements:
    machine_id: str | None = None
    machine_of: tuple[str, ...] = ()
    metadata: tuple[MetadataCondition, ...] = ()
    conflicts: tuple[str, ...] = ()  # glob patterns
    global_: bool = False
    replaces: tuple[str, ...] = ()
    cpu_millis: int = 0  # reserved CPU in millicores
    memory_bytes: int = 0  # reserved memory in bytes
    at_most_once: bool = False
