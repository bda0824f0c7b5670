"""The API's bearer tokens: the tokens file, one token a line, each with a name and a role.

Format of ``api_tokens_file`` (a line starting with ``#`` is a comment; fields
are separated by blanks)::

    # NAME     ROLE      SECRET                      [expires=WHEN]
    ci         operate   sha256:9f86d081884c7d65...  expires=2026-12-31
    dashboard  read      sha256:60303ae22b998861...
    alice      admin     sha256:fd61a03af4f77d87...

NAME is what versions and the audit log record (letters, digits, ``_ . @ -``);
ROLE is ``read``, ``operate`` or ``admin`` (``fleetd.caller.Role``); SECRET is
``sha256:`` and the hex SHA-256 of the token (``fleetd token add`` writes such
lines), or the token itself (at least 16 printable characters), which is
hashed when read.  ``expires=`` (ISO date or date and time, UTC unless an
offset is given) ends a token at that instant.  A token is a random secret of
high entropy, so a plain SHA-256 is enough to keep it from being read back
out of the file; only digests are kept in memory.

The single-token ``api_token_file`` of earlier versions is one admin token
named ``token``.  ``TokenSource`` re-reads both files when they change (checked
at most once a ``poll`` interval, on the next request) or on ``reload()``
(SIGHUP).  A file that has become invalid refuses every token until it is
fixed (fail closed): a token removed by an edit with a typo never survives.
No message here ever contains a secret.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fleetd.caller import Role
from fleetd.errors import ConfigError

log = logging.getLogger(__name__)

MIN_SECRET = 16
SINGLE_TOKEN_NAME = "token"  # noqa: S105 - a name, not a secret
"""The name of the token of ``api_token_file``."""
DIGEST_PREFIX = "sha256:"
POLL_INTERVAL = 1.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def digest(secret: str) -> str:
    """The hex SHA-256 of a token (what the tokens file and memory hold)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


def new_secret() -> str:
    """A fresh token: 32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def check_secret(secret: str, where: str) -> None:
    """ConfigError (naming ``where``, never the secret) unless ``secret`` is usable."""
    if len(secret) < MIN_SECRET:
        raise ConfigError(f"{where}: a token must be at least {MIN_SECRET} characters")
    if not (secret.isascii() and secret.isprintable()) or any(c.isspace() for c in secret):
        raise ConfigError(f"{where}: a token is printable ASCII without blanks")


@dataclass(frozen=True, slots=True)
class Token:
    """One accepted token: its ``name``, ``role``, SHA-256 ``digest`` and end (or None)."""

    name: str
    role: Role
    digest: str
    expires: datetime | None = None

    def line(self) -> str:
        """The token's line in a tokens file (hashed)."""
        end = f" expires={self.expires.isoformat()}" if self.expires else ""
        return f"{self.name} {self.role.label} {DIGEST_PREFIX}{self.digest}{end}"


