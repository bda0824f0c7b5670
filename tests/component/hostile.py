"""The hostile-input corpus for the API and the means to replay it.

Each ``Hostile`` is one HTTP request exactly as it would arrive on the wire
(raw, percent-encoded path; raw query string; raw body; raw headers).  It is
replayed straight into the ASGI app (``call``), so that no client library
normalises, re-encodes or refuses any of it; the app sees what uvicorn would
hand it.  ``seed`` writes a small cluster and ``dump`` reads every key under
the prefix, so a test can check that a refused request changed nothing.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from apikit import SERVICE, add_machine, options_of, report, schedule

from fleetd import model
from fleetd.registry.store import Store
from fleetd.unitfile import UnitFile

V1 = "/fleet/v1"
M1 = "c" * 32
MiB = 1024 * 1024
JSON_CT = ((b"content-type", b"application/json"),)


@dataclass(frozen=True, slots=True)
class Hostile:
    id: str
    method: str
    path: str  # raw (percent-encoded) path, as on the wire
    body: bytes = b""
    query: bytes = b""
    headers: tuple[tuple[bytes, bytes], ...] = JSON_CT
    chunked: bool = False  # no Content-Length: the body arrives in pieces
    expect: int | None = None  # the exact status, when it matters


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def call(app: Any, req: Hostile) -> Answer:
    """Send ``req`` into the ASGI ``app`` as uvicorn would (path percent-decoded)."""
    headers = [(b"host", b"fleet"), *req.headers]
    if not req.chunked and req.method in ("PUT", "PATCH", "POST"):
        headers.append((b"content-length", str(len(req.body)).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": req.method,
        "scheme": "http",
        "path": unquote(req.path),
        "raw_path": req.path.encode("ascii"),
        "query_string": req.query,
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("fleet", 80),
    }
    piece = 64 * 1024 if req.chunked else max(len(req.body), 1)
    chunks = [req.body[i : i + piece] for i in range(0, len(req.body), piece)] or [b""]
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    try:
        await app(scope, receive, send)
    except Exception:
        # Starlette re-raises after sending its 500 (uvicorn would log it): keep the answer.
        if not any(m["type"] == "http.response.start" for m in sent):
            raise
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    head = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in start["headers"]}
    return Answer(start["status"], head, body)


def check_refused(req: Hostile, answer: Answer) -> str | None:
    """Why ``answer`` is not a proper refusal of ``req`` (None if it is one)."""
    if not 400 <= answer.status < 500:
        return f"status {answer.status}"
    if req.expect is not None and answer.status != req.expect:
        return f"status {answer.status}, expected {req.expect}"
    if not answer.headers.get("content-type", "").startswith("application/json"):
        return f"content-type {answer.headers.get('content-type')!r}"
    try:
        body = answer.json()
    except ValueError:
        return f"body is not JSON: {answer.body[:200]!r}"
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(body["error"], dict):
        return f"not fleet's error shape: {body!r:.200}"
    error = body["error"]
    if set(error) != {"code", "message"} or error["code"] != answer.status:
        return f"not fleet's error shape: {body!r:.200}"
    message = error["message"]
    if not isinstance(message, str) or not message.strip():
        return "empty error message"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in message):
        return f"raw control character in the message: {message!r:.200}"
    return None


# --- seed and dump -------------------------------------------------------------------


async def seed(store: Store) -> None:
    """A unit (scheduled, reported), a template, a machine with a metadata override."""
    await add_machine(store, M1, "10.0.0.1", (("role", "web"),))
    for name, text, desired in (
        ("web.service", SERVICE, model.DesiredState.LAUNCHED),
        ("app@.service", SERVICE.replace("demo", "app %i"), model.DesiredState.INACTIVE),
    ):
        unit = UnitFile.from_text(text)
        await store.put_unit(model.Unit(name, unit.to_text(), unit.hash, desired))
    await schedule(store, M1, "web.service")
    await report(store, M1, "web.service")
    flags = model.MachineFlags(metadata_overrides=(("disk", "ssd"),))
    await store.set_machine_flags(M1, flags)


async def dump(store: Store) -> list[tuple[str, bytes, int, int, int]]:
    """Every key under the store's prefix with its value, revisions and lease."""
    items, _ = await store.registry.get_prefix(store.keys.prefix)
    return sorted((kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.lease) for kv in items)


