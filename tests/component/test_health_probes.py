"""One health check against real local services (fleetd/agent/probes.py): HTTP and TCP
servers on 127.0.0.1, commands run without a shell, timeouts that kill."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from healthkit import HttpService, closed_port

from fleetd.agent.probes import EXEC_PATH, run_probe
from fleetd.healthcheck import ExecProbe, HttpProbe, TcpProbe
from fleetd.testing.polling import until
from fleetd.unithealth import CheckResult


@pytest.fixture
async def http() -> object:
    service = HttpService()
    async with service.running():
        yield service


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("200 OK", CheckResult(True)),
        ("204 No Content", CheckResult(True)),
        ("302 Found", CheckResult(True)),
        ("399 Whatever", CheckResult(True)),
        ("404 Not Found", CheckResult(False, "HTTP 404 Not Found")),
        ("503 Service Unavailable", CheckResult(False, "HTTP 503 Service Unavailable")),
        ("500", CheckResult(False, "HTTP 500")),
        ("garbage", CheckResult(False, "not an HTTP answer: b'hello there\\r\\n'")),
        ("close", CheckResult(False, "the connection was closed without an answer")),
        ("hang", CheckResult(False, "no answer within 300ms")),
    ],
)
async def test_http_2xx_and_3xx_are_healthy(
    http: HttpService, answer: str, expected: CheckResult
) -> None:
    http.status["/health"] = answer
    result = await run_probe(HttpProbe("127.0.0.1", http.port, "/health"), 0.3)
    assert result == expected
    assert http.requests == {"/health": 1}


async def test_http_reads_only_the_status_line(http: HttpService) -> None:
    started = time.monotonic()
    assert await run_probe(HttpProbe("127.0.0.1", http.port, "/big"), 2.0) == CheckResult(True)
    assert time.monotonic() - started < 1.0


async def test_http_sends_the_path_and_query(http: HttpService) -> None:
    await run_probe(HttpProbe("127.0.0.1", http.port, "/a/b?x=1"), 1.0)
    assert http.requests == {"/a/b?x=1": 1}


async def test_http_and_tcp_to_a_closed_port_are_refused() -> None:
    port = closed_port()
    assert await run_probe(HttpProbe("127.0.0.1", port, "/"), 1.0) == CheckResult(
        False, "connection refused"
    )
    assert await run_probe(TcpProbe("127.0.0.1", port), 1.0) == CheckResult(
        False, "connection refused"
    )


async def test_tcp_connect_is_healthy(http: HttpService) -> None:
    assert await run_probe(TcpProbe("127.0.0.1", http.port), 1.0) == CheckResult(True)
    assert await run_probe(TcpProbe("::1", closed_port()), 1.0) != CheckResult(True)


async def test_an_unresolvable_host_fails_with_the_resolver_s_word() -> None:
    result = await run_probe(TcpProbe("no-such-host.invalid", 80), 2.0)
    assert not result.ok and result.message


async def test_exec_exit_status(tmp_path: Path) -> None:
    assert await run_probe(ExecProbe(("/bin/true",)), 2.0) == CheckResult(True)
    assert await run_probe(ExecProbe(("true",)), 2.0) == CheckResult(True)  # found in PATH
    failing = ExecProbe(("/bin/sh", "-c", "echo starting; echo 'not ready yet' >&2; exit 3"))
    assert await run_probe(failing, 2.0) == CheckResult(False, "exit status 3: not ready yet")
    assert await run_probe(ExecProbe(("/bin/false",)), 2.0) == CheckResult(False, "exit status 1")
    killed = ExecProbe(("/bin/sh", "-c", "kill -TERM $$"))
    assert await run_probe(killed, 2.0) == CheckResult(False, "killed by signal SIGTERM")


async def test_exec_of_a_missing_command() -> None:
    result = await run_probe(ExecProbe((str(Path("/nonexistent/check")),)), 2.0)
    assert result == CheckResult(False, "cannot run /nonexistent/check: No such file or directory")


async def test_exec_runs_without_a_shell_in_a_clean_environment(tmp_path: Path) -> None:
    out = tmp_path / "out"
    os.environ["FLEETD_SECRET_FOR_TEST"] = "x"
    try:
        probe = ExecProbe(("/bin/sh", "-c", f"pwd > {out}; env >> {out}; echo $$ >> {out}"))
        assert await run_probe(probe, 2.0) == CheckResult(True)
    finally:
        del os.environ["FLEETD_SECRET_FOR_TEST"]
    lines = out.read_text().splitlines()
    assert lines[0] == "/"
    assert f"PATH={EXEC_PATH}" in lines
    assert not any(line.startswith("FLEETD_") for line in lines)
    # arguments are passed as they are: nothing is interpreted
    literal = ExecProbe(("/bin/sh", "-c", "test \"$0\" = '*;$(x)'", "*;$(x)"))
    assert await run_probe(literal, 2.0) == CheckResult(True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


async def test_exec_timeout_kills_the_command_and_its_children(tmp_path: Path) -> None:
    pidfile = tmp_path / "child"
    probe = ExecProbe(("/bin/sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"))
    started = time.monotonic()
    assert await run_probe(probe, 0.5) == CheckResult(False, "timed out after 500ms (killed)")
    assert time.monotonic() - started < 5
    child = int(pidfile.read_text())
    await until(lambda: not _alive(child), "the command's child killed")
