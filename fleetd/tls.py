"""TLS contexts for the API: the server's (HTTPS, optionally requiring client certificates)
and a client's (fleetctl, and a fleetd forwarding to another machine's API).

Every file is read here, so that a missing or unreadable file, a key that
does not match its certificate or a file that is no PEM is a ConfigError
naming the option, before anything listens.  TLS 1.2 is the least version
either side accepts.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from fleetd.errors import ConfigError


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Paths of a certificate, its key and the CA to trust (each may be empty)."""

    cert: str = ""
    key: str = ""
    ca: str = ""

    @property
    def has_cert(self) -> bool:
        return bool(self.cert or self.key)


def _readable(path: str, option: str) -> None:
    try:
        Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{option}: cannot read {path}: {exc.strerror}") from exc


def _load_chain(ctx: ssl.SSLContext, cert: str, key: str, options: tuple[str, str]) -> None:
    cert_option, key_option = options
    if not cert or not key:
        raise ConfigError(f"{cert_option} and {key_option} must be given together")
    _readable(cert, cert_option)
    _readable(key, key_option)
    try:
        ctx.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise ConfigError(
            f"{cert_option} {cert} and {key_option} {key}: not a PEM certificate and its "
            f"matching private key ({exc.reason or exc})"
        ) from exc


def _load_ca(ctx: ssl.SSLContext, ca: str, option: str) -> None:
    _readable(ca, option)
    try:
        ctx.load_verify_locations(cafile=ca)
    except ssl.SSLError as exc:
        raise ConfigError(
            f"{option} {ca}: no PEM CA certificate in it ({exc.reason or exc})"
        ) from exc


def server_context(files: TlsFiles, client_ca_option: str = "api_client_ca_file") -> ssl.SSLContext:
    """HTTPS with ``files.cert``/``files.key``; with ``files.ca``, clients must present a
    certificate signed by it."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(ctx, files.cert, files.key, ("api_cert_file", "api_key_file"))
    if files.ca:
        _load_ca(ctx, files.ca, client_ca_option)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(
    files: TlsFiles,
    options: tuple[str, str, str] = ("--ca-file", "--cert-file", "--key-file"),
) -> ssl.SSLContext:
    """Verifies the server against ``files.ca`` (else the system's CAs) and presents
    ``files.cert``/``files.key`` when given; ``options`` name the three in errors."""
    ca_option, cert_option, key_option = options
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if files.ca:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        _load_ca(ctx, files.ca, ca_option)
    if files.has_cert:
        _load_chain(ctx, files.cert, files.key, (cert_option, key_option))
    return ctx
