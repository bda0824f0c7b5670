"""The ``fleetd`` command: the daemon, plus ``fleetd sandbox ...``."""

from __future__ import annotations

from fleetd.cmd import main

if __name__ == "__main__":
    main()
