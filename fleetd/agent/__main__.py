"""``python -m fleetd.agent``: run only the agent of this machine (no engine, no API).

For debugging and for the agent's integration tests and benchmarks, which
drive it by writing ``schedule/<machine>/`` entries themselves.  Options are
fleetd's (config file, ``FLEETD_*`` environment, ``--option value`` flags);
``--lease-file`` says where the lease id is kept.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence

from fleetd import config, flags
from fleetd.agent.agent import DEFAULT_LEASE_FILE, Agent
from fleetd.errors import FleetError
from fleetd.registry.etcd import EtcdRegistry
from fleetd.registry.keys import Keys
from fleetd.registry.store import Store


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fleetd.agent", description=__doc__)
    parser.add_argument(
        "--config", metavar="FILE", help=f"config file (default: {config.DEFAULT_CONFIG_FILE})"
    )
    parser.add_argument(
        "--lease-file", default=DEFAULT_LEASE_FILE, help="where the lease id is kept"
    )
    flags.add_options(parser)
    return parser


async def _run(cfg: config.Config, lease_file: str) -> None:
    if not cfg.etcd_servers:
        raise FleetError("the agent alone needs etcd_servers (no embedded etcd)")
    registry = EtcdRegistry(cfg.etcd_servers, timeout=cfg.etcd_request_timeout)
    try:
        store = Store(registry, Keys(cfg.etcd_key_prefix))
        agent = Agent(config=cfg, store=store, clock=time.monotonic, lease_file=lease_file)
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        await agent.run()
    finally:
        await registry.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        cfg = config.load(args.config, env=os.environ, flags=flags.given(args))
    except FleetError as exc:
        print(f"fleetd agent: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if cfg.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(_run(cfg, args.lease_file))
    except (KeyboardInterrupt, asyncio.CancelledError):
        return 0
    except FleetError as exc:
        print(f"fleetd agent: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
