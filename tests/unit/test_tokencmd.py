"""``fleetd token``: the secret is printed once (stdout), the file holds only its hash."""

from __future__ import annotations

import os
from pathlib import Path

from typer.testing import CliRunner

from fleetd.tokencmd import app
from fleetd.tokens import digest, parse_tokens

runner = CliRunner()


def test_add_list_hash_remove(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    added = runner.invoke(app, ["add", str(path), "ci", "operate", "--expires", "2030-01-01"])
    assert added.exit_code == 0, added.output
    secret = added.stdout.strip()
    assert len(secret) >= 40 and secret not in path.read_text()
    assert os.stat(path).st_mode & 0o777 == 0o600
    (token,) = parse_tokens(path.read_text(), "t")
    assert token.digest == digest(secret)
    listed = runner.invoke(app, ["list", str(path)])
    assert "ci" in listed.stdout and "operate" in listed.stdout and "2030-01-01" in listed.stdout
    assert secret not in listed.stdout and token.digest not in listed.stdout
    hashed = runner.invoke(app, ["hash"], input=secret + "\n")
    assert hashed.stdout.strip() == f"sha256:{token.digest}"
    assert runner.invoke(app, ["remove", str(path), "ci"]).exit_code == 0
    assert parse_tokens(path.read_text(), "t") == ()


def test_refusals_change_nothing(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    assert runner.invoke(app, ["add", str(path), "ci", "read"]).exit_code == 0
    before = path.read_text()
    for args in (["add", str(path), "ci", "admin"], ["add", str(path), "x", "root"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1 and result.stdout == ""
    assert "unknown role 'root'" in runner.invoke(app, ["add", str(path), "x", "root"]).stderr
    assert runner.invoke(app, ["remove", str(path), "nobody"]).exit_code == 1
    assert path.read_text() == before
