"""Serving the API with uvicorn: a unix socket (mode 0600) and optionally TCP.

The unix socket is protected by its mode (its requests' caller is ``unix
socket``); the TCP listener wraps the app in ``BearerAuth`` unless
authentication is explicitly disabled (then a warning is logged at start and
the caller is ``anonymous``).  TCP is HTTPS (``api_cert_file``,
``api_key_file``; client certificates required with ``api_client_ca_file``);
plain HTTP only when asked for by name (``api_insecure_http``), with a
warning at every start.  Sockets are bound here, before uvicorn starts, so a
bind failure is a ConfigError naming the address (uvicorn would exit the
process instead).  fleetd owns the signal handling, not uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from fleetd.caller import ANONYMOUS, UNIX_SOCKET
from fleetd.config import Config
from fleetd.engine.settings import settings_from_config
from fleetd.errors import ConfigError
from fleetd.model import SystemdLink
from fleetd.registry.store import Store
from fleetd.tls import TlsFiles, client_context, server_context
from fleetd.tokens import TokenSource

from .app import create_app
from .auth import AuditRefusal, BearerAuth, Identified, Tokens, load_token
from .collectors import AgentReading, EngineView
from .service.inspector import SystemdInspector
from .service.pagination import DEFAULT_PAGE_SIZE
from .service.peers import Peers
from .ui.gate import FixedCaller, TokenSignIn, UiGate

log = logging.getLogger(__name__)
SHUTDOWN_GRACE = 5.0


@dataclass(frozen=True, slots=True)
class Listener:
    address: str  # unix:///path or tcp://host:port
    unix_path: str | None = None
    host: str = ""
    port: int = 0

    @staticmethod
    def parse(address: str) -> Listener:
        if address.startswith("unix://"):
            path = address[len("unix://") :]
            if not path.startswith("/"):
                raise ConfigError(f"api_listen: unix socket path must be absolute: {address!r}")
            return Listener(address, unix_path=path)
        if address.startswith("tcp://"):
            host, sep, port = address[len("tcp://") :].rpartition(":")
            if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
                raise ConfigError(f"api_listen: expected tcp://host:port, got {address!r}")
            return Listener(address, host=host.strip("[]"), port=int(port))
        raise ConfigError(f"api_listen: expected unix:///path or tcp://host:port, got {address!r}")


def tcp_port(listen: Sequence[str]) -> int | None:
    """The port of the first TCP listener (other machines' APIs are reached on it)."""
    for address in listen:
        listener = Listener.parse(address)
        if listener.unix_path is None:
            return listener.port
    return None


def _bind_unix(path: str) -> socket.socket:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() or target.is_symlink():
        if not stat.S_ISSOCK(target.lstat().st_mode):
            raise ConfigError(f"api_listen: {path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            target.unlink()  # stale socket of a fleetd that is gone
        else:
            raise ConfigError(f"api_listen: another process is serving on {path}")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # the socket file is created 0600
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"api_listen: cannot bind {path}: {exc.strerror or exc}") from exc
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _bind_tcp(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ConfigError(f"api_listen: cannot resolve {host!r}: {exc}") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"api_listen: cannot bind tcp://{host}:{port}: {exc.strerror or exc}"
        ) from exc
    sock.listen(1024)
    sock.setblocking(False)
    return sock


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _server(app: ASGIApp, tls: ssl.SSLContext | None = None) -> _Server:
    config = uvicorn.Config(
        app,
        lifespan="off",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=int(SHUTDOWN_GRACE),
        proxy_headers=False,
        server_header=False,
    )
    config.load()
    # Our own context (fleetd/tls.py: files checked, TLS 1.2 at least), not uvicorn's.
    config.ssl = tls
    return _Server(config)


class ApiServer:
    """Bound listeners and their uvicorn servers; ``run()`` serves until cancelled."""

    def __init__(
        self,
        app: ASGIApp,
        listen: Sequence[str],
        *,
        tokens: Tokens | str | None = None,
        auth_disabled: bool = False,
        refused: AuditRefusal | None = None,
        tls: TlsFiles | None = None,
        insecure_http: bool = False,
    ) -> None:
        self.app = app
        self.listeners = [Listener.parse(a) for a in listen]
        if not self.listeners:
            raise ConfigError("api_listen: no address to serve the API on")
        has_tcp = any(lst.unix_path is None for lst in self.listeners)
        if has_tcp and not tokens and not auth_disabled:
            raise ConfigError(
                "api_listen has a TCP address: set api_tokens_file or api_token_file "
                "(or api_auth_disabled = true)"
            )
        if has_tcp and tls is None and not insecure_http:
            raise ConfigError(
                "api_listen has a TCP address: set api_cert_file and api_key_file (HTTPS), "
                "or api_insecure_http = true to serve plain HTTP"
            )
        if tls is not None and insecure_http:
            raise ConfigError("api_insecure_http = true and api_cert_file: choose one")
        self.tls = server_context(tls) if tls is not None else None
        self.tokens = tokens
        self.auth_disabled = auth_disabled
        self.refused = refused
        self._sockets: list[tuple[Listener, socket.socket]] = []

    def bind(self) -> None:
        """Bind every listener (ConfigError naming the address that failed)."""
        try:
            for listener in self.listeners:
                if listener.unix_path is not None:
                    sock = _bind_unix(listener.unix_path)
                else:
                    sock = _bind_tcp(listener.host, listener.port)
                self._sockets.append((listener, sock))
        except ConfigError:
            self.close()
            raise

    @property
    def addresses(self) -> list[str]:
        """The bound addresses (with the real port for ``tcp://host:0``)."""
        out = []
        for listener, sock in self._sockets:
            if listener.unix_path is not None:
                out.append(listener.address)
            else:
                host, port = sock.getsockname()[:2]
                out.append(f"tcp://{host}:{port}")
        return out

    def _app_for(self, listener: Listener) -> Any:
        """The app as ``listener`` serves it: its authentication, and the dashboard's
        sessions in front (api/ui/gate.py)."""
        if listener.unix_path is not None:
            inner = Identified(self.app, UNIX_SOCKET.name, remote=False)
            return UiGate(inner, FixedCaller(UNIX_SOCKET.name), self.refused)
        if self.auth_disabled:
            return UiGate(Identified(self.app, ANONYMOUS), FixedCaller(ANONYMOUS), self.refused)
        assert self.tokens
        auth = BearerAuth(self.app, self.tokens, refused=self.refused)
        return UiGate(auth, TokenSignIn(auth.tokens), self.refused)

    def reload_tokens(self) -> None:
        """Re-read the tokens files now (SIGHUP)."""
        if isinstance(self.tokens, TokenSource):
            self.tokens.reload()

    async def run(self) -> None:
        if not self._sockets:
            self.bind()
        servers = [
            (_server(self._app_for(lst), None if lst.unix_path else self.tls), sock)
            for lst, sock in self._sockets
        ]
        for address in self.addresses:
            if not address.startswith("tcp://"):
                log.info("API listening on %s", address)
                continue
            scheme = "https" if self.tls is not None else "http"
            log.info("API listening on %s (%s)", address, scheme)
            if self.tls is None:
                log.warning(
                    "API on %s serves plain HTTP (api_insecure_http = true): tokens and "
                    "unit files cross the network in clear",
                    address,
                )
            if self.auth_disabled:
                log.warning("API on %s accepts requests without a token (auth disabled)", address)
        tasks = [asyncio.create_task(srv.serve(sockets=[sock])) for srv, sock in servers]
        try:
            # Not gather(): cancelling run() must not cancel the servers, or requests in
            # flight die with the registry client (500s) instead of finishing below.
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            for srv, _ in servers:
                srv.should_exit = True
            await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE + 1)
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.gather(*tasks, return_exceptions=True)
            self.close()

    def close(self) -> None:
        for listener, sock in self._sockets:
            sock.close()
            if listener.unix_path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(listener.unix_path)
        self._sockets.clear()


