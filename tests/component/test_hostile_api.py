"""Hostile input through the API: every request of the corpus (hostile.py) is refused with
a 4xx in fleet's error shape, and the registry is exactly as it was before.

The corpus runs in-process over MemoryRegistry and over a real etcd; a few requests
also go through uvicorn on a real socket, where the HTTP layer parses them first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import leakcheck
import pytest
from apikit import make_app, new_store, schedule
from hostile import GOOD_BODY, M1, V1, Answer, Hostile, call, check_refused, corpus, dump, seed

from fleetd.api.auth import BearerAuth
from fleetd.api.serve import ApiServer
from fleetd.api.service.inspector import SystemdInspector
from fleetd.etcd_server import EtcdServer
from fleetd.registry.etcd import EtcdRegistry
from fleetd.registry.keys import Keys
from fleetd.registry.store import Store

CORPUS = corpus()


async def _replay(store: Store, cases: list[Hostile]) -> list[str]:
    app = make_app(store)
    failures = []
    before = await dump(store)
    for req in cases:
        try:
            answer = await call(app, req)
        except Exception as exc:  # the app must answer, never raise
            failures.append(f"{req.id}: raised {type(exc).__name__}: {exc}")
            continue
        problem = check_refused(req, answer)
        if problem is not None:
            failures.append(f"{req.id}: {problem}: {answer.body[:300]!r}")
        after = await dump(store)
        if after != before:
            changed = sorted({k for k, *_ in set(after) ^ set(before)})
            failures.append(f"{req.id}: the registry changed: {changed}")
            before = after
    return failures


def test_corpus_is_large_and_unique() -> None:
    ids = [c.id for c in CORPUS]
    assert len(ids) > 400
    assert len(set(ids)) == len(ids), sorted({i for i in ids if ids.count(i) > 1})


async def test_corpus_in_memory() -> None:
    store = new_store()
    await seed(store)
    failures = await _replay(store, CORPUS)
    assert not failures, "\n".join(failures)


@pytest.mark.etcd
async def test_corpus_over_etcd(etcd_server: EtcdServer, key_prefix: str) -> None:
    registry = EtcdRegistry([etcd_server.endpoint], timeout=5.0)
    try:
        store = Store(registry, Keys(key_prefix))
        await seed(store)
        failures = await _replay(store, CORPUS)
    finally:
        await registry.close()
    assert not failures, "\n".join(failures)


async def test_refusals_leave_valid_requests_working() -> None:
    """The corpus does not wedge anything: a normal submit works afterwards."""
    store = new_store()
    await seed(store)
    app = make_app(store)
    for req in CORPUS[:50]:
        await call(app, req)
    ok = await call(app, Hostile("ok", "PUT", f"{V1}/units/new.service", _good()))
    assert ok.status == 201, ok.body
    assert (await store.get_unit("new.service")) is not None


def _good() -> bytes:
    return json.dumps(GOOD_BODY).encode()


# --- through uvicorn ---------------------------------------------------------------------


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Path, Store]]:
    store = new_store()
    await seed(store)
    path = tmp_path / "fleet.sock"
    server = ApiServer(make_app(store), [f"unix://{path}"])
    server.bind()
    task = asyncio.create_task(server.run())
    try:
        yield path, store
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def _raw(path: Path, request: bytes) -> Answer:
    """Send raw bytes to the unix socket; parse the (non-chunked) response."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length", "0"))
        body = await asyncio.wait_for(reader.readexactly(length), 10) if length else b""
        return Answer(status, headers, body)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def _http(method: str, target: str, body: bytes = b"", extra: str = "") -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: fleet\r\nConnection: close\r\n{extra}"
    if body or method in ("PUT", "PATCH"):
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode("latin-1") + b"\r\n" + body


