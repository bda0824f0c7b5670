"""journald's native protocol: fields as journald reads them, sent to a socket like its own."""

from __future__ import annotations

import logging
import socket
import struct
from pathlib import Path

from fleetd.journald import JournalHandler, encode, priority


def decode(data: bytes) -> dict[str, str]:
    """journald's reading of a datagram (the inverse of ``encode``)."""
    fields: dict[str, str] = {}
    rest = data
    while rest:
        line, _, after = rest.partition(b"\n")
        if b"=" in line:
            name, _, value = line.partition(b"=")
            fields[name.decode()] = value.decode()
            rest = after
        else:
            (size,) = struct.unpack("<Q", after[:8])
            fields[line.decode()] = after[8 : 8 + size].decode()
            rest = after[8 + size + 1 :]
    return fields


def test_encode_plain_and_multiline_values() -> None:
    data = encode({"MESSAGE": "two\nlines", "FLEETD_CALLER": "ci", "bad name": "x"})
    assert decode(data) == {"MESSAGE": "two\nlines", "FLEETD_CALLER": "ci"}


def test_priorities() -> None:
    assert [priority(lvl) for lvl in (10, 20, 30, 40, 50)] == [7, 6, 4, 3, 2]


def test_handler_sends_record_fields(tmp_path: Path) -> None:
    path = str(tmp_path / "journal.sock")
    journal = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    journal.bind(path)
    handler = JournalHandler(path)
    logger = logging.getLogger("test.journald")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        # dictConfig (as uvicorn runs it) closes every handler, which stays in use.
        handler.close()
        logger.warning("hello %s", "there", extra={"journal_fields": {"FLEETD_STATUS": 403}})
        journal.settimeout(5)
        fields = decode(journal.recv(65536))
    finally:
        logger.removeHandler(handler)
        handler.close()
        journal.close()
    assert fields["MESSAGE"] == "hello there"
    assert fields["PRIORITY"] == "4"
    assert fields["SYSLOG_IDENTIFIER"] == "fleetd"
    assert fields["LOGGER"] == "test.journald"
    assert fields["FLEETD_STATUS"] == "403"
