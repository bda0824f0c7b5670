"""A cluster's certificates (the ``cryptography`` library): one CA, a certificate per
machine, client certificates.

Layout of a PKI directory (keys mode 0600, certificates 0644)::

    ca.crt  ca.key                      the cluster's CA
    machines/NAME.crt  NAME.key         machine NAME: etcd member (server and
                                        peer), the API's HTTPS, and the client
                                        side of both; SANs: its IPs and names
    clients/NAME.crt  NAME.key          a client, common name NAME: etcd takes
                                        it as the user name (``fleetd`` for the
                                        daemons, ``root`` for etcdctl), the API
                                        as a client certificate

Keys are ECDSA P-256, signatures SHA-256.  Every operation is idempotent: a
file that is there and right is kept (``Outcome.KEPT``); a machine
certificate whose names changed, that another CA signed or that ends within
30 days is issued again (``REISSUED``).  A CA is never replaced: a directory
with a broken one is an error to fix by hand.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fleetd.errors import ConfigError

CA_DAYS = 3650
LEAF_DAYS = 825
RENEW_BEFORE = dt.timedelta(days=30)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_DNS = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9*]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$"
)


class PkiError(ConfigError):
    """A PKI directory or request that cannot be used as it is."""


class Outcome(StrEnum):
    CREATED = "created"
    KEPT = "kept"
    REISSUED = "reissued"


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate and key on disk, and what was done to get them."""

    cert: Path
    key: Path
    outcome: Outcome


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Pki:
    """The PKI in directory ``root``; ``clock`` gives the current time (UTC)."""

    def __init__(self, root: Path, clock: Callable[[], dt.datetime] = _now) -> None:
        self.root = root
        self.clock = clock

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    def machine(self, name: str) -> tuple[Path, Path]:
        return self.root / "machines" / f"{name}.crt", self.root / "machines" / f"{name}.key"

    def client(self, name: str) -> tuple[Path, Path]:
        return self.root / "clients" / f"{name}.crt", self.root / "clients" / f"{name}.key"

    # --- the CA -------------------------------------------------------------------

    def init_ca(self, common_name: str = "fleetd cluster CA") -> Issued:
        """The CA, created if the directory has none."""
        if self.ca_cert.exists() or self.ca_key.exists():
            self._load_ca()
            return Issued(self.ca_cert, self.ca_key, Outcome.KEPT)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = self.clock()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        self.root.mkdir(parents=True, exist_ok=True)
        _write(self.ca_key, _key_pem(key), 0o600)
        _write(self.ca_cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        return Issued(self.ca_cert, self.ca_key, Outcome.CREATED)

    def _load_ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        if not self.ca_cert.exists() or not self.ca_key.exists():
            raise PkiError(
                f"{self.root}: ca.crt and ca.key must both be there (one is missing); "
                "restore it, or use a new directory"
            )
        cert = _load_cert(self.ca_cert)
        key = _load_key(self.ca_key)
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        if not constraints.ca:
            raise PkiError(f"{self.ca_cert} is not a CA certificate")
        if not _same_key(cert, key):
            raise PkiError(f"{self.ca_key} is not the key of {self.ca_cert}")
        return cert, key

    # --- leaves ---------------------------------------------------------------------

    def issue_machine(self, name: str, ips: Sequence[str] = (), dns: Sequence[str] = ()) -> Issued:
        """Machine ``name``'s certificate: server and client use, for its IPs and names
        (``name`` itself and ``localhost``/127.0.0.1 are always included)."""
        _check_name(name)
        addresses = _ips([*ips, "127.0.0.1"])
        names = _dns([name, *dns, "localhost"]) if _DNS.match(name) else _dns([*dns, "localhost"])
        sans = [*(x509.IPAddress(a) for a in addresses), *(x509.DNSName(d) for d in names)]
        usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        cert_path, key_path = self.machine(name)
        return self._leaf(cert_path, key_path, name, sans, usages)

    def issue_client(self, name: str) -> Issued:
        """A client certificate with common name ``name`` (client use only)."""
        _check_name(name)
        cert_path, key_path = self.client(name)
        return self._leaf(cert_path, key_path, name, [], [ExtendedKeyUsageOID.CLIENT_AUTH])

    def _leaf(
        self,
        cert_path: Path,
        key_path: Path,
        common_name: str,
        sans: list[x509.GeneralName],
        usages: list[x509.ObjectIdentifier],
    ) -> Issued:
        ca_cert, ca_key = self._load_ca()
        outcome = Outcome.CREATED
        if cert_path.exists() and key_path.exists():
            why = self._stale(cert_path, key_path, ca_cert, sans, usages)
            if why is None:
                return Issued(cert_path, key_path, Outcome.KEPT)
            outcome = Outcome.REISSUED
        key = ec.generate_private_key(ec.SECP256R1())
        now = self.clock()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        cert_path.parent.mkdir(parents=True, exist_ok=True)
        _write(key_path, _key_pem(key), 0o600)
        _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        return Issued(cert_path, key_path, outcome)

    def _stale(
        self,
        cert_path: Path,
        key_path: Path,
        ca_cert: x509.Certificate,
        sans: list[x509.GeneralName],
        usages: list[x509.ObjectIdentifier],
    ) -> str | None:
        """Why the certificate on disk must be issued again (None: it is right)."""
        try:
            cert = _load_cert(cert_path)
            key = _load_key(key_path)
        except PkiError as exc:
            return str(exc)
        if not _same_key(cert, key):
            return "key does not match"
        try:
            cert.verify_directly_issued_by(ca_cert)
        except (ValueError, TypeError, InvalidSignature):
            return "signed by another CA"
        if cert.not_valid_after_utc - self.clock() < RENEW_BEFORE:
            return "ends soon"
        try:
            have = set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
        except x509.ExtensionNotFound:
            have = set()
        if have != set(sans):
            return "names changed"
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if set(eku) != set(usages):
            return "uses changed"
        return None


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise PkiError(
            f"name {name[:64]!r}: use letters, digits, _ . @ - (64 at most, starting with "
            "a letter or digit)"
        )


def _ips(values: Sequence[str]) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    out: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for value in values:
        try:
            address = ipaddress.ip_address(value.strip())
        except ValueError:
            raise PkiError(f"--ip {value!r} is not an IP address") from None
        if address not in out:
            out.append(address)
    return out


def _dns(values: Sequence[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        name = value.strip().lower()
        if not _DNS.match(name):
            raise PkiError(f"--dns {value!r} is not a host name")
        if name not in out:
            out.append(name)
    return out


def _same_key(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bool:
    def der(public: object) -> bytes:
        if not isinstance(public, ec.EllipticCurvePublicKey):
            return b""
        return public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    return der(cert.public_key()) == der(key.public_key()) != b""


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except OSError as exc:
        raise PkiError(f"cannot read {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise PkiError(f"{path} is not a PEM certificate") from exc


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise PkiError(f"cannot read {path}: {exc.strerror}") from exc
    except (ValueError, TypeError) as exc:
        raise PkiError(f"{path} is not an unencrypted PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{path} is not an ECDSA key")
    return key


def _write(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` atomically, created with ``mode`` (a key is never world-readable,
    not even for an instant)."""
    tmp = path.with_name(f".{path.name}.new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(fd, mode)
        f.write(data)
        f.flush()
        os.fsync(fd)
    os.replace(tmp, path)
