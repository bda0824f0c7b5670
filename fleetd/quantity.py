"""CPU and memory quantities: parse and format (pure).

CPU is counted in millicores (``0.5``, ``2``, ``500m``); memory in bytes with
systemd's base-1024 suffixes (``512M``, ``1.5G``).  Used by ``[X-Fleet]``
reservations, the configuration and the sandbox's ``--capacity``.
``fleetd.requirements`` re-exports everything public.
"""

from __future__ import annotations

import re

from fleetd.errors import InvalidInput

_MEMORY_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_MEMORY_UNITS |= {"P": 1 << 50, "E": 1 << 60}
_MEMORY = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([KMGTPEB]?)\Z", re.IGNORECASE)
_CORES = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\Z")
_MILLIS = re.compile(r"(\d+)m\Z")
_PERCENT = re.compile(r"(\d+(?:\.\d*)?|\.\d+)%\Z")


def parse_cpu(raw: str) -> int:
    """CPU in millicores from ``2`` (cores), ``0.5`` (cores) or ``500m`` (millicores).

    Raises InvalidInput for anything else, negative values or sub-millicore precision.
    """
    text = raw.strip()
    m = _MILLIS.match(text)
    if m:
        return int(m.group(1))
    m = _CORES.match(text)
    if not m:
        raise InvalidInput(f"not a CPU amount: {raw!r} (cores like 2 or 0.5, or millicores: 500m)")
    whole, _, frac = m.group(1).partition(".")
    if len(frac.rstrip("0")) > 3:
        raise InvalidInput(f"CPU amount {raw!r} is finer than a millicore (1m = 0.001)")
    return int(whole or "0") * 1000 + int((frac + "000")[:3])


def parse_memory(raw: str) -> int:
    """Bytes from ``1048576``, ``512K``, ``512M``, ``1.5G``, ``2T`` (base 1024, as systemd).

    Raises InvalidInput for anything else (including ``infinity``, which is
    handled by the callers that allow it).
    """
    m = _MEMORY.match(raw.strip())
    if not m:
        raise InvalidInput(
            f"not a memory size: {raw!r} (bytes, or with a K/M/G/T suffix, e.g. 512M or 1.5G)"
        )
    number, unit = m.group(1), m.group(2).upper()
    whole, _, frac = number.partition(".")
    factor = _MEMORY_UNITS[unit]
    # Exact integer arithmetic: the fractional part is truncated to whole bytes.
    return int(whole or "0") * factor + (int(frac) * factor // 10 ** len(frac) if frac else 0)


def parse_cpu_quota(raw: str) -> int:
    """Millicores from systemd's ``CPUQuota=`` percentage (``50%`` -> 500, ``200%`` -> 2000)."""
    m = _PERCENT.match(raw.strip())
    if not m or float(m.group(1)) <= 0:
        raise InvalidInput(f"not a CPU quota: {raw!r} (a percentage above 0, e.g. 50% or 200%)")
    return round(float(m.group(1)) * 10)


def format_memory(size: int) -> str:
    """A short human form for messages: ``512M``, ``2G``, ``1.5G``, ``100`` (bytes)."""
    if size < 0:
        return "-" + format_memory(-size)
    for unit in ("E", "P", "T", "G", "M", "K"):
        factor = _MEMORY_UNITS[unit]
        if size >= factor:
            if size % factor == 0:
                return f"{size // factor}{unit}"
            return f"{size / factor:.2f}".rstrip("0").rstrip(".") + unit
    return str(size)


def format_cpu(millis: int) -> str:
    """A short human form for messages: ``500m``, ``2``, ``1.5``."""
    if millis < 0:
        return "-" + format_cpu(-millis)
    if millis % 1000 == 0:
        return str(millis // 1000)
    if millis > 1000:
        return f"{millis / 1000:g}"
    return f"{millis}m"