# --- the corpus ----------------------------------------------------------------------


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


GOOD_BODY = {"desiredState": "launched", "options": options_of(SERVICE)}

# Names as they appear in the (percent-encoded) request path.
HOSTILE_NAMES = [
    "..",
    "..%2Fx.service",
    "..%2F..%2F..%2Fetc%2Fpasswd.service",
    "a%2Fb.service",
    "%2Fetc%2Fpasswd.service",
    "%2e%2e%2fx.service",
    "%2E%2E%2Fx.service",
    "%252e%252e%252fx.service",
    "..%5Cx.service",
    ".service",
    ".x.service",
    "x",
    "x.exe",
    "x%0A.service",
    "x.service%0A",
    "x%0D.service",
    "x%00.service",
    "x.service%00",
    "x.service%00.txt",
    "x%1B%5B2J.service",
    "x%07.service",
    "x%7F.service",
    "%ED%A0%80.service",
    "%FF%FE.service",
    "%C0%AF.service",
    "%E2%80%AE.service",
    "x%20y.service",
    "x%3F.service",
    "x%2A.service",
    "%40x.service",
    "x" * 300 + ".service",
]


def _names() -> Iterator[Hostile]:
    body = _json(GOOD_BODY)
    for raw in HOSTILE_NAMES:
        unit = f"{V1}/units/{raw}"
        short = raw[:40]
        yield Hostile(f"PUT name {short}", "PUT", unit, body)
        yield Hostile(f"GET name {short}", "GET", unit, headers=())
        yield Hostile(f"DELETE name {short}", "DELETE", unit, headers=())
        yield Hostile(f"placement {short}", "GET", f"{unit}/placement", headers=())
        yield Hostile(f"status {short}", "GET", f"{unit}/status", headers=())
        yield Hostile(f"journal {short}", "GET", f"{unit}/journal", headers=())
        yield Hostile(f"versions {short}", "GET", f"{unit}/versions", headers=())
        yield Hostile(f"version 1 {short}", "GET", f"{unit}/versions/1", headers=())


def _option(section: Any = "Service", name: Any = "ExecStart", value: Any = "/bin/true") -> Any:
    return {"section": section, "name": name, "value": value}


