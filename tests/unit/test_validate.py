"""``fleetctl validate`` over the unit-file corpus in tests/corpus (good/, warn/ and bad/).

tests/corpus/expected.txt holds one line per file: ``good/<file> OK``,
``bad/<file> <substring of the reason>`` (refused: exit 1) or
``warn/<file> <substring of a warning>`` (accepted, the warning on stderr:
what fleet v1.0 accepted and fleetd suspects is a mistake).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleetd.cli.main import app

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


def accepted(rel: str) -> bool:
    return not rel.startswith("bad/")


def check_line(rel: str, line: str) -> None:
    name, reason = Path(rel).name, EXPECTED[rel]
    if accepted(rel):
        assert line == f"OK {name}"
    else:
        assert line.startswith(f"{name}: "), line
        assert reason is not None and reason in line, f"{rel}: expected {reason!r} in {line!r}"


def check_warnings(rel: str, stderr: str) -> None:
    name, warning = Path(rel).name, EXPECTED[rel]
    lines = stderr.splitlines()
    if not rel.startswith("warn/"):
        assert lines == [], lines
        return
    assert lines and all(line.startswith(f"WARNING: {name}: ") for line in lines), lines
    assert warning is not None and any(warning in line for line in lines), (warning, lines)


def test_corpus_is_complete() -> None:
    dirs = ("good", "warn", "bad")
    on_disk = {f"{d}/{f}" for d in dirs for f in os.listdir(CORPUS / d)}
    assert on_disk == set(EXPECTED)
    assert len(on_disk) >= 95
    assert all((r is None) == p.startswith("good/") for p, r in EXPECTED.items())


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_each_file(rel: str) -> None:
    result = runner.invoke(app, ["validate", str(CORPUS / rel)])
    assert result.exit_code == (0 if accepted(rel) else 1), result.output
    check_warnings(rel, result.stderr)
    [line] = result.stdout.splitlines()
    check_line(rel, line)


def test_all_good_and_warned_files_exit_zero() -> None:
    files = sorted(p for p in EXPECTED if accepted(p))
    result = runner.invoke(app, ["validate", *(str(CORPUS / p) for p in files)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"OK {Path(p).name}" for p in files]
    warned = {line.split(": ", 2)[1] for line in result.stderr.splitlines()}
    assert warned == {Path(p).name for p in files if p.startswith("warn/")}


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
    lines = proc.stdout.splitlines()
    assert len(lines) == len(files)
    for rel, line in zip(files, lines, strict=True):
        check_line(rel, line)
        name = Path(rel).name
        mine = [w for w in proc.stderr.splitlines(True) if w.startswith(f"WARNING: {name}: ")]
        check_warnings(rel, "".join(mine))


SYSTEMD_TYPES = (".mount", ".automount", ".swap", ".slice", ".scope", ".device")
SYSTEMD_CASES = sorted(
    rel for rel in EXPECTED if rel.endswith(SYSTEMD_TYPES) and not rel.startswith("warn/")
)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize("rel", SYSTEMD_CASES)
def test_systemd_agrees(rel: str, tmp_path: Path) -> None:
    """The refusals of systemd's rules for these types are systemd's own: ``systemd-analyze
    verify`` refuses the same files, and loads the accepted ones."""
    assert len(SYSTEMD_CASES) >= 20
    name = Path(rel).name
    (tmp_path / name).write_bytes((CORPUS / rel).read_bytes())
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "--recursive-errors=no", "--", f"./{name}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "err"},
    )
    if rel.startswith("bad/"):
        assert proc.returncode != 0, f"systemd loads {rel}:\n{proc.stderr}"
    else:
        assert proc.returncode == 0, f"systemd refuses {rel}:\n{proc.stderr}"