def for_fleetd(
    config: Config,
    store: Store,
    *,
    machine_id: str | None,
    systemd: Callable[[], SystemdLink] | None = None,
    agent: Callable[[], AgentReading] | None = None,
    engine: EngineView | None = None,
) -> ApiServer:
    """The API of one fleetd as its configuration says (what server.py runs).

    The tokens (``api_tokens_file``, ``api_token_file``) guard the TCP listener; the
    token of ``api_token_file`` is also sent to other machines' APIs when forwarding
    status/journal requests of a caller that came without one (the unix socket).
    """
    token = load_token(config.api_token_file) if config.api_token_file else None
    tls = None
    if config.api_cert_file or config.api_key_file:
        tls = TlsFiles(config.api_cert_file, config.api_key_file, config.api_client_ca_file)
    elif config.api_client_ca_file:
        raise ConfigError("api_client_ca_file needs api_cert_file and api_key_file (HTTPS)")
    tokens = None
    if config.api_tokens_file or config.api_token_file:
        tokens = TokenSource(config.api_tokens_file or None, config.api_token_file or None)
    scheduling = settings_from_config(config)
    app = create_app(
        store,
        machine_id=machine_id,
        page_size=config.token_limit or DEFAULT_PAGE_SIZE,
        defaults=scheduling.defaults,
        scheduling=scheduling,
        inspector=SystemdInspector(),
        peers=Peers(
            port=tcp_port(config.api_listen),
            token=token,
            tls=peer_context(tls, config.api_ca_file) if tls is not None else None,
        ),
        systemd=systemd,
        agent=agent,
        engine=engine,
    )
    return ApiServer(
        app,
        config.api_listen,
        tokens=tokens,
        auth_disabled=config.api_auth_disabled,
        refused=app.state.audit.refused,
        tls=tls,
        insecure_http=config.api_insecure_http,
    )


def peer_context(tls: TlsFiles, ca_file: str = "") -> ssl.SSLContext:
    """How this fleetd reaches other machines' APIs over HTTPS: it trusts ``ca_file``
    (``api_ca_file``), else ``api_client_ca_file``, else the system's CAs, and presents
    its own certificate (for machines that require client certificates)."""
    return client_context(
        TlsFiles(tls.cert, tls.key, ca_file or tls.ca),
        ("api_ca_file" if ca_file else "api_client_ca_file", "api_cert_file", "api_key_file"),
    )