def _unit_bodies() -> Iterator[Hostile]:
    put = f"{V1}/units/new.service"
    existing = f"{V1}/units/web.service"

    def body(id_: str, data: Any, path: str = put, expect: int | None = None) -> Hostile:
        raw = data if isinstance(data, bytes) else _json(data)
        return Hostile(id_, "PUT", path, raw, expect=expect)

    # Unit files that are not text, or that smuggle lines in.
    yield body("NUL in value", {"options": [_option(value="/bin/true\u0000rm -rf /")]}, expect=400)
    yield body("NUL in section", {"options": [_option(section="Ser\u0000vice")]}, expect=400)
    yield body("NUL in key", {"options": [_option(name="Exec\u0000Start")]}, expect=400)
    yield body("newline in value", {"options": [_option(value="a\nExecStartPre=/bin/evil")]})
    yield body("CR in value", {"options": [_option(value="a\rExecStartPre=/bin/evil")]})
    yield body("newline in key", {"options": [_option(name="A\nB")]})
    yield body("section breakout", {"options": [_option(section="Unit]\n[Service")]})
    yield body("ESC in section", {"options": [_option(section="\u001b[2J")]})
    yield body("empty section", {"options": [_option(section="")]})
    yield body("comment key", {"options": [_option(name="#ExecStartPre")]})
    yield body("section key", {"options": [_option(name="[Unit")]})
    yield body("ESC in key", {"options": [_option(name="Exec\u001b[2JStart")]})
    yield body("no options", {"options": [], "desiredState": "launched"}, expect=409)
    yield body(
        "ESC in an X-Fleet value",
        {"options": [_option(), _option("X-Fleet", "Conflicts", "\u001b[2J")]},
    )
    yield body(
        "mount template", {"options": [_option("Mount", "What", "tmpfs")]}, f"{V1}/units/a@.mount"
    )
    for where in ("value", "section", "name"):
        raw = json.dumps({"options": [_option(**{where: "SURROGATE"})]})
        raw = raw.replace("SURROGATE", "a\\ud800b")
        yield body(f"lone surrogate in {where}", raw.encode(), expect=400)
    yield body("lone surrogate in name field", b'{"name":"\\udfff","desiredState":"launched"}')
    # Bodies that are not UTF-8 (or not JSON at all).
    yield body("invalid UTF-8", b'{"options":[{"section":"Service","name":"A","value":"\xff"}]}')
    yield body(
        "overlong UTF-8", b'{"options":[{"section":"Service","name":"A","value":"\xc0\xaf"}]}'
    )
    yield body("truncated UTF-8", b'{"desiredState":"launched\xe2\x82"}')
    yield body(
        "latin-1 body",
        '{"options":[{"section":"Service","name":"A","value":"é"}]}'.encode("latin-1"),
    )
    for i, raw in enumerate(
        [b"{", b'{"options":[', b"{} {}", b"{'a':1}", b'{"a":1,}', b"\x00", b"nul\x00l", b"]"]
    ):
        yield body(f"malformed JSON {i}", raw, expect=400)
    yield body("deeply nested JSON", b"[" * 100_000 + b"]" * 100_000, expect=400)
    yield body("deeply nested options", b'{"options":' + b"[" * 50_000 + b"]" * 50_000 + b"}")
    yield body("100k repeated JSON keys", b"{" + b'"x":0,' * 100_000 + b'"x":0}', expect=409)
    yield body(
        "10001 repeated unit keys",
        {"options": [{"section": "Service", "name": "ExecStartPre"}] * 10_001},
        expect=400,
    )
    # JSON type confusion.
    for id_, data in [
        ("body is a list", []),
        ("body is a string", "launched"),
        ("body is a number", 5),
        ("body is null", None),
        ("body is true", True),
        ("options is a string", {"options": "[Service]\nExecStart=/bin/true"}),
        ("options is an object", {"options": {"section": "Service"}}),
        ("options is a number", {"options": 1}),
        ("option is a number", {"options": [5]}),
        ("option is null", {"options": [None]}),
        ("option is a list", {"options": [["Service", "ExecStart", "/bin/true"]]}),
        ("value is a number", {"options": [_option(value=5)]}),
        ("value is a float", {"options": [_option(value=1.5)]}),
        ("value is a list", {"options": [_option(value=["/bin/true"])]}),
        ("value is null", {"options": [_option(value=None)]}),
        ("value is an object", {"options": [_option(value={"x": "y"})]}),
        ("value is true", {"options": [_option(value=True)]}),
        ("section is a number", {"options": [_option(section=1)]}),
        ("name is null", {"options": [_option(name=None)]}),
        ("section missing", {"options": [{"name": "A", "value": "b"}]}),
        ("desiredState is an int", {"desiredState": 1, "options": options_of(SERVICE)}),
        ("desiredState upper case", {"desiredState": "LAUNCHED", "options": options_of(SERVICE)}),
        ("desiredState unknown", {"desiredState": "running", "options": options_of(SERVICE)}),
        ("desiredState is a list", {"desiredState": ["launched"]}),
        ("desiredState is an object", {"desiredState": {"state": "launched"}}),
        ("name is an object", {"name": {"x": 1}, "options": options_of(SERVICE)}),
        ("name is a number", {"name": 5, "options": options_of(SERVICE)}),
        ("name differs", {"name": "other.service", "options": options_of(SERVICE)}),
        ("name traversal", {"name": "../x.service", "options": options_of(SERVICE)}),
        ("currentState is an object", {"currentState": {}, "options": options_of(SERVICE)}),
        ("machineID is a list", {"machineID": [M1], "options": options_of(SERVICE)}),
    ]:
        yield body(id_, data, expect=400)
    yield body("NaN desiredState", b'{"desiredState": NaN}', expect=400)
    yield body("Infinity value", b'{"options":[{"section":"S","name":"A","value":Infinity}]}')
    # Updates of an existing unit that say nothing, or something impossible.
    yield body("existing: empty object", {}, existing, expect=409)
    yield body("existing: desiredState null", {"desiredState": None}, existing, expect=409)
    yield body("existing: desiredState int", {"desiredState": 2}, existing, expect=400)
    yield body(
        "template started",
        {"desiredState": "launched"},
        f"{V1}/units/app@.service",
        expect=400,
    )
    yield Hostile("replace=maybe", "PUT", put, _json(GOOD_BODY), b"replace=maybe", expect=400)


