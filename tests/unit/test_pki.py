"""fleetd pki: a CA and leaves that verify, keys 0600, idempotent runs, clear refusals."""

from __future__ import annotations

import datetime as dt
import os
import re
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from fleetd.pki import Outcome, Pki, PkiError


def sans(path: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(v.value) for v in ext}


def test_ca_machine_client(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "pki")
    assert pki.init_ca().outcome is Outcome.CREATED
    m1 = pki.issue_machine("m1", ["10.0.0.1"], ["m1.example"])
    root = pki.issue_client("root")
    for key in (pki.ca_key, m1.key, root.key):
        assert os.stat(key).st_mode & 0o777 == 0o600
    assert sans(m1.cert) == {"10.0.0.1", "127.0.0.1", "m1", "m1.example", "localhost"}
    cert = x509.load_pem_x509_certificate(root.cert.read_bytes())
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.subject.rfc4514_string() == "CN=root"
    # The files are what Python's TLS loads: a server context and a client that trusts the CA.
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(m1.cert, m1.key)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(pki.ca_cert)
    client.load_cert_chain(root.cert, root.key)


def test_runs_again_keep_what_is_right_and_reissue_what_changed(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    pki.init_ca()
    first = pki.issue_machine("m1", ["10.0.0.1"])
    before = first.cert.read_bytes()
    assert pki.init_ca().outcome is Outcome.KEPT
    assert pki.issue_machine("m1", ["10.0.0.1"]).outcome is Outcome.KEPT
    assert first.cert.read_bytes() == before
    again = pki.issue_machine("m1", ["10.0.0.2"])
    assert again.outcome is Outcome.REISSUED
    assert "10.0.0.2" in sans(again.cert) and "10.0.0.1" not in sans(again.cert)
    later = Pki(tmp_path, clock=lambda: dt.datetime.now(dt.UTC) + dt.timedelta(days=800))
    assert later.issue_machine("m1", ["10.0.0.2"]).outcome is Outcome.REISSUED


def test_a_leaf_of_another_ca_is_reissued(tmp_path: Path) -> None:
    one, other = Pki(tmp_path / "one"), Pki(tmp_path / "other")
    one.init_ca()
    other.init_ca()
    leaf = other.issue_client("fleetd")
    (tmp_path / "one" / "clients").mkdir()
    for path in (leaf.cert, leaf.key):
        (tmp_path / "one" / "clients" / path.name).write_bytes(path.read_bytes())
    assert one.issue_client("fleetd").outcome is Outcome.REISSUED


def test_refusals(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    with pytest.raises(PkiError, match=re.escape("ca.crt and ca.key must both be there")):
        pki.issue_client("root")
    pki.init_ca()
    with pytest.raises(PkiError, match="'a b': use letters"):
        pki.issue_client("a b")
    with pytest.raises(PkiError, match=re.escape("--ip '10.0.0.300' is not an IP address")):
        pki.issue_machine("m1", ["10.0.0.300"])
    with pytest.raises(PkiError, match="--dns 'bad_name!' is not a host name"):
        pki.issue_machine("m1", [], ["bad_name!"])
    assert not (tmp_path / "machines").exists()
    pki.ca_key.unlink()
    with pytest.raises(PkiError, match="one is missing"):
        pki.init_ca()
    other = Pki(tmp_path / "x")
    other.init_ca()
    pki.ca_key.write_bytes(other.ca_key.read_bytes())
    with pytest.raises(PkiError, match="is not the key of"):
        pki.issue_client("root")


def test_etcd_auth_takes_its_request_timeout_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """provision.sh --slow gives `fleetd pki etcd-auth` more time per etcd request."""
    from typer.testing import CliRunner

    from fleetd import pkicmd

    seen: dict[str, object] = {}

    async def fake_ensure_auth(endpoints: list[str], **kw: object) -> None:
        seen.update(kw, endpoints=endpoints)

    monkeypatch.setattr(pkicmd, "ensure_auth", fake_ensure_auth)
    pki = Pki(tmp_path)
    pki.init_ca()
    pki.issue_client("root")
    runner = CliRunner()
    args = ["etcd-auth", str(tmp_path), "https://10.0.0.1:2379"]
    assert runner.invoke(pkicmd.app, args).exit_code == 0
    assert seen["request_timeout"] == 10.0
    assert runner.invoke(pkicmd.app, [*args, "--request-timeout", "60"]).exit_code == 0
    assert seen["request_timeout"] == 60.0 and seen["endpoints"] == ["https://10.0.0.1:2379"]
    refused = runner.invoke(pkicmd.app, [*args, "--request-timeout", "0"])
    assert refused.exit_code == 2
