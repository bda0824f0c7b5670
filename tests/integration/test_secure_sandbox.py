"""``fleetd sandbox up --secure``: the cluster as a real host runs it, attacked from the host.

Plain HTTP to the API and to etcd is refused, etcd without a client certificate
too, and fleetd's own etcd user may not touch keys outside the registry prefix;
fleetctl with a read token lists but cannot start (exit 1, a message naming the
role, nothing changed); a token removed from the tokens file stops working within
2 s without a restart, and an edit only SIGHUP can see takes effect on SIGHUP; the
audit record of a start names the token; ``fleetd sandbox env --role`` prints each
role's exports; no token's secret appears in any log of the run, in an error message
or in ``--help``.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import shlex
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetd.api.audit import AUDIT_MESSAGE_ID
from fleetd.errors import FleetError
from fleetd.pki import Pki
from fleetd.registry.etcd import EtcdRegistry
from fleetd.sandbox import security
from fleetd.sandbox.cluster import Sandbox, teardown
from fleetd.sandbox.spec import API_PORT, TOKENS_FILE, SandboxSpec
from fleetd.sandbox.state import Instance

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
UNIT = "[Unit]\nDescription=secure demo\n\n[Service]\nExecStart=/bin/sleep 100000\n"
REMOVED_WITHIN = 2.0


def _free_instance() -> Instance:
    for digit in range(10):
        candidate = Instance(f"sc{digit}")
        if not candidate.state_dir.exists():
            return candidate
    raise RuntimeError("no free sandbox name sc0..sc9 (stale sandboxes? `fleetd sandbox down`)")


@pytest.fixture(scope="module")
def secure() -> Iterator[Sandbox]:
    name = _free_instance()
    sandbox = Sandbox.up(SandboxSpec(machines=2, secure=True), name=name, timeout=120)
    try:
        yield sandbox
    finally:
        teardown(name)


@pytest.fixture(scope="module")
def outputs() -> list[str]:
    """Everything the tests saw printed (checked for secrets at the end)."""
    return []


def fleetctl(
    sandbox: Sandbox, role: str, *args: str, seen: list[str]
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETCTL_")}
    env.update(sandbox.env(role))
    proc = subprocess.run(
        [str(BIN / "fleetctl"), *args], capture_output=True, text=True, env=env, timeout=120
    )
    seen.extend((proc.stdout, proc.stderr))
    return proc


def _api(sandbox: Sandbox, path: str, token: str) -> int:
    pki = Pki(security.pki_dir(sandbox.state_dir))
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    request = urllib.request.Request(
        f"{sandbox.api_endpoint}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, context=ctx, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _plain_http_answer(url: str) -> str | None:
    """What a plain-HTTP request to ``url`` got: ``HTTP <status>`` if anything answered in
    HTTP (an error status too: a 401 means the listener serves plain HTTP), else None."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, http.client.HTTPException, OSError):
        return None


def test_plain_http_and_etcd_without_a_certificate_are_refused(secure: Sandbox) -> None:
    m1 = secure.machines[0].ip
    for url in (f"http://{m1}:{API_PORT}/fleet/v1/units", f"{secure.etcd_endpoints[0]}/health"):
        plain = url.replace("https://", "http://")
        assert _plain_http_answer(plain) is None, plain
    # TLS to etcd, trusting its CA, but without a client certificate: the handshake fails.
    pki = Pki(security.pki_dir(secure.state_dir))
    no_cert = ssl.create_default_context(cafile=str(pki.ca_cert))
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(
            f"{secure.etcd_endpoints[0]}/health", context=no_cert, timeout=5
        ).read()

    async def as_fleetd() -> None:
        cert, key = pki.client(security.ETCD_USER)
        registry = EtcdRegistry(
            secure.etcd_endpoints,
            ca_file=str(pki.ca_cert),
            cert_file=str(cert),
            key_file=str(key),
            timeout=5,
        )
        try:
            items, _ = await registry.get_prefix("/fleet/machines/")
            assert len(items) == 2
            with pytest.raises(FleetError, match="permission denied"):
                await registry.put("/outside-the-prefix", b"x")
            with pytest.raises(FleetError, match="permission denied"):
                await registry.get_prefix("/")
        finally:
            await registry.close()

    asyncio.run(as_fleetd())


