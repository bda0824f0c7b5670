"""The documentation names only what exists: files, code, links, fleetctl commands.

Docs go stale silently when code moves; these checks make a rename that
forgets the docs fail.  A code reference is written ``path::Name`` or
``path::Class.method`` inside backticks; a path is any backticked token that
starts with a top-level directory of the project.
"""

from __future__ import annotations

import ast
import re
import shlex
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The documents this project keeps true (vagrant/README.md has its own test).
DOCS = sorted(
    [
        ROOT / "README.md",
        ROOT / "ARCHITECTURE.md",
        ROOT / "api" / "README.md",
        ROOT / "cli" / "README.md",
        ROOT / "tests" / "README.md",
        ROOT / "benchmarks" / "README.md",
        *(ROOT / "docs").glob("*.md"),
    ]
)
TOP = ("fleetd/", "api/", "cli/", "tests/", "benchmarks/", "docs/", "examples/", "vagrant/", ".ci/")
CODE = ("fleetd", "api", "cli", "tests", "benchmarks")

_TICKED = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def _ids(doc: Path) -> list[str]:
    return [str(doc.relative_to(ROOT))]


def _ticked(doc: Path) -> list[str]:
    return _TICKED.findall(_FENCE.sub("", doc.read_text()))


@cache
def _names(path: Path) -> frozenset[str]:
    """Every module-level name and ``Class.attribute`` defined in a Python file."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def targets(node: ast.stmt) -> list[str]:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            return [node.name]
        if isinstance(node, ast.Assign):
            return [t.id for t in node.targets if isinstance(t, ast.Name)]
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            return [node.target.id]
        return []

    for node in tree.body:
        found.update(targets(node))
        if isinstance(node, ast.ClassDef):
            for inner in node.body:
                found.update(f"{node.name}.{name}" for name in targets(inner))
    return frozenset(found)


def _anchors(doc: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    anchors = set()
    for line in _FENCE.sub("", doc.read_text()).splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("doc", DOCS, ids=_ids)
def test_code_references_exist(doc: Path) -> None:
    missing = []
    for token in _ticked(doc):
        if "::" not in token or not token.startswith(TOP):
            continue
        path, _, name = token.partition("::")
        if not (ROOT / path).is_file():
            missing.append(f"{token}: no file {path}")
        elif name not in _names(ROOT / path):
            missing.append(f"{token}: {path} defines no {name}")
    assert missing == []


@pytest.mark.parametrize("doc", DOCS, ids=_ids)
def test_paths_exist(doc: Path) -> None:
    missing = []
    for token in _ticked(doc):
        path = token.split("::")[0].split(" ")[0]
        if not path.startswith(TOP) or any(c in path for c in "*<>{}[]$"):
            continue
        if not (ROOT / path).exists():
            missing.append(path)
    assert missing == []


@pytest.mark.parametrize("doc", DOCS, ids=_ids)
def test_links_resolve(doc: Path) -> None:
    broken = []
    for target in _LINK.findall(doc.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists() or (anchor and file.suffix == ".md" and anchor not in _anchors(file)):
            broken.append(target)
    assert broken == []


def test_no_citation_of_a_design_file_outside_the_repository() -> None:
    sources = [p for top in CODE for p in (ROOT / top).rglob("*.py") if p != Path(__file__)]
    cited = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in [*sources, *DOCS, ROOT / "vagrant" / "README.md"]
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "DESIGN.md" in line or "../shared" in line
    ]
    assert cited == []


def test_the_readme_is_a_front_door() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    first_block = _FENCE.search(text)
    assert first_block is not None and text.index(first_block.group()) < 200
    commands = [line.split("#")[0].strip() for line in first_block.group().splitlines()[1:-1]]
    assert commands == ["sudo .ci/demo", "sudo .ci/test"]
    for words in ("previous round", "this round", "found and fixed"):
        assert words not in text.lower()


# fleetctl's global options that take a value (as a separate word unless written --opt=V).
_VALUED = {"--endpoint", "--token", "--driver", "--etcd-endpoints", "--etcd-key-prefix",
           "--request-timeout", "--output", "-o"}  # fmt: skip


def fleetctl_commands(code: str) -> set[str]:
    """The command word of every ``fleetctl ...`` written in ``code``."""
    found = set()
    for line in code.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:  # an unbalanced quote in prose-like code: read it plainly
            words = line.split()
        for start in (i for i, w in enumerate(words) if w.endswith("fleetctl")):
            rest = iter(words[start + 1 :])
            for word in rest:
                if word in _VALUED:
                    next(rest, None)
                elif not word.startswith("-"):
                    if re.fullmatch(r"[a-z][a-z-]+", word):
                        found.add(word)
                    break
    return found


@pytest.mark.parametrize("doc", [ROOT / "README.md", ROOT / "cli" / "README.md"], ids=_ids)
def test_fleetctl_commands_named_in_the_docs_exist(doc: Path) -> None:
    from typer.main import get_command

    from fleetd.cli.main import app

    commands = set(get_command(app).commands)  # type: ignore[attr-defined]
    text = doc.read_text()
    named = fleetctl_commands("\n".join([*_FENCE.findall(text), *_ticked(doc)]))
    assert named, "no fleetctl command found"
    assert named <= commands, named - commands
