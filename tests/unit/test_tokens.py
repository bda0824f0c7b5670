"""The tokens file: its format, its errors (never quoting a secret), reloading, expiry."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fleetd.caller import Role
from fleetd.errors import ConfigError
from fleetd.tokens import (
    SINGLE_TOKEN_NAME,
    TokenSource,
    add_token,
    digest,
    parse_line,
    parse_tokens,
    remove_token,
)

SECRET = "s3cret-0123456789abcdefXYZ"
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def test_lines_hashed_and_clear() -> None:
    text = (
        "# NAME ROLE SECRET\n"
        "\n"
        f"ci operate sha256:{digest(SECRET)} expires=2026-12-31\n"
        f"  alice   ADMIN   {SECRET}x  \n"
    )
    ci, alice = parse_tokens(text, "tokens")
    assert (ci.name, ci.role, ci.digest) == ("ci", Role.OPERATE, digest(SECRET))
    assert ci.expires == datetime(2026, 12, 31, tzinfo=UTC)
    assert (alice.name, alice.role, alice.digest) == ("alice", Role.ADMIN, digest(SECRET + "x"))
    assert SECRET not in repr(alice)
    again = parse_tokens(ci.line() + "\n", "t")
    assert again == (ci,)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (f"ci {SECRET}", "expected NAME ROLE SECRET"),
        (f"ci root {SECRET}", "unknown role 'root' (choose read, operate, admin)"),
        (f"-ci read {SECRET}", "token name '-ci' may only contain"),
        ("ci read short", "at least 16 characters"),
        ("ci read sha256:abc", "64 hex digits"),
        (f"ci read {SECRET} {SECRET}", "unexpected field after the secret"),
        (f"ci read {SECRET} expires=soon", "expires='soon' is not an ISO date"),
        (f"ci read {SECRET}\u00e9", "printable ASCII"),
    ],
)
def test_bad_lines_name_the_line_never_the_secret(line: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_tokens(f"# ok\n{line}\n", "/etc/fleet/tokens")
    text = str(info.value)
    assert text.startswith("/etc/fleet/tokens:2: ")
    assert message in text
    assert SECRET[:16] not in text and "'short'" not in text


def test_names_and_secrets_are_unique() -> None:
    with pytest.raises(ConfigError, match=r"t:2: token name 'ci' already on line 1"):
        parse_tokens(f"ci read {SECRET}\nci admin {SECRET}x\n", "t")
    with pytest.raises(ConfigError, match=r"t:2: the same secret as line 1"):
        parse_tokens(f"ci read {SECRET}\nbot admin sha256:{digest(SECRET)}\n", "t")


def test_comment_and_blank_lines() -> None:
    assert parse_line("   # a comment", "x") is None
    assert parse_line("", "x") is None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_source_rereads_a_changed_file_after_the_poll_interval(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"ci read {SECRET}\n")
    clock = Clock()
    source = TokenSource(str(path), poll=1.0, monotonic=clock, wall=lambda: NOW)
    assert source.check(SECRET).token is not None
    path.write_text("# nobody\n")
    clock.now = 0.5
    assert source.check(SECRET).token is not None  # not looked at yet
    clock.now = 1.0
    verdict = source.check(SECRET)
    assert verdict.token is None and verdict.refusal == "invalid bearer token"


def test_reload_now_and_a_broken_file_refuses_everything(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"ci read {SECRET}\n")
    source = TokenSource(str(path), poll=3600.0, wall=lambda: NOW)
    path.write_text(f"ci read {SECRET}\nbad line here and more\n")
    source.reload()
    verdict = source.check(SECRET)
    assert verdict.token is None and "invalid" in verdict.refusal
    path.write_text(f"ci operate {SECRET}\n")
    source.reload()
    token = source.check(SECRET).token
    assert token is not None and token.role is Role.OPERATE


def test_a_bad_file_at_start_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("ci read\n")
    with pytest.raises(ConfigError, match="tokens:1"):
        TokenSource(str(path))
    with pytest.raises(ConfigError, match="cannot read api_tokens_file"):
        TokenSource(str(tmp_path / "missing"))


def test_expired_tokens_are_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    end = NOW + timedelta(hours=1)
    path.write_text(f"ci read {SECRET} expires={end.isoformat()}\n")
    wall = [NOW]
    source = TokenSource(str(path), wall=lambda: wall[0])
    assert source.check(SECRET).token is not None
    wall[0] = end
    verdict = source.check(SECRET)
    assert verdict.token is None
    assert verdict.refusal == f"token 'ci' expired at {end.isoformat()}"


def test_single_token_file_is_one_admin_token(tmp_path: Path) -> None:
    single = tmp_path / "api-token"
    single.write_text(f"{SECRET}\n")
    tokens = tmp_path / "tokens"
    tokens.write_text(f"ci read {SECRET}x\n")
    source = TokenSource(str(tokens), str(single))
    token = source.check(SECRET).token
    assert token is not None and (token.name, token.role) == (SINGLE_TOKEN_NAME, Role.ADMIN)
    tokens.write_text(f"token read {SECRET}x\n")
    with pytest.raises(ConfigError, match="rename it"):
        TokenSource(str(tokens), str(single))


def test_add_and_remove(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    secret = add_token(path, "ci", Role.OPERATE)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert secret not in path.read_text()
    (token,) = parse_tokens(path.read_text(), "t")
    assert token.digest == digest(secret) and token.role is Role.OPERATE
    with pytest.raises(ConfigError, match="already on line 1"):
        add_token(path, "ci", Role.READ)
    second = add_token(path, "bot", Role.READ)
    assert remove_token(path, "ci") is True
    assert remove_token(path, "ci") is False
    (left,) = parse_tokens(path.read_text(), "t")
    assert left.name == "bot" and left.digest == digest(second)