async def test_over_uvicorn(served: tuple[Path, Store]) -> None:
    path, store = served
    before = await dump(store)
    good = _good()
    cases = [
        ("encoded traversal", _http("PUT", f"{V1}/units/%2e%2e%2fx.service", good), 404),
        ("encoded slash", _http("PUT", f"{V1}/units/a%2Fb.service", good), 404),
        ("literal traversal", _http("PUT", f"{V1}/units/../x.service", good), 404),
        ("encoded NUL", _http("PUT", f"{V1}/units/x%00.service", good), 400),
        ("encoded ESC", _http("GET", f"{V1}/units/x%1b.service"), 400),
        # The guard answers from the declared length, before the body is read.
        (
            "2 MiB declared",
            _http("PUT", f"{V1}/units/big.service", b"{" + b" " * (2 << 20))[:4096],
            413,
        ),
        ("bad token", _http("GET", f"{V1}/units?nextPageToken=%FF%00"), 400),
        (
            "latin-1 Last-Event-ID",
            _http("GET", f"{V1}/events", extra="Last-Event-ID: \xb2\r\n"),
            400,
        ),
    ]
    for label, request, expect in cases:
        answer = await _raw(path, request)
        req = Hostile(label, "RAW", "/", expect=expect)
        assert check_refused(req, answer) is None, (label, answer)
    assert await dump(store) == before


async def test_http_layer_refusals_keep_serving(served: tuple[Path, Store]) -> None:
    """Requests the HTTP parser itself refuses (raw control bytes in the request line, a 1 MB
    query string) get a 4xx from uvicorn, not fleet's JSON, and the server keeps serving."""
    path, store = served
    before = await dump(store)
    for request in [
        f"GET {V1}/units/x\x00.service HTTP/1.1\r\nHost: fleet\r\n\r\n".encode("latin-1"),
        f"GET {V1}/units/x\x1b.service HTTP/1.1\r\nHost: fleet\r\n\r\n".encode("latin-1"),
        f"GET {V1}/units?nextPageToken={'A' * 1_000_000} HTTP/1.1\r\nHost: fleet\r\n\r\n".encode(),
    ]:
        reader, writer = await asyncio.open_unix_connection(str(path))
        try:
            writer.write(request)
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), 10)
        except ConnectionError:
            line = b""
        finally:
            writer.close()
        if line:
            status = int(line.split()[1])
            assert 400 <= status < 500, line
    answer = await _raw(path, _http("GET", f"{V1}/units"))
    assert answer.status == 200
    assert await dump(store) == before


async def test_forged_page_tokens_only_move_the_cursor() -> None:
    """A well-formed token is a cursor, not a credential: a forged one pages from where it
    says, shows nothing else and writes nothing."""
    store = new_store()
    await seed(store)
    app = make_app(store, page_size=1)
    before = await dump(store)
    for after, expected in [
        ("a", ["app@.service"]),
        ("app@.service", ["web.service"]),
        ("zzz", []),
    ]:
        query = f"nextPageToken={_token(after)}".encode()
        answer = await call(app, Hostile("forged", "GET", f"{V1}/units", query=query, headers=()))
        assert answer.status == 200, answer.body
        assert [u["name"] for u in answer.json()["units"]] == expected
    assert await dump(store) == before


def _token(after: str) -> str:
    from fleetd.api.service.pagination import PageToken

    return PageToken(after).encode()


# --- authentication on TCP, the unix socket's mode -----------------------------------------

TOKEN = leakcheck.secret("hostile-token-0123456789abcdef")


