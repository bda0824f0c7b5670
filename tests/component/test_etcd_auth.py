"""fleetd/etcd_auth.py against a real etcd with client certificates: authentication on,
fleetd's user may only touch the registry prefix, and running it again changes nothing;
on both etcds fleetd supports (the bundled 3.5 and Debian's 3.4, the one provision.sh runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetd.errors import FleetError
from fleetd.etcd_auth import ensure_auth
from fleetd.etcd_server import EtcdServer, free_port
from fleetd.pki import Pki
from fleetd.registry.etcd import EtcdRegistry
from fleetd.sandbox import security

pytestmark = pytest.mark.etcd


async def test_ensure_auth_is_idempotent_and_limits_fleetd(
    tmp_path_factory: pytest.TempPathFactory, etcd_binary: Path | None
) -> None:
    state = tmp_path_factory.mktemp("state")
    security.make_pki(state, {}, "127.0.0.1")
    tls = security.host_etcd_tls(state)
    port, metrics = free_port(), free_port()
    url = f"https://127.0.0.1:{port}"
    server = EtcdServer(
        state / "data",
        binary=etcd_binary,
        client_port=port,
        unsafe_no_fsync=True,
        extra_args=[
            f"--listen-client-urls={url}",
            f"--advertise-client-urls={url}",
            f"--listen-metrics-urls=http://127.0.0.1:{metrics}",
            *tls.args(),
        ],
        health_url=f"http://127.0.0.1:{metrics}/health",
    )
    server.start()
    pki = Pki(security.pki_dir(state))
    try:
        root_cert, root_key = pki.client("root")
        for _ in range(2):
            await ensure_auth(
                [url],
                ca_file=str(pki.ca_cert),
                cert_file=str(root_cert),
                key_file=str(root_key),
                prefix="/fleet/",
            )
        cert, key = pki.client("fleetd")
        registry = EtcdRegistry(
            [url], ca_file=str(pki.ca_cert), cert_file=str(cert), key_file=str(key), timeout=5
        )
        try:
            await registry.put("/fleet/x", b"1")
            with pytest.raises(FleetError, match="permission denied"):
                await registry.put("/other", b"1")
        finally:
            await registry.close()
    finally:
        server.stop()
