"""The API served for real: unix socket 0600, TCP with a token, the event stream, and
status/journal run locally (real subprocesses) or forwarded to the unit's machine."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import textwrap
from pathlib import Path

import httpx
import leakcheck
import pytest
from apikit import add_machine, client_for, error_of, make_app, new_store, schedule, submit

from fleetd.api.serve import ApiServer, tcp_port
from fleetd.api.service.inspector import SystemdInspector
from fleetd.api.service.peers import FORWARD_HEADER, Peers
from fleetd.errors import ConfigError

M1 = "a" * 32
M2 = "b" * 32
TOKEN = leakcheck.secret("token-0123456789abcdef")


def _script(path: Path, body: str) -> tuple[str, str]:
    path.write_text(textwrap.dedent(body))
    return (sys.executable, str(path))


@pytest.fixture
def inspector(tmp_path: Path) -> SystemdInspector:
    status = _script(
        tmp_path / "status.py",
        """
        import sys
        print("* " + sys.argv[-1] + " - demo")
        print("   args: " + " ".join(sys.argv[1:]))
        sys.exit(3)
        """,
    )
    journal = _script(
        tmp_path / "journal.py",
        f"""
        import os, sys, time
        args = sys.argv[1:]
        unit = [a for a in args if a.startswith("--unit=")][0][7:]
        lines = int([a for a in args if a.startswith("--lines=")][0][8:])
        for i in range(lines):
            print(f"{{unit}} line {{i}}", flush=True)
        if "--follow" in args:
            open({str(tmp_path / "follow.pid")!r}, "w").write(str(os.getpid()))
            while True:
                print(f"{{unit}} more", flush=True)
                time.sleep(0.05)
        """,
    )
    return SystemdInspector(systemctl=status, journalctl=journal)


async def test_unix_socket_is_0600_and_serves(tmp_path: Path) -> None:
    store = new_store()
    path = tmp_path / "run" / "fleet.sock"
    server = ApiServer(make_app(store), [f"unix://{path}"])
    server.bind()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    task = asyncio.create_task(server.run())
    try:
        transport = httpx.AsyncHTTPTransport(uds=str(path))
        async with httpx.AsyncClient(transport=transport, base_url="http://fleet") as client:
            assert (await submit(client, "web.service")).status_code == 201
            assert (await client.get("/fleet/v1/units")).json()["units"][0]["name"] == "web.service"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not path.exists()


async def test_tcp_needs_token(tmp_path: Path) -> None:
    store = new_store()
    server = ApiServer(
        make_app(store),
        [f"unix://{tmp_path}/s.sock", "tcp://127.0.0.1:0"],
        tokens=TOKEN,
        insecure_http=True,
    )
    server.bind()
    tcp = next(a for a in server.addresses if a.startswith("tcp://"))
    task = asyncio.create_task(server.run())
    try:
        base = "http://" + tcp[len("tcp://") :]
        async with httpx.AsyncClient(base_url=base) as client:
            r = await client.get("/fleet/v1/units")
            assert r.status_code == 401
            error_of(r)
            r = await client.get("/fleet/v1/units", headers={"Authorization": f"Bearer {TOKEN}"})
            assert r.status_code == 200
        transport = httpx.AsyncHTTPTransport(uds=f"{tmp_path}/s.sock")
        async with httpx.AsyncClient(transport=transport, base_url="http://fleet") as client:
            assert (await client.get("/fleet/v1/units")).status_code == 200
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_plain_http_is_warned_at_every_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(new_store())
    for start in (1, 2):
        caplog.clear()
        server = ApiServer(
            app,
            [f"unix://{tmp_path}/s.sock", "tcp://127.0.0.1:0"],
            tokens=TOKEN,
            insecure_http=True,
        )
        server.bind()
        tcp = next(a for a in server.addresses if a.startswith("tcp://"))
        task = asyncio.create_task(server.run())
        try:
            async with httpx.AsyncClient(base_url="http://" + tcp[len("tcp://") :]) as client:
                auth = {"Authorization": f"Bearer {TOKEN}"}
                assert (await client.get("/healthz", headers=auth)).status_code == 200
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        warnings = [r for r in caplog.records if r.levelname == "WARNING"]
        assert [r.getMessage() for r in warnings] == [
            f"API on {tcp} serves plain HTTP (api_insecure_http = true): tokens and unit files "
            "cross the network in clear"
        ], start
        assert TOKEN not in caplog.text


def test_tcp_without_token_is_refused_unless_disabled(tmp_path: Path) -> None:
    app = make_app(new_store())
    with pytest.raises(ConfigError, match="api_token_file"):
        ApiServer(app, ["tcp://127.0.0.1:0"])
    ApiServer(app, ["tcp://127.0.0.1:0"], auth_disabled=True, insecure_http=True)
    with pytest.raises(ConfigError, match="unix"):
        ApiServer(app, ["http://x"])
    assert tcp_port(["unix:///a", "tcp://0.0.0.0:4002"]) == 4002


def test_live_socket_is_not_stolen(tmp_path: Path) -> None:
    path = tmp_path / "fleet.sock"
    first = ApiServer(make_app(new_store()), [f"unix://{path}"])
    first.bind()
    try:
        with pytest.raises(ConfigError, match="another process"):
            ApiServer(make_app(new_store()), [f"unix://{path}"]).bind()
    finally:
        first.close()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a socket"):
        ApiServer(make_app(new_store()), [f"unix://{tmp_path}/file"]).bind()


async def test_event_stream(tmp_path: Path) -> None:
    store = new_store()
    path = tmp_path / "fleet.sock"
    server = ApiServer(make_app(store), [f"unix://{path}"])
    task = asyncio.create_task(server.run())
    transport = httpx.AsyncHTTPTransport(uds=str(path))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://fleet") as client:
            r = await client.get("/fleet/v1/events?kinds=bogus")
            assert r.status_code == 400
            async with client.stream("GET", "/fleet/v1/events?kinds=unit,machine") as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                lines = stream.aiter_lines()
                assert (await anext(lines)).startswith(": watching")
                await submit(client, "web.service", desired="launched")
                await add_machine(store, M1, "10.0.0.1")
                seen: list[str] = []
                async with asyncio.timeout(10):
                    while len([x for x in seen if x.startswith("data:")]) < 2:
                        seen.append(await anext(lines))
        events = [x for x in seen if x.startswith("event:")]
        assert events == ["event: unit", "event: machine"]
        data = [x for x in seen if x.startswith("data:")]
        assert '"name":"web.service"' in data[0] and '"desiredState":"launched"' in data[0]
        assert f'"machineID":"{M1}"' in data[1]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_status_and_journal_local(inspector: SystemdInspector) -> None:
    store = new_store()
    await add_machine(store, M1, "10.0.0.1")
    async with client_for(make_app(store, machine_id=M1, inspector=inspector)) as client:
        await submit(client, "web.service", desired="launched")
        r = await client.get("/fleet/v1/units/web.service/status")
        assert r.status_code == 409  # not scheduled yet
        error_of(r)
        await schedule(store, M1, "web.service")
        r = await client.get("/fleet/v1/units/web.service/status")
        assert r.status_code == 200
        body = r.json()
        assert body["machineID"] == M1 and body["exitCode"] == 3
        assert body["output"].startswith("* web.service - demo")
        assert "-- web.service" in body["output"]
        r = await client.get("/fleet/v1/units/web.service/journal?lines=3")
        assert r.text.splitlines() == [f"web.service line {i}" for i in range(3)]
        r = await client.get("/fleet/v1/units/web.service/journal?lines=-1")
        assert r.status_code == 400
        r = await client.get("/fleet/v1/units/nope.service/status")
        assert r.status_code == 404
        r = await client.get(f"/fleet/v1/units/web.service/status?machineID={M2}")
        assert r.status_code == 404


async def test_journal_follow_streams_and_stops_the_process(
    tmp_path: Path, inspector: SystemdInspector
) -> None:
    store = new_store()
    await add_machine(store, M1, "10.0.0.1")
    path = tmp_path / "fleet.sock"
    app = make_app(store, machine_id=M1, inspector=inspector)
    server = ApiServer(app, [f"unix://{path}"])
    task = asyncio.create_task(server.run())
    transport = httpx.AsyncHTTPTransport(uds=str(path))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://fleet") as client:
            await submit(client, "web.service", desired="launched")
            await schedule(store, M1, "web.service")
            url = "/fleet/v1/units/web.service/journal?lines=2&follow=true"
            async with client.stream("GET", url) as stream:
                lines = stream.aiter_lines()
                got = [await anext(lines) for _ in range(4)]
        assert got[:2] == ["web.service line 0", "web.service line 1"]
        assert got[2:] == ["web.service more", "web.service more"]
        pid = int((tmp_path / "follow.pid").read_text())
        async with asyncio.timeout(10):
            await _exited(pid)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def _exited(pid: int) -> None:
    """Returns once process ``pid`` has ended (a pidfd turns readable)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(fd, done.set)
    try:
        await done.wait()
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def test_status_and_journal_are_forwarded_to_the_units_machine(
    inspector: SystemdInspector,
) -> None:
    store = new_store()
    await add_machine(store, M1, "10.0.0.1")
    await add_machine(store, M2, "10.0.0.2")
    remote = make_app(store, machine_id=M2, inspector=inspector)
    seen: list[str] = []

    def transport_for(machine):  # type: ignore[no-untyped-def]
        seen.append(machine.id)
        return httpx.ASGITransport(app=remote)

    local = make_app(
        store, machine_id=M1, peers=Peers(port=4002, token="t", transport_for=transport_for)
    )
    async with client_for(local) as client:
        await submit(client, "web.service", desired="launched")
        await schedule(store, M2, "web.service")
        body = (await client.get("/fleet/v1/units/web.service/status")).json()
        assert body["machineID"] == M2 and "demo" in body["output"]
        r = await client.get("/fleet/v1/units/web.service/journal?lines=2")
        assert r.text.splitlines() == ["web.service line 0", "web.service line 1"]
        assert seen == [M2, M2]
    # A forwarded request is never forwarded again.
    async with client_for(make_app(store, machine_id=M1)) as client:
        r = await client.get("/fleet/v1/units/web.service/status", headers={FORWARD_HEADER: "1"})
        assert r.status_code == 409
        error_of(r)
    # Without a TCP port there is no way to reach the other machine.
    async with client_for(make_app(store, machine_id=M1)) as client:
        r = await client.get("/fleet/v1/units/web.service/status")
        assert r.status_code == 503
        assert "TCP" in error_of(r)[1]
