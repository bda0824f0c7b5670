"""The ``fleetctl`` console script: ``fleetd.cli.main.main`` in a process of its own.

fleetctl's imports (typer, pydantic and the wire models it builds, httpx, the
command modules) make most of its heap, and it lives as long as the process.
So the cyclic garbage collector is kept off while they run (its collections
there only walk what stays: about 0.035 s of CPU) and what they built is then
frozen out of it (``gc.freeze``): neither the collections while the command
runs nor the interpreter's own at its exit go through it again (at the exit
alone about 0.08 s of CPU otherwise).  The collector is on while the command
runs.  Not in ``main``: the tests call that in their own process.
"""

from __future__ import annotations

import gc


def main() -> None:
    gc.disable()
    try:
        from fleetd.cli.main import main as fleetctl
    finally:
        gc.freeze()
        gc.enable()
    fleetctl()