def parse_expiry(raw: str, where: str) -> datetime:
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise ConfigError(
            f"{where}: expires={raw!r} is not an ISO date or time (e.g. 2026-12-31)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def parse_line(line: str, where: str) -> Token | None:
    """One line of a tokens file -> Token (None for a blank or comment line)."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    fields = text.split()
    if len(fields) < 3:
        raise ConfigError(f"{where}: expected NAME ROLE SECRET [expires=WHEN]")
    name, role_word, secret, *extra = fields
    if not _NAME.match(name):
        raise ConfigError(
            f"{where}: token name {name[:64]!r} may only contain letters, digits, _ . @ - "
            "(64 at most, starting with a letter or digit)"
        )
    try:
        role = Role.parse(role_word)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if secret.startswith(DIGEST_PREFIX):
        hexed = secret[len(DIGEST_PREFIX) :].lower()
        if not _DIGEST.match(hexed):
            raise ConfigError(f"{where}: sha256: must be followed by 64 hex digits")
    else:
        check_secret(secret, where)
        hexed = digest(secret)
    expires = None
    for item in extra:
        key, sep, value = item.partition("=")
        if key != "expires" or not sep:
            # Not quoted: a stray field may be a secret pasted in the wrong place.
            raise ConfigError(f"{where}: unexpected field after the secret (only expires=WHEN)")
        expires = parse_expiry(value, where)
    return Token(name, role, hexed, expires)


def parse_tokens(text: str, source: str) -> tuple[Token, ...]:
    """Every token of a tokens file; ConfigError naming the line of the first problem."""
    tokens: list[Token] = []
    names: dict[str, int] = {}
    digests: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{source}:{number}"
        token = parse_line(line, where)
        if token is None:
            continue
        if token.name in names:
            first = names[token.name]
            raise ConfigError(f"{where}: token name {token.name!r} already on line {first}")
        if token.digest in digests:
            raise ConfigError(f"{where}: the same secret as line {digests[token.digest]}")
        names[token.name] = digests[token.digest] = number
        tokens.append(token)
    return tuple(tokens)


def parse_single(text: str, source: str) -> Token:
    """The token of an ``api_token_file`` (the whole file, blanks around it removed)."""
    secret = text.strip()
    check_secret(secret, source)
    return Token(SINGLE_TOKEN_NAME, Role.ADMIN, digest(secret))


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of presenting a secret: the token, or why it was refused."""

    token: Token | None
    refusal: str = ""


class TokenTable:
    """Accepted tokens by digest; ``broken`` (a reason) refuses every token."""

    def __init__(self, tokens: Sequence[Token] = (), broken: str = "") -> None:
        self._by_digest: Mapping[str, Token] = {t.digest: t for t in tokens}
        self.broken = broken

    @property
    def tokens(self) -> tuple[Token, ...]:
        return tuple(self._by_digest.values())

    def check(self, secret: str, now: datetime) -> Verdict:
        if self.broken:
            return Verdict(None, f"no token is accepted now: {self.broken}")
        # A lookup by the secret's digest: its timing depends on the digest, not the secret.
        token = self._by_digest.get(digest(secret))
        if token is None:
            return Verdict(None, "invalid bearer token")
        if token.expires is not None and now >= token.expires:
            return Verdict(None, f"token {token.name!r} expired at {token.expires.isoformat()}")
        return Verdict(token)


class StaticTokens:
    """A fixed set of tokens (tests, and a bare secret given in code)."""

    def __init__(
        self,
        tokens: Sequence[Token],
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._table = TokenTable(tokens)
        self.wall = wall

    @classmethod
    def single(cls, secret: str, name: str = SINGLE_TOKEN_NAME) -> StaticTokens:
        """One admin token ``name`` with this secret."""
        return cls([Token(name, Role.ADMIN, digest(secret))])

    def check(self, secret: str) -> Verdict:
        return self._table.check(secret, self.wall())


def _read(path: str, option: str) -> tuple[str, tuple[int, int, int]]:
    try:
        with open(path, encoding="utf-8") as f:
            info = os.fstat(f.fileno())
            text = f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read {option} {path}: {exc.strerror}") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"{option} {path} is not UTF-8 text") from None
    return text, (info.st_ino, info.st_size, info.st_mtime_ns)


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns)


class TokenSource:
    """The tokens of ``tokens_file`` and ``token_file``, re-read when either changes.

    ``table()`` is cheap: it looks at the files' inode, size and mtime at most
    once per ``poll`` seconds (``monotonic``) and re-reads them when one changed.
    """

    def __init__(
        self,
        tokens_file: str | None = None,
        token_file: str | None = None,
        *,
        poll: float = POLL_INTERVAL,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not tokens_file and not token_file:
            raise ConfigError("no api_tokens_file or api_token_file to read tokens from")
        self._files = tuple(
            (path, option)
            for path, option in ((tokens_file, "api_tokens_file"), (token_file, "api_token_file"))
            if path
        )
        self.poll = poll
        self._monotonic = monotonic
        self.wall = wall
        self._stamps: tuple[tuple[int, int, int] | None, ...] = ()
        self._checked = monotonic()
        # The first load raises: a bad file at start is a configuration error.
        self._table = self._load()

    def _load(self) -> TokenTable:
        tokens: list[Token] = []
        stamps = []
        for path, option in self._files:
            text, stamp = _read(path, option)
            stamps.append(stamp)
            if option == "api_tokens_file":
                tokens.extend(parse_tokens(text, path))
            else:
                tokens.append(parse_single(text, path))
        self._stamps = tuple(stamps)
        names = [t.name for t in tokens]
        if len(set(names)) != len(names):
            raise ConfigError(
                f"api_tokens_file names a token {SINGLE_TOKEN_NAME!r}, the name of the token "
                "of api_token_file: rename it"
            )
        if len({t.digest for t in tokens}) != len(tokens):
            raise ConfigError("api_token_file holds a token that api_tokens_file lists too")
        return TokenTable(tokens)

    def reload(self) -> None:
        """Read the files now (SIGHUP); a bad file refuses every token until it is fixed."""
        self._checked = self._monotonic()
        try:
            table = self._load()
        except ConfigError as exc:
            log.error("tokens not reloaded, every token refused until fixed: %s", exc)
            self._stamps = tuple(_stamp(path) for path, _ in self._files)
            self._table = TokenTable(broken="the tokens file is invalid (see fleetd's log)")
            return
        if table.tokens != self._table.tokens or self._table.broken:
            log.info("tokens reloaded: %s", ", ".join(sorted(t.name for t in table.tokens)))
        self._table = table

    def table(self) -> TokenTable:
        now = self._monotonic()
        if now - self._checked >= self.poll:
            self._checked = now
            if tuple(_stamp(path) for path, _ in self._files) != self._stamps:
                self.reload()
        return self._table

    def check(self, secret: str) -> Verdict:
        return self.table().check(secret, self.wall())


def add_token(path: Path, name: str, role: Role, expires: datetime | None = None) -> str:
    """Append a new token to the tokens file ``path`` (created 0600); returns its secret.

    The file is re-validated with the new line before it is written, so a clash
    (a name already there) changes nothing.
    """
    secret = new_secret()
    line = Token(name, role, digest(secret), expires).line()
    if not _NAME.match(name):
        raise ConfigError(f"token name {name[:64]!r} may only contain letters, digits, _ . @ -")
    try:
        old = path.read_text(encoding="utf-8") if path.exists() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read tokens file {path}: {exc}") from exc
    text = old + ("" if not old or old.endswith("\n") else "\n") + line + "\n"
    parse_tokens(text, str(path))
    _write_private(path, text)
    return secret


def remove_token(path: Path, name: str) -> bool:
    """Remove the token ``name`` from the tokens file; False if it was not there."""
    try:
        old = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read tokens file {path}: {exc}") from exc
    kept = []
    found = False
    for number, line in enumerate(old.splitlines(), 1):
        token = parse_line(line, f"{path}:{number}")
        if token is not None and token.name == name:
            found = True
            continue
        kept.append(line)
    if found:
        _write_private(path, "".join(f"{line}\n" for line in kept))
    return found


def _write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with ``text``, mode 0600."""
    tmp = path.with_name(f".{path.name}.new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(fd, 0o600)
        f.write(text)
        f.flush()
        os.fsync(fd)
    os.replace(tmp, path)
