"""pyproject.toml lists every package, so a plain (non-editable) install is whole.

setuptools is given the packages by name; a new subpackage left out of the list
is missing from the wheel (``pip install .``, the Vagrant VMs, real hosts),
while the editable install of a development checkout still finds it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_package_directory_is_listed() -> None:
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    found = set()
    for name, directory in setuptools["package-dir"].items():
        root = REPO / directory
        for init in root.rglob("__init__.py"):
            relative = init.parent.relative_to(root).parts
            found.add(".".join((name, *relative)))
    assert found <= listed, sorted(found - listed)
