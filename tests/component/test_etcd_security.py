"""EtcdRegistry against a real etcd that wants TLS client certificates, and one that wants
a username and password: with the right credentials a Store round trip and a watch work;
with wrong ones every call fails with a fleetd error that says why (never a gRPC one).
Each runs on both etcds fleetd supports (``etcd_binary``): the bundled 3.5 and
Debian's maintained 3.4.23, the one for production.

Certificates are made with the ``openssl`` command line (EC P-256, valid one day): a CA,
a server certificate for 127.0.0.1, a client certificate, and a second, unrelated CA
with its own client certificate for the "wrong credentials" cases.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import leakcheck
import pytest

from fleetd import model
from fleetd.errors import ConfigError, FleetError, RegistryError, RegistryUnavailable
from fleetd.etcd_server import EtcdServer, find_etcdctl, free_port
from fleetd.registry.base import EventType
from fleetd.registry.etcd import EtcdRegistry
from fleetd.registry.keys import Keys
from fleetd.registry.store import Store
from fleetd.unitfile import UnitFile

pytestmark = [
    pytest.mark.etcd,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command"),
]

HOST = "127.0.0.1"
ROOT_PASSWORD = leakcheck.secret("root-pass-0123456789")
SERVICE = "[Service]\nExecStart=/bin/sleep 1000\n"
TIMEOUT = 2.0


def _openssl(*args: str | Path, cwd: Path) -> None:
    subprocess.run(
        ["openssl", *map(str, args)], cwd=cwd, check=True, capture_output=True, timeout=30
    )


def _ca(d: Path, name: str) -> None:
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "1",
        "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )  # fmt: skip


def _leaf(d: Path, name: str, ca: str, usage: str, san: str = "") -> None:
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
        cwd=d,
    )  # fmt: skip
    ext = d / f"{name}.ext"
    ext.write_text(
        f"basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        f"extendedKeyUsage={usage}\n" + (f"subjectAltName={san}\n" if san else "")
    )
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-out", f"{name}.crt", "-days", "1", "-extfile", ext.name,
        cwd=d,
    )  # fmt: skip


@dataclass(frozen=True)
class Pki:
    dir: Path

    def __getitem__(self, name: str) -> str:
        return str(self.dir / name)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    _ca(d, "ca")
    _ca(d, "rogue-ca")
    _leaf(d, "server", "ca", "serverAuth", f"IP:{HOST},DNS:localhost")
    _leaf(d, "client", "ca", "clientAuth")
    _leaf(d, "rogue-client", "rogue-ca", "clientAuth")
    return Pki(d)


def _server(
    data: Path, extra: list[str], scheme: str, binary: Path | None
) -> tuple[EtcdServer, str]:
    port, metrics = free_port(HOST), free_port(HOST)
    url = f"{scheme}://{HOST}:{port}"
    server = EtcdServer(
        data,
        binary=binary,
        client_port=port,
        unsafe_no_fsync=True,
        extra_args=[
            f"--listen-client-urls={url}",
            f"--advertise-client-urls={url}",
            f"--listen-metrics-urls=http://{HOST}:{metrics}",
            *extra,
        ],
        health_url=f"http://{HOST}:{metrics}/health",
    )
    return server, url


@pytest.fixture(scope="module")
def tls_etcd(
    tmp_path_factory: pytest.TempPathFactory, pki: Pki, etcd_binary: Path | None
) -> Iterator[str]:
    """An etcd serving only https and only to clients with a certificate from ``ca``
    (each supported etcd in turn: the bundled 3.5 and Debian's 3.4)."""
    server, url = _server(
        tmp_path_factory.mktemp("etcd-tls") / "data",
        [
            f"--cert-file={pki['server.crt']}",
            f"--key-file={pki['server.key']}",
            "--client-cert-auth",
            f"--trusted-ca-file={pki['ca.crt']}",
        ],
        "https",
        etcd_binary,
    )
    server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def auth_etcd(tmp_path_factory: pytest.TempPathFactory, etcd_binary: Path | None) -> Iterator[str]:
    """An etcd with authentication on: user ``root`` (password ROOT_PASSWORD) and user
    ``reader``, who may only read keys under ``/fleet/`` (each supported etcd in turn)."""
    server, url = _server(tmp_path_factory.mktemp("etcd-auth") / "data", [], "http", etcd_binary)
    server.start()
    etcdctl = str(find_etcdctl())

    def ctl(*args: str) -> None:
        subprocess.run(
            [etcdctl, f"--endpoints={url}", *args], check=True, capture_output=True, timeout=30
        )

    try:
        ctl("user", "add", f"root:{ROOT_PASSWORD}")
        ctl("user", "add", "reader:reader-pass-0123")
        ctl("role", "add", "fleet-reader")
        ctl("role", "grant-permission", "fleet-reader", "--prefix=true", "read", "/fleet/")
        ctl("user", "grant-role", "reader", "fleet-reader")
        ctl("auth", "enable")
        yield url
    finally:
        server.stop()


@pytest.fixture
async def registries() -> AsyncIterator[list[EtcdRegistry]]:
    """Registries a test makes; all closed at the end."""
    made: list[EtcdRegistry] = []
    try:
        yield made
    finally:
        for registry in made:
            await registry.close()


async def _round_trip(registry: EtcdRegistry, prefix: str) -> None:
    """Write a unit through the Store, read it back, and see the write on a watch."""
    store = Store(registry, Keys(prefix))
    _, start = await registry.get_prefix(prefix)
    events: asyncio.Queue[list[str]] = asyncio.Queue()

    async def watch() -> None:
        async for batch in registry.watch_prefix(prefix, start + 1):
            await events.put([e.key for e in batch if e.type is EventType.PUT])

    task = asyncio.create_task(watch())
    try:
        unit = UnitFile.from_text(SERVICE)
        await store.put_unit(
            model.Unit("web.service", unit.to_text(), unit.hash, model.DesiredState.LAUNCHED)
        )
        got = await store.get_unit("web.service")
        assert got is not None and got.hash == unit.hash
        assert [u.name for u in await store.list_units()] == ["web.service"]
        seen = await asyncio.wait_for(events.get(), 10)
        assert seen == [store.keys.unit("web.service")]
        assert await store.delete_unit("web.service")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def _refused(registry: EtcdRegistry, *words: str) -> FleetError:
    """The error a read and a write fail with: a fleetd error naming the operation (or the
    authentication) and the reason."""
    store = Store(registry, Keys("/fleet/"))
    for attempt in (store.list_units, lambda: registry.put("/fleet/x", b"1")):
        with pytest.raises(FleetError) as info:
            await asyncio.wait_for(attempt(), TIMEOUT * 4)
        message = str(info.value)
        assert "/fleet/" in message or "authenticate as" in message, message
        assert any(w.lower() in message.lower() for w in words), message
        assert len(message) < 1000
    return info.value


# --- TLS client certificates ---------------------------------------------------------------


async def test_tls_with_client_certificate(
    tls_etcd: str, pki: Pki, registries: list[EtcdRegistry], key_prefix: str
) -> None:
    registry = EtcdRegistry(
        [tls_etcd],
        ca_file=pki["ca.crt"],
        cert_file=pki["client.crt"],
        key_file=pki["client.key"],
        timeout=TIMEOUT,
    )
    registries.append(registry)
    await _round_trip(registry, key_prefix)


async def test_tls_server_name_override(
    tls_etcd: str, pki: Pki, registries: list[EtcdRegistry], key_prefix: str
) -> None:
    """Reaching the server by an address its certificate does not name, with the name it has."""
    registry = EtcdRegistry(
        [tls_etcd.replace(HOST, "localhost")],
        ca_file=pki["ca.crt"],
        cert_file=pki["client.crt"],
        key_file=pki["client.key"],
        tls_server_name="localhost",
        timeout=TIMEOUT,
    )
    registries.append(registry)
    assert await registry.get(f"{key_prefix}nothing") is None


@pytest.mark.parametrize(
    ("label", "ca", "cert", "key"),
    [
        ("no client certificate", "ca.crt", None, None),
        ("client certificate from another CA", "ca.crt", "rogue-client.crt", "rogue-client.key"),
        ("server not trusted", "rogue-ca.crt", "client.crt", "client.key"),
    ],
)
async def test_tls_wrong_credentials_fail_clearly(
    tls_etcd: str,
    pki: Pki,
    registries: list[EtcdRegistry],
    label: str,
    ca: str,
    cert: str | None,
    key: str | None,
) -> None:
    registry = EtcdRegistry(
        [tls_etcd],
        ca_file=pki[ca],
        cert_file=pki[cert] if cert else None,
        key_file=pki[key] if key else None,
        timeout=TIMEOUT,
    )
    registries.append(registry)
    error = await _refused(registry, "TLS with etcd failed")
    assert isinstance(error, RegistryError), label


async def test_https_endpoint_without_ca_uses_tls(
    tls_etcd: str, registries: list[EtcdRegistry]
) -> None:
    """https:// alone means TLS with the system's CAs (which do not know this test CA)."""
    registry = EtcdRegistry([tls_etcd], timeout=TIMEOUT)
    registries.append(registry)
    await _refused(registry, "TLS with etcd failed")


async def test_plain_http_to_a_tls_etcd_fails_clearly(
    tls_etcd: str, registries: list[EtcdRegistry]
) -> None:
    registry = EtcdRegistry([tls_etcd.replace("https://", "http://")], timeout=TIMEOUT)
    registries.append(registry)
    error = await _refused(registry, "unreachable")
    assert isinstance(error, RegistryUnavailable)


def test_tls_files_are_checked_up_front(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="etcd_cafile"):
        EtcdRegistry(["https://127.0.0.1:1"], ca_file=str(tmp_path / "missing.crt"))
    with pytest.raises(ConfigError, match="together"):
        EtcdRegistry(["https://127.0.0.1:1"], ca_file=pki["ca.crt"], cert_file=pki["client.crt"])
    with pytest.raises(ConfigError, match="etcd_cafile"):
        EtcdRegistry(
            ["https://127.0.0.1:1"], cert_file=pki["client.crt"], key_file=pki["client.key"]
        )


# --- username and password -----------------------------------------------------------------


async def test_auth_with_username_and_password(
    auth_etcd: str, registries: list[EtcdRegistry], key_prefix: str
) -> None:
    registry = EtcdRegistry([auth_etcd], username="root", password=ROOT_PASSWORD, timeout=TIMEOUT)
    registries.append(registry)
    await _round_trip(registry, key_prefix)


@pytest.mark.parametrize(
    ("label", "username", "password", "words"),
    [
        ("wrong password", "root", "wrong-password", ("invalid user ID or password",)),
        ("unknown user", "nobody", "whatever-password", ("invalid user ID or password",)),
        ("no credentials", None, None, ("requires authentication",)),
    ],
)
async def test_auth_wrong_credentials_fail_clearly(
    auth_etcd: str,
    registries: list[EtcdRegistry],
    label: str,
    username: str | None,
    password: str | None,
    words: tuple[str, ...],
) -> None:
    registry = EtcdRegistry([auth_etcd], username=username, password=password, timeout=TIMEOUT)
    registries.append(registry)
    error = await _refused(registry, *words)
    assert isinstance(error, RegistryError), label
    assert not isinstance(error, RegistryUnavailable), f"{label}: {error}"


async def test_auth_watch_with_wrong_password_fails(
    auth_etcd: str, registries: list[EtcdRegistry]
) -> None:
    registry = EtcdRegistry([auth_etcd], username="root", password="nope-nope", timeout=TIMEOUT)
    registries.append(registry)
    with pytest.raises(RegistryError, match="authenticate"):
        async with asyncio.timeout(TIMEOUT * 4):
            async for _ in registry.watch_prefix("/fleet/", 1):
                pass


async def test_auth_role_limits_are_reported(
    auth_etcd: str, registries: list[EtcdRegistry]
) -> None:
    """A user whose role may only read /fleet/: reads work, a write is refused clearly."""
    registry = EtcdRegistry(
        [auth_etcd],
        username="reader",
        password=leakcheck.secret("reader-pass-0123"),
        timeout=TIMEOUT,
    )
    registries.append(registry)
    assert await Store(registry, Keys("/fleet/")).list_units() == []
    with pytest.raises(RegistryError, match=r"(?i)refused|permission") as info:
        await registry.put("/fleet/units/x.service", b"{}")
    assert not isinstance(info.value, RegistryUnavailable)


# --- fleetctl --driver etcd -----------------------------------------------------------------


def test_fleetctl_driver_etcd_with_tls_and_with_a_password(
    tls_etcd: str,
    auth_etcd: str,
    pki: Pki,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from clirun import fleetctl

    tls = ["--driver", "etcd", "--etcd-endpoints", tls_etcd, "--request-timeout", "3"]
    files = [
        "--ca-file", pki["ca.crt"], "--cert-file", pki["client.crt"],
        "--key-file", pki["client.key"],
    ]  # fmt: skip
    ok = fleetctl(capsys, monkeypatch, [*tls, *files, "list-units"])
    assert ok.code == 0, ok.stderr
    refused = fleetctl(capsys, monkeypatch, [*tls, "--ca-file", pki["ca.crt"], "list-units"])
    assert refused.code == 1 and "TLS with etcd failed" in refused.stderr
    auth = ["--driver", "etcd", "--etcd-endpoints", auth_etcd, "--request-timeout", "3"]
    env = {"FLEETCTL_ETCD_USERNAME": "root", "FLEETCTL_ETCD_PASSWORD": ROOT_PASSWORD}
    assert fleetctl(capsys, monkeypatch, [*auth, "list-units"], env).code == 0
    wrong = fleetctl(
        capsys, monkeypatch, [*auth, "--etcd-username", "root", "--etcd-password",
                              ROOT_PASSWORD + "x", "list-units"],
    )  # fmt: skip
    assert wrong.code == 1 and "invalid user ID or password" in wrong.stderr
    assert ROOT_PASSWORD not in wrong.output
    half = fleetctl(capsys, monkeypatch, [*auth, "--etcd-username", "root", "list-units"])
    assert half.code == 1 and "must be given together" in half.stderr
