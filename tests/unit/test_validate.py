"""``fleetctl validate`` over the unit-file corpus in tests/corpus (good/ and bad/).

tests/corpus/expected.txt holds one line per file: ``<file> OK`` or
``<file> <substring of the reason>``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fleetd.cli.main import app
from typer.testing import CliRunner

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
runner = CliRunner()


def expectations() -> dict[str, str | None]:
    """``relative path -> None`` (valid) or the expected reason substring."""
    expected: dict[str, str | None] = {}
    for line in (CORPUS / "expected.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        path, verdict = line.split(" ", 1)
        assert path not in expected, f"{path} listed twice"
        expected[path] = None if verdict == "OK" else verdict
    return expected


EXPECTED = expectations()


def check_line(rel: str, line: str) -> None:
    name, reason = Path(rel).name, EXPECTED[rel]
    if reason is None:
        assert line == f"OK {name}"
    else:
        assert line.startswith(f"{name}: "), line
        assert reason in line, f"{rel}: expected {reason!r} in {line!r}"


def test_corpus_is_complete() -> None:
    on_disk = {f"{d}/{f}" for d in ("good", "bad") for f in os.listdir(CORPUS / d)}
    assert on_disk == set(EXPECTED)
    assert len(on_disk) >= 40
    assert all((r is None) == p.startswith("good/") for p, r in EXPECTED.items())


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_each_file(rel: str) -> None:
    result = runner.invoke(app, ["validate", str(CORPUS / rel)])
    assert result.exit_code == (0 if EXPECTED[rel] is None else 1), result.output
    assert result.stderr == ""
    [line] = result.stdout.splitlines()
    check_line(rel, line)


def test_all_good_files_exit_zero() -> None:
    good = sorted(p for p, r in EXPECTED.items() if r is None)
    result = runner.invoke(app, ["validate", *(str(CORPUS / p) for p in good)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"OK {Path(p).name}" for p in good]


def test_one_bad_file_fails_the_run() -> None:
    files = [
        CORPUS / "good/hello.service",
        CORPUS / "bad/cpu.service",
        CORPUS / "good/web@.service",
    ]
    result = runner.invoke(app, ["validate", *map(str, files)])
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == "OK hello.service"
    assert result.stdout.splitlines()[1].startswith("cpu.service: CPUReservation=fast")
    assert result.stdout.splitlines()[2] == "OK web@.service"


def test_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path / "gone.service")])
    assert result.exit_code == 1
    assert result.stdout.startswith("gone.service: cannot read ")
    assert "No such file or directory" in result.stdout
    assert "Traceback" not in result.output


def test_unreadable_path(tmp_path: Path) -> None:
    directory = tmp_path / "dir.service"
    directory.mkdir()
    result = runner.invoke(app, ["validate", str(directory)])
    assert result.exit_code == 1
    assert result.stdout.startswith("dir.service: cannot read ")
    assert "Is a directory" in result.stdout


def test_no_files_is_a_usage_error() -> None:
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 2


def test_real_fleetctl_over_the_corpus() -> None:
    fleetctl = Path(sys.executable).parent / "fleetctl"
    files = sorted(EXPECTED)
    proc = subprocess.run(
        [str(fleetctl), "validate", *(str(CORPUS / f) for f in files)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert len(lines) == len(files)
    for rel, line in zip(files, lines, strict=True):
        check_line(rel, line)
