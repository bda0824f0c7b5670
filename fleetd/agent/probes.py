"""Running one health check: an HTTP GET, a TCP connect or a command (the I/O part).

``run_probe(probe, within)`` never raises for what the checked service does
(refused connections, bad answers, hangs, failing commands): every such
outcome is a failed CheckResult whose message says what happened.

- http: a minimal HTTP/1.1 ``GET`` (``Connection: close``) on a socket driven by the
  event loop's ``sock_*`` calls (no transport or stream objects: a third of the CPU
  of ``asyncio.open_connection`` per check); only the status line is read, so a
  large or endless body costs nothing.
- tcp: a connect on such a socket, closed at once.
- Host names are resolved for every check (``getaddrinfo`` in the loop's executor);
  an IP address is used as it is.
- exec: ``asyncio.create_subprocess_exec`` with the argument list (no shell),
  stdin from /dev/null, ``/`` as working directory, only ``PATH`` (systemd's
  default) in the environment, in a session of its own so that on timeout the
  whole process group is killed.  Its output is kept for the message (the last
  line of a failed run).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import os
import signal
import socket
from typing import Any

from fleetd.healthcheck import ExecProbe, HttpProbe, Probe, TcpProbe
from fleetd.timespan import format_timespan
from fleetd.unithealth import CheckResult

EXEC_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"
"""systemd's default ``PATH`` for services."""
_USER_AGENT = "fleetd-health-check"
_MAX_STATUS_LINE = 8192
_KEPT_OUTPUT = 4096


async def run_probe(probe: Probe, within: float) -> CheckResult:
    """Run ``probe`` once, giving up (and killing a command) after ``within`` seconds."""
    if isinstance(probe, ExecProbe):
        return await _exec(probe, within)
    try:
        async with asyncio.timeout(within):
            if isinstance(probe, HttpProbe):
                return await _http(probe)
            return await _tcp(probe)
    except TimeoutError:
        return CheckResult(False, f"no answer within {format_timespan(within)}")
    except OSError as exc:
        return CheckResult(False, _os_error(exc))


async def _connect(host: str, port: int) -> socket.socket:
    """A connected non-blocking socket (the loop's socket calls: no transport, no streams)."""
    loop = asyncio.get_running_loop()
    family = _numeric_family(host)
    if family is not None:
        targets: list[tuple[int, Any]] = [(family, (host, port))]
    else:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        targets = [(info[0], info[4]) for info in infos]
    error: OSError = OSError(f"{host} has no address")
    for family, address in targets:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
        except BaseException:
            sock.close()
            raise
    raise error


@functools.lru_cache(maxsize=1024)
def _numeric_family(host: str) -> int | None:
    """The address family of an IP address, None for a host name."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return socket.AF_INET6 if ip.version == 6 else socket.AF_INET


async def _tcp(probe: TcpProbe) -> CheckResult:
    (await _connect(probe.host, probe.port)).close()
    return CheckResult(True)


async def _http(probe: HttpProbe) -> CheckResult:
    loop = asyncio.get_running_loop()
    host = f"[{probe.host}]" if ":" in probe.host else probe.host
    request = (
        f"GET {probe.target} HTTP/1.1\r\nHost: {host}:{probe.port}\r\n"
        f"User-Agent: {_USER_AGENT}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    ).encode("utf-8", "surrogateescape")
    with await _connect(probe.host, probe.port) as sock:
        await loop.sock_sendall(sock, request)
        answer = b""
        while b"\n" not in answer:
            if len(answer) > _MAX_STATUS_LINE:
                return CheckResult(False, "not an HTTP answer (no status line)")
            chunk = await loop.sock_recv(sock, 4096)
            if not chunk:
                break
            answer += chunk
    if not answer:
        return CheckResult(False, "the connection was closed without an answer")
    return _status(answer.partition(b"\n")[0] + b"\n")


def _status(line: bytes) -> CheckResult:
    parts = line.decode("latin-1").split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        return CheckResult(False, f"not an HTTP answer: {line[:80]!r}")
    code = int(parts[1])
    if 200 <= code < 400:
        return CheckResult(True)
    reason = parts[2].strip() if len(parts) > 2 else ""
    return CheckResult(False, f"HTTP {code} {reason}".rstrip())


async def _exec(probe: ExecProbe, within: float) -> CheckResult:
    try:
        proc = await asyncio.create_subprocess_exec(
            *probe.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd="/",
            env={"PATH": EXEC_PATH},
            start_new_session=True,
        )
    except OSError as exc:
        return CheckResult(False, f"cannot run {probe.argv[0]}: {_os_error(exc)}")
    assert proc.stdout is not None
    kept = b""
    try:
        async with asyncio.timeout(within):
            while chunk := await proc.stdout.read(65536):
                kept = (kept + chunk)[-_KEPT_OUTPUT:]
            code = await proc.wait()
    except TimeoutError:
        _kill_group(proc.pid)
        await proc.wait()
        return CheckResult(False, f"timed out after {format_timespan(within)} (killed)")
    except BaseException:  # cancelled: leave nothing running, and reap it
        _kill_group(proc.pid)
        with contextlib.suppress(BaseException):
            async with asyncio.timeout(1):
                await proc.wait()
        raise
    if code == 0:
        return CheckResult(True)
    lines = kept.decode("utf-8", "replace").strip().splitlines()
    what = f"exit status {code}" if code > 0 else f"killed by signal {_signal_name(-code)}"
    return CheckResult(False, f"{what}: {lines[-1]}" if lines else what)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _os_error(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return exc.strerror or str(exc) or type(exc).__name__
