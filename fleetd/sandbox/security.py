"""``fleetd sandbox up --secure``: the cluster as a real host should run it.

- A PKI in the sandbox's state directory (``pki/``, fleetd/pki.py): the CA, a
  certificate per machine (``m1``... and ``host`` for the bridge's etcd), the
  client ``fleetd`` (etcd's user for every fleetd) and the client ``root``
  (etcd's root: the sandbox itself, and ``fleetctl --driver etcd`` with the admin
  environment).
- etcd serves clients and peers over TLS only and requires client
  certificates (``--client-cert-auth``); its own authentication is on, with
  the user ``fleetd`` (no password: the certificate's common name is the user)
  holding the role ``fleet``, which may read and write the keys under the
  registry prefix and nothing else.
- The API is HTTPS on every machine, with scoped tokens (``api_tokens_file``,
  hashed): one token per role, kept by the sandbox for ``fleetd sandbox env
  --role``; and a separate admin token (``api_token_file``) that each fleetd
  uses to forward a unix-socket caller's ``status``/``journal`` to the unit's
  machine.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping, Sequence
from pathlib import Path

from fleetd.caller import Role
from fleetd.errors import FleetError, SandboxError
from fleetd.etcd_auth import USER as ETCD_USER
from fleetd.etcd_auth import ensure_auth
from fleetd.pki import Pki
from fleetd.sandbox import etcd as etcd_access
from fleetd.sandbox.spec import (
    CA,
    ETCD_CLIENT_CERT,
    ETCD_CLIENT_KEY,
    MACHINE_CERT,
    MACHINE_KEY,
)
from fleetd.tokens import Token, digest, new_secret

HOST_MEMBER = "host"


IN_MACHINE = etcd_access.EtcdTls(MACHINE_CERT, MACHINE_KEY, CA)


def pki_dir(state_dir: Path) -> Path:
    return state_dir / "pki"


def make_pki(state_dir: Path, machines: Mapping[str, str], bridge_ip: str) -> Pki:
    """The CA and every certificate of a sandbox (``machines``: name -> IP)."""
    pki = Pki(pki_dir(state_dir))
    pki.init_ca()
    pki.issue_machine(HOST_MEMBER, [bridge_ip])
    for name, ip in machines.items():
        pki.issue_machine(name, [ip])
    pki.issue_client(ETCD_USER)
    pki.issue_client("root")
    return pki


def host_etcd_tls(state_dir: Path) -> etcd_access.EtcdTls:
    pki = Pki(pki_dir(state_dir))
    cert, key = pki.machine(HOST_MEMBER)
    return etcd_access.EtcdTls(str(cert), str(key), str(pki.ca_cert))


def root_context(state_dir: Path) -> ssl.SSLContext:
    """TLS as etcd's root (the sandbox's own health checks, key listings, auth setup)."""
    pki = Pki(pki_dir(state_dir))
    cert, key = pki.client("root")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki.ca_cert)
    ctx.load_cert_chain(cert, key)
    return ctx


def make_tokens() -> dict[str, str]:
    """A fresh secret per role, plus ``machine`` (the token of api_token_file)."""
    return {**{role.label: new_secret() for role in Role}, "machine": new_secret()}


def tokens_file(tokens: Mapping[str, str]) -> str:
    """The machines' api_tokens_file: one hashed token per role, named after it."""
    lines = ["# written by `fleetd sandbox up --secure`: NAME ROLE sha256:HASH"]
    for role in Role:
        lines.append(Token(role.label, role, digest(tokens[role.label])).line())
    return "\n".join(lines) + "\n"


def machine_files(state_dir: Path, name: str) -> dict[str, tuple[str, int]]:
    """The PKI files machine ``name`` holds: path inside -> (text, mode)."""
    pki = Pki(pki_dir(state_dir))
    cert, key = pki.machine(name)
    client_cert, client_key = pki.client(ETCD_USER)
    return {
        CA: (pki.ca_cert.read_text(), 0o644),
        MACHINE_CERT: (cert.read_text(), 0o644),
        MACHINE_KEY: (key.read_text(), 0o600),
        ETCD_CLIENT_CERT: (client_cert.read_text(), 0o644),
        ETCD_CLIENT_KEY: (client_key.read_text(), 0o600),
    }


def root_access(state_dir: Path) -> etcd_access.Access:
    """The sandbox's way into its ``--secure`` etcd: root's client certificate."""
    pki = Pki(pki_dir(state_dir))
    cert, key = pki.client("root")
    return etcd_access.Access(root_context(state_dir), str(pki.ca_cert), str(cert), str(key))


def enable_auth(access: etcd_access.Access, endpoints: Sequence[str], prefix: str) -> None:
    """etcd's authentication on, ``fleetd`` limited to ``prefix`` (fleetd/etcd_auth.py)."""
    try:
        asyncio.run(
            ensure_auth(
                endpoints,
                ca_file=access.ca,
                cert_file=access.cert,
                key_file=access.key,
                prefix=prefix,
            )
        )
    except FleetError as exc:
        raise SandboxError(str(exc)) from exc
