"""fleetd's composition root (fleetd/server.py): a stop is heard while etcd is still
out of reach (systemd's stop of a fleetd that never reached etcd waited out its 90 s
timeout and killed it)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from fleetd.config import Config
from fleetd.etcd_server import free_port
from fleetd.server import Server


async def test_a_stop_while_etcd_is_unreachable_ends_the_server(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="fleetd")
    config = Config(
        etcd_servers=(f"http://127.0.0.1:{free_port()}",),
        units_directory=str(tmp_path / "units"),
        state_dir=str(tmp_path / "state"),
        etcd_request_timeout=0.5,
    )
    server = Server(config)
    running = asyncio.create_task(server.run())
    async with asyncio.timeout(30):
        while not any("registry not reachable" in r.getMessage() for r in caplog.records):
            assert not running.done(), "fleetd ended before the registry was tried"
            await asyncio.sleep(0.05)
    server.stop()
    async with asyncio.timeout(10):
        assert await running == 0
