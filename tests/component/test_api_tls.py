"""The API over HTTPS (certificates from fleetd pki): plain HTTP to it is refused, a client
certificate is required when a client CA is set, a bad file is a ConfigError naming its
option, and fleetctl speaks it with --ca-file/--cert-file/--key-file (or FLEETCTL_*)."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import leakcheck
import pytest
from apikit import make_app, new_store
from clirun import fleetctl

from fleetd.api.serve import ApiServer
from fleetd.errors import ConfigError
from fleetd.pki import Pki
from fleetd.tls import TlsFiles, client_context

TOKEN = leakcheck.secret("tls-token-0123456789abcdef")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    pki = Pki(tmp_path_factory.mktemp("pki"))
    pki.init_ca()
    pki.issue_machine("m1", ["127.0.0.1"])
    pki.issue_client("alice")
    rogue = Pki(tmp_path_factory.mktemp("rogue"))
    rogue.init_ca()
    rogue.issue_client("mallory")
    pki.rogue = rogue  # type: ignore[attr-defined]
    return pki


class Served:
    """An ApiServer over HTTPS in a thread of its own (fleetctl runs its own event loop)."""

    def __init__(self, tls: TlsFiles) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = ApiServer(make_app(new_store()), ["tcp://127.0.0.1:0"], tokens=TOKEN, tls=tls)
        self.server.bind()
        self.url = "https://" + self.server.addresses[0][len("tcp://") :]
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.task = asyncio.run_coroutine_threadsafe(self._run(), self.loop)

    async def _run(self) -> None:
        await self.server.run()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(lambda: [t.cancel() for t in asyncio.all_tasks(self.loop)])
        with pytest.raises(BaseException):  # noqa: B017 - cancelled, whatever its type
            self.task.result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def _serve(tls: TlsFiles) -> Iterator[Served]:
    served = Served(tls)
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture
def https(pki: Pki) -> Iterator[Served]:
    cert, key = pki.machine("m1")
    yield from _serve(TlsFiles(str(cert), str(key)))


@pytest.fixture
def mtls(pki: Pki) -> Iterator[Served]:
    cert, key = pki.machine("m1")
    yield from _serve(TlsFiles(str(cert), str(key), str(pki.ca_cert)))


def _get(url: str, verify: ssl.SSLContext | bool) -> httpx.Response:
    with httpx.Client(verify=verify, timeout=10) as client:
        return client.get(f"{url}/fleet/v1/units", headers={"Authorization": f"Bearer {TOKEN}"})


def test_https_with_the_cluster_ca_and_plain_http_refused(pki: Pki, https: Served) -> None:
    trusting = client_context(TlsFiles(ca=str(pki.ca_cert)))
    assert _get(https.url, trusting).status_code == 200
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        _get(https.url, client_context(TlsFiles(ca=str(pki.rogue.ca_cert))))  # type: ignore[attr-defined]
    with pytest.raises(httpx.HTTPError):
        _get(https.url.replace("https://", "http://"), False)


def test_client_certificate_required_with_a_client_ca(pki: Pki, mtls: Served) -> None:
    ca = str(pki.ca_cert)
    cert, key = pki.client("alice")
    assert _get(mtls.url, client_context(TlsFiles(str(cert), str(key), ca))).status_code == 200
    with pytest.raises(httpx.HTTPError):
        _get(mtls.url, client_context(TlsFiles(ca=ca)))
    rogue_cert, rogue_key = pki.rogue.client("mallory")  # type: ignore[attr-defined]
    with pytest.raises(httpx.HTTPError):
        _get(mtls.url, client_context(TlsFiles(str(rogue_cert), str(rogue_key), ca)))


def test_tls_is_required_on_tcp_and_bad_files_are_named(pki: Pki, tmp_path: Path) -> None:
    app = make_app(new_store())
    with pytest.raises(ConfigError, match=r"api_cert_file and api_key_file.*api_insecure_http"):
        ApiServer(app, ["tcp://127.0.0.1:0"], tokens=TOKEN)
    ApiServer(app, ["tcp://127.0.0.1:0"], tokens=TOKEN, insecure_http=True)
    cert, key = pki.machine("m1")
    other_key = tmp_path / "other.key"
    other_key.write_bytes(pki.client("alice")[1].read_bytes())
    cases = [
        (TlsFiles(str(tmp_path / "nope.crt"), str(key)), "api_cert_file: cannot read"),
        (TlsFiles(str(cert), str(other_key)), "not a PEM certificate and its matching"),
        (TlsFiles(str(cert), str(key), str(key)), r"api_client_ca_file .*no PEM CA"),
        (TlsFiles(str(cert), ""), "api_cert_file and api_key_file must be given together"),
    ]
    for tls, message in cases:
        with pytest.raises(ConfigError, match=message):
            ApiServer(app, ["tcp://127.0.0.1:0"], tokens=TOKEN, tls=tls)


def test_fleetctl_over_https(
    pki: Pki,
    mtls: Served,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cert, key = pki.client("alice")
    flags = ["--endpoint", mtls.url, "--token", TOKEN]
    files = ["--ca-file", str(pki.ca_cert), "--cert-file", str(cert), "--key-file", str(key)]
    ok = fleetctl(capsys, monkeypatch, [*flags, *files, "list-units"])
    assert ok.code == 0, ok.stderr
    env = {
        "FLEETCTL_ENDPOINT": mtls.url,
        "FLEETCTL_TOKEN": TOKEN,
        "FLEETCTL_CA_FILE": str(pki.ca_cert),
        "FLEETCTL_CERT_FILE": str(cert),
        "FLEETCTL_KEY_FILE": str(key),
    }
    assert fleetctl(capsys, monkeypatch, ["list-units"], env).code == 0
    no_ca = fleetctl(capsys, monkeypatch, [*flags, "list-units"])
    assert no_ca.code == 1 and "certificate verify failed" in no_ca.stderr.lower()
    assert TOKEN not in no_ca.output
    missing = fleetctl(capsys, monkeypatch, [*flags, "--ca-file", "/nonexistent", "list-units"])
    assert missing.code == 1 and "--ca-file: cannot read /nonexistent" in missing.stderr