def test_a_read_token_lists_but_cannot_start(secure: Sandbox, outputs: list[str]) -> None:
    unit = secure.state_dir / "read-only.service"
    unit.write_text(UNIT)
    listed = fleetctl(secure, "read", "list-machines", seen=outputs)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("hostname=m") == 2
    before = fleetctl(secure, "read", "list-unit-files", seen=outputs).stdout
    refused = fleetctl(secure, "read", "start", "--no-block", str(unit), seen=outputs)
    assert refused.returncode == 1
    assert "needs the operate role" in refused.stderr
    assert "'read' has the read role" in refused.stderr
    assert fleetctl(secure, "read", "list-unit-files", seen=outputs).stdout == before
    assert "read-only.service" not in before


def test_sandbox_env_prints_the_exports_of_a_role(secure: Sandbox, outputs: list[str]) -> None:
    def exports(*args: str) -> dict[str, str]:
        proc = subprocess.run(
            [str(BIN / "fleetd"), "sandbox", "--name", secure.instance.name, "env", *args],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        outputs.append(proc.stderr)
        assert proc.returncode == 0, proc.stderr
        pairs = [shlex.split(line.removeprefix("export "))[0] for line in proc.stdout.splitlines()]
        return dict(pair.split("=", 1) for pair in pairs)

    for role in ("read", "operate", "admin"):
        found = exports("--role", role)
        assert found == secure.env(role), role
        assert found["FLEETCTL_TOKEN"] == secure.role_token(role)
        assert found["FLEETCTL_ENDPOINT"].startswith("https://")
        assert ("FLEETCTL_CERT_FILE" in found) == (role == "admin")
    assert exports() == secure.env("admin")
    bad = subprocess.run(
        [str(BIN / "fleetd"), "sandbox", "--name", secure.instance.name, "env", "--role", "root"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 1 and "unknown role 'root'" in bad.stderr and bad.stdout == ""


def test_a_start_is_audited_with_the_token_name(secure: Sandbox, outputs: list[str]) -> None:
    unit = secure.state_dir / "audited.service"
    unit.write_text(UNIT)
    started = fleetctl(secure, "admin", "start", str(unit), seen=outputs)
    assert started.returncode == 0, started.stderr
    journal = secure.exec(
        "m1",
        "journalctl", "--no-pager", "-o", "verbose", f"MESSAGE_ID={AUDIT_MESSAGE_ID}",
        "FLEETD_UNITS=audited.service",
    ).stdout  # fmt: skip
    outputs.append(journal)
    assert "FLEETD_CALLER=admin" in journal
    assert "FLEETD_METHOD=PUT" in journal and "FLEETD_STATUS=201" in journal
    assert "SYSLOG_IDENTIFIER=fleetd" in journal
    # Its status is served by the machine it runs on, reached over HTTPS with the token.
    status = fleetctl(secure, "read", "status", "audited.service", seen=outputs)
    assert status.returncode == 0, status.stderr
    assert "active (running)" in status.stdout


def test_a_removed_token_stops_working_without_a_restart(secure: Sandbox) -> None:
    token = secure.role_token("operate")
    assert _api(secure, "/fleet/v1/units", token) == 200
    pid = secure.exec("m1", "systemctl", "show", "-P", "MainPID", "fleetd").stdout.strip()
    edit = secure.exec("m1", "sed", "-i", "/^operate /d", TOKENS_FILE)
    assert edit.returncode == 0, edit.stderr
    removed = time.monotonic()
    while _api(secure, "/fleet/v1/units", token) != 401:
        assert time.monotonic() - removed <= REMOVED_WITHIN, "the removed token still works"
        time.sleep(0.05)
    assert time.monotonic() - removed <= REMOVED_WITHIN
    assert secure.exec("m1", "systemctl", "show", "-P", "MainPID", "fleetd").stdout.strip() == pid
    assert _api(secure, "/fleet/v1/units", secure.role_token("read")) == 200


def test_sighup_rereads_the_tokens_file(secure: Sandbox) -> None:
    """An edit the change check cannot see (same inode, size and mtime) takes effect on
    SIGHUP, without a restart."""
    token = secure.role_token("read")
    assert _api(secure, "/fleet/v1/units", token) == 200
    pid = secure.exec("m1", "systemctl", "show", "-P", "MainPID", "fleetd").stdout.strip()
    edit = (
        "import os, sys\n"
        "path, name, undo = sys.argv[1], sys.argv[2], sys.argv[3:]\n"
        "info = os.stat(path)\n"
        "with open(path, 'r+b') as f:\n"
        "    text = f.read()\n"
        "    if undo:\n"
        "        new = bytes.fromhex(undo[0])\n"
        "    else:\n"
        "        sys.stdout.write(text.hex())\n"
        "        lines = text.split(b'\\n')\n"
        "        for i, line in enumerate(lines):\n"
        "            fields = line.split()\n"
        "            if fields and fields[0] == name.encode():\n"
        "                secret = fields[2].split(b':')[-1]\n"
        "                lines[i] = line.replace(secret, b'f' * len(secret))\n"
        "        new = b'\\n'.join(lines)\n"
        "    assert len(new) == len(text)\n"
        "    f.seek(0)\n"
        "    f.write(new)\n"
        "os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))\n"
    )
    changed = secure.exec("m1", "python3", "-c", edit, TOKENS_FILE, "read")
    assert changed.returncode == 0, changed.stderr
    original = changed.stdout.strip()
    try:
        # The change check (inode, size, mtime, every second) sees nothing: it still works.
        unchanged_until = time.monotonic() + 1.5
        while time.monotonic() < unchanged_until:
            assert _api(secure, "/fleet/v1/units", token) == 200, "re-read without SIGHUP"
            time.sleep(0.1)
        hup = secure.exec("m1", "systemctl", "kill", "--signal=HUP", "--kill-who=main", "fleetd")
        assert hup.returncode == 0, hup.stderr
        sent = time.monotonic()
        while _api(secure, "/fleet/v1/units", token) != 401:
            assert time.monotonic() - sent <= REMOVED_WITHIN, "SIGHUP did not re-read the file"
            time.sleep(0.05)
    finally:
        restored = secure.exec("m1", "python3", "-c", edit, TOKENS_FILE, "read", original)
        assert restored.returncode == 0, restored.stderr
        secure.exec("m1", "systemctl", "kill", "--signal=HUP", "--kill-who=main", "fleetd")
    sent = time.monotonic()
    while _api(secure, "/fleet/v1/units", token) != 200:
        assert time.monotonic() - sent <= REMOVED_WITHIN, "the restored token does not work"
        time.sleep(0.05)
    assert secure.exec("m1", "systemctl", "show", "-P", "MainPID", "fleetd").stdout.strip() == pid


def test_no_secret_in_any_log_or_help(secure: Sandbox, outputs: list[str]) -> None:
    """Runs last in this module: every journal and log of the run, and every help text."""
    secrets = [secure.role_token(role) for role in ("read", "operate", "admin")]
    secrets.append(secure.token or "")
    texts = list(outputs)
    for machine in secure.machines:
        texts.append(secure.exec(machine.name, "journalctl", "--no-pager", "-o", "verbose").stdout)
    texts.extend(p.read_text(errors="replace") for p in secure.state_dir.glob("*.log"))
    for command in (
        [str(BIN / "fleetctl"), "--help"],
        [str(BIN / "fleetctl"), "start", "--help"],
        [str(BIN / "fleetd"), "--help"],
        [str(BIN / "fleetd"), "token", "--help"],
        [str(BIN / "fleetd"), "sandbox", "env", "--help"],
    ):
        env = {**os.environ, **secure.env("admin")}
        proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
        texts.append(proc.stdout + proc.stderr)
    assert sum(len(t) for t in texts) > 10_000  # the journals are there
    for secret in filter(None, secrets):
        for text in texts:
            assert secret not in text