def _sizes() -> Iterator[Hostile]:
    put = f"{V1}/units/big.service"

    def padded(size: int) -> bytes:
        # Valid JSON of exactly ``size`` bytes: the unit is fine, only its size is not.
        head = _json({"desiredState": "launched", "options": options_of(SERVICE)})
        return head[:-1] + b" " * (size - len(head)) + b"}"

    yield Hostile("2 MiB body", "PUT", put, padded(2 * MiB), expect=413)
    yield Hostile("1 MiB + 1 body", "PUT", put, padded(MiB + 1), expect=413)
    yield Hostile("2 MiB chunked body", "PUT", put, padded(2 * MiB), chunked=True, expect=413)
    yield Hostile("1 MiB + 1 chunked", "PUT", put, padded(MiB + 1), chunked=True, expect=413)
    # Exactly the limit passes the size guard; malformed, it is then a plain 400.
    yield Hostile("exactly 1 MiB, malformed", "PUT", put, b"{" + b" " * (MiB - 1), expect=400)
    yield Hostile(
        "2 MiB value",
        "PUT",
        put,
        _json({"options": [_option(value="x" * 2 * MiB)]}),
        expect=413,
    )
    # Under 1 MiB as UTF-8, but the record escapes each emoji as \\ud83d\\ude00 (12 bytes):
    # more than etcd takes in one request.  The registry's refusal is a 400, not a 500.
    yield Hostile(
        "record over etcd's limit",
        "PUT",
        put,
        json.dumps(
            {"options": [_option(value="\U0001f600" * 200_000)]}, ensure_ascii=False
        ).encode(),
        expect=400,
    )
    yield Hostile(
        "Content-Length lies",
        "PUT",
        put,
        b"{}",
        headers=(*JSON_CT, (b"content-length", str(2 * MiB).encode())),
        chunked=True,
        expect=413,
    )
    yield Hostile(
        "Content-Length not a number",
        "PUT",
        put,
        b"{}",
        headers=(*JSON_CT, (b"content-length", b"12abc")),
        chunked=True,
        expect=400,
    )
    yield Hostile(
        "2 MiB metadata patch",
        "PATCH",
        f"{V1}/machines",
        _json([{"op": "add", "path": f"/{M1}/metadata/k", "value": "v" * 2 * MiB}]),
        expect=413,
    )


def _content_types() -> Iterator[Hostile]:
    put = f"{V1}/units/new.service"
    body = _json(GOOD_BODY)
    for ct in [
        None,
        b"text/plain",
        b"application/x-www-form-urlencoded",
        b"multipart/form-data; boundary=x",
        b"application/jsonx",
        b"application/json-patch+json",
        b"text/json",
        b"json",
        b"",
        b"application/xml",
    ]:
        headers = () if ct is None else ((b"content-type", ct),)
        label = "none" if ct is None else ct.decode()
        yield Hostile(f"PUT content-type {label}", "PUT", put, body, headers=headers, expect=415)
        yield Hostile(
            f"PATCH content-type {label}",
            "PATCH",
            f"{V1}/machines",
            _json([{"op": "add", "path": f"/{M1}/metadata/a", "value": "b"}]),
            headers=headers,
            expect=415,
        )
    yield Hostile("PUT empty body, JSON", "PUT", put, b"", expect=400)
    yield Hostile("PUT empty body, no type", "PUT", put, b"", headers=(), expect=400)
    yield Hostile("PATCH empty body", "PATCH", f"{V1}/machines", b"", expect=400)
    yield Hostile("PUT whitespace body", "PUT", put, b"   ", expect=400)