async def test_tcp_refuses_every_path_without_the_right_token(tmp_path: Path) -> None:
    store = new_store()
    await seed(store)
    server = ApiServer(make_app(store), ["tcp://127.0.0.1:0"], tokens=TOKEN, insecure_http=True)
    server.bind()
    host_port = server.addresses[0][len("tcp://") :]
    task = asyncio.create_task(server.run())
    before = await dump(store)
    good = _good().decode()
    try:
        paths = [
            ("GET", f"{V1}/units"),
            ("GET", f"{V1}/units/web.service"),
            ("PUT", f"{V1}/units/new.service"),
            ("DELETE", f"{V1}/units/web.service"),
            ("PATCH", f"{V1}/machines"),
            ("POST", f"{V1}/machines/{'c' * 32}/drain"),
            ("GET", f"{V1}/events"),
            ("GET", f"{V1}/discovery"),
            ("GET", "/healthz"),
            ("GET", "/metrics"),
            ("GET", "/nonexistent"),
        ]
        headers = [
            "",
            "Authorization: Bearer wrong-token-0123456789abcdef\r\n",
            f"Authorization: Bearer {TOKEN[:-1]}\r\n",
            f"Authorization: Bearer {TOKEN}x\r\n",
            f"Authorization: Basic {TOKEN}\r\n",
            f"Authorization: {TOKEN}\r\n",
            "Authorization: Bearer\r\n",
            "Authorization: Bearer \xff\xfe\r\n",
            f"Authorization: Bearer {TOKEN.upper()}\r\n",
            f"Authorization: Bearer wrong\r\nAuthorization: Bearer {TOKEN}\r\n",
            f"X-Authorization: Bearer {TOKEN}\r\n",
        ]
        for method, path in paths:
            body = good if method == "PUT" else "[]" if method == "PATCH" else ""
            for header in headers:
                request = _http(method, path, body.encode(), extra=header)
                answer = await _tcp(host_port, request)
                req = Hostile(f"{method} {path} {header!r}", method, path, expect=401)
                assert check_refused(req, answer) is None, (req.id, answer)
                assert answer.headers.get("www-authenticate", "").startswith("Bearer")
        assert await dump(store) == before
        ok = await _tcp(
            host_port, _http("GET", f"{V1}/units", extra=f"Authorization: Bearer {TOKEN}\r\n")
        )
        assert ok.status == 200
        # The API's description and docs page are public (no data in them), so that
        # /docs opens in a browser and its Authorize button can take the token.
        for path in ("/openapi.json", "/docs"):
            assert (await _tcp(host_port, _http("GET", path))).status == 200
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def _tcp(host_port: str, request: bytes) -> Answer:
    host, _, port = host_port.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            k, sep, v = line.partition(":")
            if sep:
                headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length", "0"))
        body = await asyncio.wait_for(reader.readexactly(length), 10) if length else b""
        return Answer(int(lines[0].split()[1]), headers, body)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def test_unix_socket_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        server = ApiServer(make_app(new_store()), [f"unix://{tmp_path}/fleet.sock"])
        server.bind()
    finally:
        os.umask(old)
    try:
        mode = (tmp_path / "fleet.sock").stat().st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o600
    finally:
        server.close()


async def test_option_like_unit_names_reach_tools_as_data(tmp_path: Path) -> None:
    """``--help.service`` is a valid unit name; systemctl/journalctl get it after ``--`` or
    inside ``--unit=``, never as an option of their own."""
    record = tmp_path / "argv.txt"
    script = tmp_path / "tool.py"
    script.write_text(
        f"import json, sys\nopen({str(record)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "print('ok')\n"
    )
    tool = (sys.executable, str(script))
    store = new_store()
    await seed(store)
    app = make_app(store, machine_id=M1, inspector=SystemdInspector(tool, tool))
    name = "--help.service"
    created = await call(app, Hostile("put", "PUT", f"{V1}/units/{name}", _good()))
    assert created.status == 201, created.body
    await schedule(store, M1, name)
    status = await call(app, Hostile("status", "GET", f"{V1}/units/{name}/status", headers=()))
    assert status.status == 200, status.body
    journal = await call(app, Hostile("journal", "GET", f"{V1}/units/{name}/journal", headers=()))
    assert journal.status == 200, journal.body
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    assert calls[0][-2:] == ["--", name]
    assert f"--unit={name}" in calls[1] and name not in calls[1]


async def test_websocket_handshake_is_refused_on_tcp() -> None:
    """Only HTTP passes the token check: a websocket scope is closed at once (policy)."""
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    reached: list[object] = []

    async def app(scope: object, receive: object, send: object) -> None:
        reached.append(scope)

    scope = {"type": "websocket", "path": f"{V1}/units", "headers": [], "query_string": b""}
    await BearerAuth(app, TOKEN)(scope, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]
    assert reached == []
