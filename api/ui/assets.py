"""The dashboard's files: shipped inside the package (``api/ui/static/``), served from memory.

Nothing is built at install time and nothing comes from another site: the
page is plain HTML, CSS and JavaScript modules, read once from the package
and kept with their gzip form and an ETag.  ``first_page`` names what a
browser fetches to show the first page (the index, what it links and the
modules they import), so its weight can be measured and kept small.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from importlib.resources.abc import Traversable

INDEX = "index.html"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
# The page runs only its own files: no inline script or style, no other origin, no frames.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_REFERENCE = re.compile(r"""(?:href|src)="([^"#?:]+)\"""")
_IMPORT = re.compile(r"""(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*["'](\./[^"']+)["']""")
_BARE_IMPORT = re.compile(r"""(?:^|\n)\s*import\s*["'](\./[^"']+)["']""")


@dataclass(frozen=True, slots=True)
class Asset:
    name: str
    body: bytes
    gzipped: bytes
    etag: str
    content_type: str


def _files(folder: Traversable, prefix: str = "") -> Iterator[tuple[str, bytes]]:
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.startswith(".") or entry.name == "__pycache__":
            continue
        if entry.is_dir():
            yield from _files(entry, f"{prefix}{entry.name}/")
        else:
            yield f"{prefix}{entry.name}", entry.read_bytes()


def make_asset(name: str, body: bytes) -> Asset:
    suffix = name[name.rfind(".") :] if "." in name else ""
    content_type = CONTENT_TYPES.get(suffix, "application/octet-stream")
    etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
    # mtime=0: the same bytes every time, so the compressed size is a stable measure.
    return Asset(name, body, gzip.compress(body, compresslevel=9, mtime=0), etag, content_type)


@lru_cache(maxsize=1)
def catalogue() -> dict[str, Asset]:
    """Every file of the page by its path under ``/ui/`` (read once)."""
    folder = resources.files("fleetd.api.ui").joinpath("static")
    return {name: make_asset(name, body) for name, body in _files(folder)}


def references(asset: Asset) -> list[str]:
    """The assets ``asset`` makes the browser fetch at once: links and scripts of the
    index, static imports of a module (paths relative to ``/ui/``)."""
    text = asset.body.decode("utf-8")
    if asset.name.endswith(".html"):
        return [ref.removeprefix("./") for ref in _REFERENCE.findall(text)]
    if asset.name.endswith(".js"):
        base = asset.name.rpartition("/")[0]
        found = _IMPORT.findall(text) + _BARE_IMPORT.findall(text)
        return [f"{base}/{ref[2:]}" if base else ref[2:] for ref in found]
    return []


def first_page(assets: dict[str, Asset] | None = None) -> list[str]:
    """The index and everything it pulls in, in the order first seen."""
    assets = catalogue() if assets is None else assets
    seen: list[str] = []
    todo = [INDEX]
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen.append(name)
        if name in assets:
            todo.extend(references(assets[name]))
    return seen


def first_page_weight(assets: dict[str, Asset] | None = None) -> tuple[int, int]:
    """(bytes, gzip bytes) of the first page's files."""
    assets = catalogue() if assets is None else assets
    names = first_page(assets)
    return (
        sum(len(assets[n].body) for n in names if n in assets),
        sum(len(assets[n].gzipped) for n in names if n in assets),
    )
