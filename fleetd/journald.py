"""Logging to systemd's journal with structured fields (journald's native protocol).

When fleetd runs as a systemd service its stderr already goes to the journal,
as plain lines.  ``JournalHandler`` sends each record to journald's socket
instead, as one entry with ``MESSAGE``, ``PRIORITY``, ``SYSLOG_IDENTIFIER``
and the logger's name, plus the fields a record carries in its
``journal_fields`` attribute (``log.info(..., extra={"journal_fields": {...}})``),
so that ``journalctl FLEETD_CALLER=ci`` finds what a token did.
``under_journald()`` says whether stderr is connected to the journal
(``$JOURNAL_STREAM``, set by systemd), i.e. whether to use the handler.

The protocol: one datagram of ``NAME=value`` lines; a value that holds a
newline is written as ``NAME``, a newline, its length as 64-bit little-endian
and the bytes.  Field names are upper-case letters, digits and ``_``.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import struct
import sys
from collections.abc import Mapping

SOCKET = "/run/systemd/journal/socket"
IDENTIFIER = "fleetd"
_FIELD = re.compile(r"^[A-Z0-9][A-Z0-9_]*$")
_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


def under_journald() -> bool:
    """True when stderr is the journal stream systemd gave this process."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    device, sep, inode = stream.partition(":")
    if not sep:
        return False
    try:
        info = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return f"{info.st_dev}:{info.st_ino}" == f"{device}:{inode}"


def encode(fields: Mapping[str, str]) -> bytes:
    """One journal entry in the native protocol (fields with bad names are skipped)."""
    out = bytearray()
    for name, value in fields.items():
        if not _FIELD.match(name):
            continue
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            out += name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += name.encode() + b"=" + data + b"\n"
    return bytes(out)


def priority(level: int) -> int:
    for bound in sorted(_PRIORITY, reverse=True):
        if level >= bound:
            return _PRIORITY[bound]
    return 7


class JournalHandler(logging.Handler):
    """Sends records to journald; falls back to stderr for a record journald refuses."""

    def __init__(self, path: str = SOCKET, identifier: str = IDENTIFIER) -> None:
        super().__init__()
        self.path = path
        self.identifier = identifier
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._fallback = logging.StreamHandler(sys.stderr)

    def fields(self, record: logging.LogRecord) -> dict[str, str]:
        fields = {
            "MESSAGE": self.format(record),
            "PRIORITY": str(priority(record.levelno)),
            "SYSLOG_IDENTIFIER": self.identifier,
            "LOGGER": record.name,
            "CODE_FILE": record.pathname,
            "CODE_LINE": str(record.lineno),
            "CODE_FUNC": record.funcName,
        }
        extra = getattr(record, "journal_fields", None)
        if isinstance(extra, Mapping):
            fields.update({str(k): str(v) for k, v in extra.items()})
        return fields

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self._sock.fileno() == -1:
                # logging.config.dictConfig (uvicorn's setup) closes every handler it
                # finds, though they stay in use: open the socket again.
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.sendto(encode(self.fields(record)), self.path)
        except OSError:
            # Too large for a datagram, or journald is restarting: keep the line.
            self._fallback.setFormatter(self.formatter)
            self._fallback.emit(record)
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self._sock.close()
        super().close()