def _metadata() -> Iterator[Hostile]:
    patch = f"{V1}/machines"

    def ops(id_: str, data: Any, expect: int | None = 400) -> Hostile:
        raw = data if isinstance(data, bytes) else _json(data)
        return Hostile(f"PATCH {id_}", "PATCH", patch, raw, expect=expect)

    for path in [
        "",
        "/",
        f"/{M1}",
        f"/{M1}/metadata",
        f"/{M1}/metadata/",
        f"/{M1}/metadata/a/b",
        f"/{M1}/metadata/a/",
        f"{M1}/metadata/a",
        f"//{M1}/metadata/a",
        f"/{M1}/labels/a",
        f"/{M1}/Metadata/a",
        f"/{M1}/metadata/a\n",
        f"/{M1}/metadata/a\x00",
        f"/{M1}/metadata/a b",
        f"/{M1}/metadata/ä",
        f"/{M1}/metadata/a?x=1",
        f"/{M1}/metadata/%2e%2e",
        "//metadata/a",
        "/../metadata/a",
        "/./metadata/a",
        "/\x00/metadata/a",
        f"/{M1}\n/metadata/a",
        "/\x1b[2J/metadata/a",
        "/%2e%2e/metadata/a",
        "/m\u202e/metadata/a",
        "/" + "m" * 2000 + "/metadata/a",
        f"/{M1}/metadata/a/../../../{M1}/metadata/b",
    ]:
        yield ops(f"path {path[:50]!r}", [{"op": "add", "path": path, "value": "x"}])
    good = f"/{M1}/metadata/a"
    for op in ["move", "copy", "test", "ADD", "", "Add", 5, None, ["add"]]:
        yield ops(f"op {op!r}", [{"op": op, "path": good, "value": "x", "from": good}])
    yield ops("op missing", [{"path": good, "value": "x"}])
    yield ops("path missing", [{"op": "add", "value": "x"}])
    for value in [5, 1.5, True, [], ["x"], {}, {"a": "b"}, None, ""]:
        yield ops(f"add value {value!r}", [{"op": "add", "path": good, "value": value}])
        yield ops(f"replace value {value!r}", [{"op": "replace", "path": good, "value": value}])
    yield ops("replace without value", [{"op": "replace", "path": good}])
    for value in ["a\nb", "a\x00b", "\x1b[2J", "a\rb", "tab\there"]:
        yield ops(f"value {value!r}", [{"op": "add", "path": good, "value": value}])
    yield ops(
        "surrogate value",
        b'[{"op":"add","path":"/' + M1.encode() + b'/metadata/a","value":"\\ud800"}]',
    )
    yield ops("surrogate path", b'[{"op":"add","path":"/\\ud800/metadata/a","value":"x"}]')
    yield ops("surrogate key", b'[{"op":"add","path":"/m/metadata/\\udc00","value":"x"}]')
    for id_, data in [
        ("object body", {"op": "add", "path": good, "value": "x"}),
        ("string body", "add"),
        ("null body", None),
        ("number body", 1),
        ("nested list", [[{"op": "add", "path": good, "value": "x"}]]),
        ("list of numbers", [1, 2]),
        ("list of nulls", [None]),
        ("1001 operations", [{"op": "add", "path": good, "value": "x"}] * 1001),
    ]:
        yield ops(id_, data)
    # One bad operation refuses the whole patch: the good ones before it are not applied.
    yield ops(
        "good then bad",
        [
            {"op": "add", "path": good, "value": "x"},
            {"op": "remove", "path": f"/{M1}/metadata/disk"},
            {"op": "add", "path": f"/{M1}/metadata/a/b", "value": "y"},
        ],
    )
    yield ops("malformed JSON", b'[{"op":"add",')
    yield ops("invalid UTF-8", b'[{"op":"add","path":"/m/metadata/a","value":"\xff"}]')


