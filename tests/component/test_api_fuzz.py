"""Schema-driven fuzzing (schemathesis) of the API against its own OpenAPI: no 5xx, ever.

The API runs for real (uvicorn, token-guarded TCP) on the in-process cluster of
clikit.py: two machines whose real engine and agents place and run (on fake
systemd) what the requests submit, so that they reach every handler with data
behind it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import leakcheck
import pytest
import schemathesis
from clikit import ServerThread
from hypothesis import HealthCheck, settings

from fleetd.api.app import create_app
from fleetd.api.service.inspector import SystemdInspector
from fleetd.registry.memory import MemoryRegistry
from fleetd.registry.store import Store

TOKEN = leakcheck.secret("fuzz-token-0123456789abcdef")
schema = schemathesis.openapi.from_dict(create_app(Store(MemoryRegistry())).openapi()).exclude(
    path="/fleet/v1/events"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    tmp = tmp_path_factory.mktemp("fuzz")
    script = tmp / "tool.py"
    script.write_text("import sys\nprint('ok ' + ' '.join(sys.argv[1:]))\n")
    tool = (sys.executable, str(script))
    thread = ServerThread(Path(tmp), inspector=SystemdInspector(tool, tool), token=TOKEN).start()
    try:
        yield thread
    finally:
        thread.stop()


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors(case: schemathesis.Case, server: ServerThread) -> None:
    response = case.call(
        base_url=server.tcp_endpoint, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=15
    )
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
    )
    if response.status_code >= 400:
        body = response.json()
        assert body["error"]["code"] == response.status_code
        assert body["error"]["message"]
