from __future__ import annotations

from fleetd.api import wire
from fleetd.cli.progress import readable_reason

M1 = "d91c0246f0b04805a47c1549af82687c"
M2 = "551247bd65bc43a0b6106b3e1b9e13a5"
MACHINES = {M1: wire.Machine(id=M1, primaryIP="10.0.0.1", metadata={}, hostname="m1")}


def test_known_machine_ids_become_hostnames_unknown_ones_short_ids() -> None:
    text = f"{M1}: conflicts with cache@1.service; {M2}: needs 1T memory, 2G free"
    assert readable_reason(text, MACHINES) == (
        "m1: conflicts with cache@1.service; 551247bd: needs 1T memory, 2G free"
    )


def test_full_keeps_machine_ids() -> None:
    text = f"{M1}: conflicts with cache@1.service"
    assert readable_reason(text, MACHINES, full=True) == text


def test_text_without_ids_is_unchanged() -> None:
    assert readable_reason("3 machines: metadata rack=a wanted", MACHINES) == (
        "3 machines: metadata rack=a wanted"
    )