def _page_tokens() -> Iterator[Hostile]:
    lists = [f"{V1}/units", f"{V1}/state", f"{V1}/machines", f"{V1}/placements"]
    nested = _token(b"[" * 1500 + b"]" * 1500)[:2000]
    tokens: list[tuple[str, bytes]] = [
        ("1 MB token", b"nextPageToken=" + b"A" * 1_000_000),
        ("2049-char token", b"nextPageToken=" + b"A" * 2049),
        ("empty token", b"nextPageToken="),
        ("garbage", b"nextPageToken=!!!***"),
        ("percent garbage", b"nextPageToken=%FF%FE%00"),
        ("NUL", b"nextPageToken=%00"),
        ("negative", b"nextPageToken=-1"),
        ("zero", b"nextPageToken=0"),
        ("page number", b"nextPageToken=2"),
        ("bad padding", b"nextPageToken=A"),
        ("not JSON", b"nextPageToken=" + _token(b"not json").encode()),
        ("JSON list", b"nextPageToken=" + _token(b"[]").encode()),
        ("JSON null", b"nextPageToken=" + _token(b"null").encode()),
        ("other version", b"nextPageToken=" + _token(b'{"v":2,"after":"a"}').encode()),
        ("after is a number", b"nextPageToken=" + _token(b'{"v":1,"after":5}').encode()),
        ("after is empty", b"nextPageToken=" + _token(b'{"v":1,"after":""}').encode()),
        ("after is null", b"nextPageToken=" + _token(b'{"v":1,"after":null}').encode()),
        ("no after", b"nextPageToken=" + _token(b'{"v":1}').encode()),
        ("invalid UTF-8 inside", b"nextPageToken=" + _token(b'{"v":1,"after":"\xff"}').encode()),
        ("surrogate inside", b"nextPageToken=" + _token(b'{"v":1,"after":"\\ud800"}').encode()),
        ("nested JSON inside", b"nextPageToken=" + nested.encode()),
        ("huge number inside", b"nextPageToken=" + _token(b'{"v":1' + b"0" * 1400 + b"}").encode()),
        ("two tokens", b"nextPageToken=" + _token(b'{"v":1,"after":"a"}').encode() * 2),
        (
            "repeated",
            b"nextPageToken=" + _token(b'{"v":1,"after":"a"}').encode() + b"&nextPageToken=x",
        ),
    ]
    for path in lists:
        for label, query in tokens:
            yield Hostile(f"{path[9:]} {label}", "GET", path, query=query, headers=(), expect=400)


def _queries() -> Iterator[Hostile]:
    unit = f"{V1}/units/web.service"
    for query in [b"lines=-1", b"lines=100000000000000000000", b"lines=abc", b"follow=maybe"]:
        yield Hostile(
            f"journal {query.decode()}",
            "GET",
            f"{unit}/journal",
            query=query,
            headers=(),
            expect=400,
        )
    for number in ["0", "-1", "abc", "1.5", "1e3", "9" * 30, "%00", "%C2%B9"]:
        yield Hostile(
            f"version {number}", "GET", f"{unit}/versions/{number}", headers=(), expect=400
        )
    for query in [b"since=-1", b"since=abc", b"since=1e3", b"kinds=bogus", b"kinds=unit,%00"]:
        yield Hostile(
            f"events {query.decode()}", "GET", f"{V1}/events", query=query, headers=(), expect=400
        )
    for value in [b"abc", b"-5", b"1.5", b"\xb2", b"\xb9\xb2", b"0x10", b" 1"]:
        yield Hostile(
            f"events Last-Event-ID {value!r}",
            "GET",
            f"{V1}/events",
            headers=((b"last-event-id", value),),
            expect=400,
        )
    for machine in ["..", "%00", "%2e%2e", "x" * 2000, "%0A"]:
        for action in ("cordon", "uncordon", "drain"):
            yield Hostile(
                f"{action} {machine[:20]}",
                "POST",
                f"{V1}/machines/{machine}/{action}",
                headers=(),
                expect=404,
            )
        yield Hostile(f"get machine {machine[:20]}", "GET", f"{V1}/machines/{machine}", headers=())
    for method, path in [
        ("POST", f"{V1}/units/web.service"),
        ("PATCH", f"{V1}/units/web.service"),
        ("DELETE", f"{V1}/units"),
        ("PUT", f"{V1}/machines"),
        ("DELETE", f"{V1}/machines"),
        ("POST", f"{V1}/state"),
        ("TRACE", f"{V1}/units"),
    ]:
        yield Hostile(f"{method} {path}", method, path, b"{}", expect=405)


