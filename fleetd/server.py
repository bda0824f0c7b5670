"""Composition root: builds every part of one fleetd and supervises them in one place.

Parts: the embedded etcd (only when no ``etcd_servers`` are configured), the
registry client, the agent, the engine candidate (unless ``disable_engine``)
and the REST API.  They run as named tasks of one TaskGroup; the first one to
fail stops the others, and fleetd exits non-zero so systemd restarts it.

SIGHUP re-reads the API's tokens files (they are also re-read when they
change).  Stopping: SIGTERM/SIGINT cancel everything.  The agent keeps its lease on a
plain stop, so units keep running and the next fleetd adopts them; only a
machine shutdown (seen by the agent) revokes the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetd.config import Config
from fleetd.errors import FleetError, RegistryError
from fleetd.etcd_server import EtcdServer
from fleetd.notify import notify
from fleetd.registry.etcd import EtcdRegistry
from fleetd.registry.keys import Keys
from fleetd.registry.store import Store
from fleetd.retry import Backoff, retrying

if TYPE_CHECKING:
    from fleetd.readings import EngineReadings

log = logging.getLogger("fleetd")


class _Stop(Exception):
    """Raised inside the TaskGroup to end it on a signal or a machine shutdown."""


def _split_host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise FleetError(f"embedded_etcd_listen must be host:port, got {value!r}")
    return host, int(port)


class Server:
    def __init__(self, config: Config, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.etcd: EtcdServer | None = None
        self.store: Store | None = None
        self._stop = asyncio.Event()
        self._reloads: list[Callable[[], None]] = []

    def stop(self) -> None:
        """End ``run`` (what SIGTERM and SIGINT do), also while etcd is out of reach."""
        self._stop.set()

    def _endpoints(self) -> tuple[str, ...]:
        if not self.config.embedded_etcd:
            return self.config.etcd_servers
        host, port = _split_host_port(self.config.embedded_etcd_listen)
        self.etcd = EtcdServer(
            Path(self.config.state_dir) / "etcd", host=host, client_port=port, name="fleetd"
        )
        log.info("starting embedded etcd at %s (data %s)", self.etcd.endpoint, self.etcd.data_dir)
        self.etcd.start()
        return (self.etcd.endpoint,)

    def _registry(self, endpoints: tuple[str, ...]) -> EtcdRegistry:
        c = self.config
        return EtcdRegistry(
            endpoints,
            ca_file=c.etcd_cafile or None,
            cert_file=c.etcd_certfile or None,
            key_file=c.etcd_keyfile or None,
            tls_server_name=c.etcd_server_name or None,
            username=c.etcd_username or None,
            password=c.etcd_password or None,
            timeout=c.etcd_request_timeout,
        )

    async def _connect(self, store: Store) -> None:
        """Wait for the registry (with backoff) and check its schema version."""
        backoff = Backoff("registry not reachable", log, first=0.2)
        await retrying(store.ensure_schema, backoff, RegistryError)

    async def _connect_unless_stopped(self, store: Store) -> bool:
        """``_connect``, or False once stopped first: a stop must not wait for etcd."""
        connecting = asyncio.create_task(self._connect(store), name="connect")
        stopped = asyncio.create_task(self._stop.wait(), name="stop")
        try:
            await asyncio.wait({connecting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (connecting, stopped):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if not connecting.cancelled():
            connecting.result()  # its error, if it failed (not a reachability one)
            return True
        return False

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self._reload)
        endpoints = await asyncio.to_thread(self._endpoints)
        registry = self._registry(endpoints)
        store = self.store = Store(registry, Keys(self.config.etcd_key_prefix))
        try:
            if not await self._connect_unless_stopped(store):
                log.info("fleetd stopped before it reached etcd")
                return 0
            async with asyncio.TaskGroup() as group:
                for name, coro in self._parts(store, endpoints).items():
                    group.create_task(coro, name=name)
                group.create_task(self._until_stopped(), name="signals")
        except* _Stop:
            log.info("fleetd stopped")
        finally:
            with contextlib.suppress(FleetError):
                await registry.close()
            if self.etcd is not None:
                await asyncio.to_thread(self.etcd.stop)
        return 0

    def _parts(
        self, store: Store, endpoints: tuple[str, ...]
    ) -> dict[str, Coroutine[Any, Any, None]]:
        from fleetd.agent.agent import Agent

        agent = Agent(config=self.config, store=store, clock=self.clock)
        parts: dict[str, Coroutine[Any, Any, None]] = {
            "agent": self._agent(agent),
            "ready": self._ready(agent),
        }
        engine: EngineReadings | None = None
        if not self.config.disable_engine:
            from fleetd.engine.engine import Engine, settings_from_config
            from fleetd.readings import EngineReadings

            settings = settings_from_config(self.config)
            running = Engine(
                store,
                agent.machine.id,
                clock=self.clock,
                settings=settings,
                lease_registry=lambda: self._registry(endpoints),
            )
            parts["engine"] = running.run()
            engine = EngineReadings(running)
        parts["api"] = self._api(store, agent, engine)
        return parts

    async def _api(self, store: Store, agent: Any, engine: EngineReadings | None) -> None:
        from fleetd.api.serve import for_fleetd
        from fleetd.readings import agent_reading

        server = for_fleetd(
            self.config,
            store,
            machine_id=agent.machine.id,
            systemd=lambda: agent.systemd,
            agent=lambda: agent_reading(agent),
            engine=engine,
        )
        server.bind()
        self._reloads.append(server.reload_tokens)
        await server.run()

    def _reload(self) -> None:
        log.info("SIGHUP: re-reading the API's tokens")
        for reload in self._reloads:
            reload()

    async def _agent(self, agent: Any) -> None:
        await agent.run()
        # run() returns only when the machine shuts down: fleetd ends with it.
        raise _Stop

    async def _ready(self, agent: Any) -> None:
        await agent.presence.registered.wait()
        notify("READY=1")
        log.info("fleetd ready: machine %s registered", agent.machine.id)

    async def _until_stopped(self) -> None:
        await self._stop.wait()
        notify("STOPPING=1")
        raise _Stop
