"""Facts about this machine the agent registers: id, hostname, public IP, capacity."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import struct
from pathlib import Path

from fleetd.errors import ConfigError
from fleetd.model import Capacity
from fleetd.specifiers import HostFacts

_MACHINE_ID = re.compile(r"^[0-9a-f]{32}$")


def machine_id(path: str | Path = "/etc/machine-id") -> str:
    """The systemd machine id (32 lowercase hex digits)."""
    try:
        value = Path(path).read_text(encoding="ascii").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the machine id from {path}: {exc}") from exc
    if not _MACHINE_ID.match(value):
        raise ConfigError(f"{path} does not hold a machine id (32 hex digits): {value!r}")
    return value


def hostname() -> str:
    return socket.gethostname()


def boot_id(path: str | Path = "/proc/sys/kernel/random/boot_id") -> str:
    """This boot's id as systemd writes it (32 hex digits), or ``""`` if unreadable."""
    try:
        return Path(path).read_text(encoding="ascii").strip().replace("-", "")
    except OSError:
        return ""


def specifier_facts(machine_id: str, host_name: str = "") -> HostFacts:
    """What ``%m %H %l %b %v`` expand to here (the machine id as the agent registers it)."""
    return HostFacts(
        hostname=host_name or hostname(),
        machine_id=machine_id,
        boot_id=boot_id(),
        kernel_release=os.uname().release,
    )


def default_route_ip(route_table: str | Path = "/proc/net/route") -> str:
    """The IPv4 address of the interface that carries the default route, or ``""``.

    The kernel picks it: a UDP socket ``connect``ed to the default gateway
    (no packet is sent) gets the source address of that route.
    """
    try:
        lines = Path(route_table).read_text(encoding="ascii").splitlines()[1:]
    except OSError:
        return ""
    for line in lines:
        fields = line.split()
        if len(fields) < 3 or fields[1] != "00000000":
            continue
        gateway = socket.inet_ntoa(struct.pack("<L", int(fields[2], 16)))
        with (
            contextlib.suppress(OSError),
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
        ):
            sock.connect((gateway, 9))
            return str(sock.getsockname()[0])
    return ""


def memory_total(meminfo: str | Path = "/proc/meminfo") -> int:
    """``MemTotal`` in bytes."""
    for line in Path(meminfo).read_text(encoding="ascii").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise ConfigError(f"no MemTotal in {meminfo}")


def capacity(
    *,
    cpu_millis: int | None = None,
    memory_bytes: int | None = None,
    reserved_cpu_millis: int = 0,
    reserved_memory_bytes: int = 0,
) -> Capacity:
    """Schedulable capacity: the configured values, else the host's minus the reservations."""
    cpu = cpu_millis if cpu_millis is not None else (os.cpu_count() or 1) * 1000
    mem = memory_bytes if memory_bytes is not None else memory_total()
    if cpu_millis is None:
        cpu -= reserved_cpu_millis
    if memory_bytes is None:
        mem -= reserved_memory_bytes
    return Capacity(max(cpu, 0), max(mem, 0))