def _rollouts() -> Iterator[Hostile]:
    """Rollouts: hostile units, settings and versions; the seeded web.service is launched."""
    start = f"{V1}/rollouts"
    new = options_of(SERVICE.replace("demo", "v2"))

    def post(id_: str, data: Any, expect: int | None = 400) -> Hostile:
        raw = data if isinstance(data, bytes) else _json(data)
        return Hostile(f"rollout {id_}", "POST", start, raw, expect=expect)

    yield post("no unit", {"options": new})
    yield post("unit null", {"unit": None, "options": new})
    yield post("unit with a slash", {"unit": "a/b.service", "options": new})
    yield post("unit with ESC", {"unit": "x[2J.service", "options": new})
    yield post("unit ..", {"unit": "..", "options": new})
    yield post("neither file nor version", {"unit": "web.service"})
    yield post("file and version", {"unit": "web.service", "options": new, "version": 1})
    for field, value in (
        ("maxParallel", 0),
        ("maxParallel", -5),
        ("maxParallel", 2**63),
        ("maxParallel", "two"),
        ("maxParallel", 1.5),
        ("canary", -1),
        ("minHealthyTime", -1),
        ("minHealthyTime", 1e308),
        ("healthyDeadline", 0),
        ("autoRevert", "yes"),
        ("startFirst", 1),
    ):
        yield post(f"{field}={value!r}", {"unit": "web.service", "options": new, field: value})
    yield post("healthyDeadline Infinity", b'{"unit":"web.service","healthyDeadline":Infinity}')
    yield post("minHealthyTime NaN", b'{"unit":"web.service","minHealthyTime":NaN}')
    yield post("version 0", {"unit": "web.service", "version": 0})
    yield post("version -1", {"unit": "web.service", "version": -1})
    yield post("version 7", {"unit": "web.service", "version": 7}, expect=404)
    yield post("version 2**70", {"unit": "web.service", "version": 2**70})
    yield post("template not launched", {"unit": "app@.service", "options": new}, expect=409)
    yield post("no such unit", {"unit": "nope.service", "options": new}, expect=404)
    yield post("same file", {"unit": "web.service", "options": options_of(SERVICE)}, expect=409)
    yield post(
        "turns Global on",
        {"unit": "web.service", "options": [*new, _option("X-Fleet", "Global", "true")]},
    )
    yield post("malformed JSON", b'{"unit": "web.service",', expect=400)
    for raw in ("a%2Fb.service", "..", "x%1B%5B2J.service", "x" * 300 + ".service"):
        for action in ("pause", "resume", "promote", "abort"):
            yield Hostile(
                f"rollout {action} {raw[:20]}", "POST", f"{V1}/rollouts/{raw}/{action}", b""
            )
        yield Hostile(f"rollout status {raw[:20]}", "GET", f"{V1}/rollouts/{raw}", headers=())


def corpus() -> list[Hostile]:
    return [
        *_names(),
        *_rollouts(),
        *_unit_bodies(),
        *_sizes(),
        *_content_types(),
        *_metadata(),
        *_page_tokens(),
        *_queries(),
    ]
