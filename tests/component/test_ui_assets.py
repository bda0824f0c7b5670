"""The dashboard's files (api/ui/assets.py, api/routes/ui.py): shipped in the package,
served with their type, an ETag, gzip and a strict Content-Security-Policy, nothing from
another site, and a first page well under 300 KB."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import httpx
import pytest
from apikit import client_for, make_app, new_store

from fleetd.api.ui import assets

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "api" / "ui" / "static"
FIRST_PAGE_LIMIT = 300 * 1024


@pytest.fixture
async def client() -> httpx.AsyncClient:
    return client_for(make_app(new_store()))


def test_every_file_of_the_page_ships_in_the_package() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    tool = config["tool"]["setuptools"]
    assert "fleetd.api.ui" in tool["packages"]
    patterns = tool["package-data"]["fleetd.api.ui"]
    files = sorted(
        p.relative_to(STATIC.parent).as_posix() for p in STATIC.rglob("*") if p.is_file()
    )
    assert files, "no file in api/ui/static"
    for name in files:
        assert any(fnmatch.fnmatch(name, pattern) and name.count("/") == pattern.count("/")
                   for pattern in patterns), f"{name} is not package data"  # fmt: skip
    assert sorted(assets.catalogue()) == sorted(p[len("static/") :] for p in files)


async def test_files_are_served_with_type_etag_gzip_and_policy(client: httpx.AsyncClient) -> None:
    async with client:
        for name, asset in assets.catalogue().items():
            response = await client.get(f"/ui/{name}", headers={"Accept-Encoding": "identity"})
            assert response.status_code == 200, name
            assert response.content == asset.body
            assert response.headers["content-type"] == asset.content_type
            assert response.headers["etag"] == asset.etag
            assert response.headers["cache-control"] == "no-cache"
            policy = response.headers["content-security-policy"]
            assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
            assert response.headers["x-content-type-options"] == "nosniff"
            again = await client.get(f"/ui/{name}", headers={"If-None-Match": asset.etag})
            assert again.status_code == 304 and again.content == b""
        index = await client.get("/ui/", headers={"Accept-Encoding": "gzip"})
        assert index.headers["content-encoding"] == "gzip"
        assert index.content == assets.catalogue()["index.html"].body  # httpx decodes
        assert (await client.get("/ui")).status_code == 308
        assert (await client.get("/ui")).headers["location"] == "/ui/"
        missing = await client.get("/ui/nothing.js")
        assert missing.status_code == 404 and "nothing.js" in missing.json()["error"]["message"]


def test_the_first_page_is_small_and_complete() -> None:
    catalogue = assets.catalogue()
    names = assets.first_page()
    missing = [n for n in names if n not in catalogue]
    assert not missing, f"referenced but not shipped: {missing}"
    raw, gzipped = assets.first_page_weight()
    print(f"\nfirst page: {len(names)} files, {raw} bytes, {gzipped} bytes gzip")
    assert gzipped < FIRST_PAGE_LIMIT
    assert raw < FIRST_PAGE_LIMIT  # even a client without gzip
    modules = {n for n in names if n.endswith(".js")}
    index = catalogue["index.html"].body.decode()
    preloaded = set(re.findall(r'<link rel="modulepreload" href="([^"]+)">', index))
    # Every module is asked for at once, not one import after another.
    assert preloaded == modules - {"main.js"}


def test_the_page_loads_nothing_from_elsewhere_and_runs_nothing_inline() -> None:
    for name, asset in assets.catalogue().items():
        if not name.endswith((".html", ".js", ".css")):
            continue
        text = asset.body.decode()
        assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", text), name
        assert not re.search(r"""from\s+["'](?:https?:)?//|import\(\s*["']http""", text), name
        assert "@import" not in text and "url(http" not in text, name
        assert ".innerHTML" not in text and "insertAdjacentHTML" not in text, name
        assert "eval(" not in text and "new Function" not in text, name
    index = assets.catalogue()["index.html"].body.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", index), "inline script"
    assert "<style" not in index and " style=" not in index, "inline style"
    assert not re.search(r"\son[a-z]+\s*=", index), "inline event handler"


def test_the_token_is_never_put_in_a_url_or_in_storage() -> None:
    text = "\n".join(a.body.decode() for n, a in assets.catalogue().items() if n.endswith(".js"))
    assert "localStorage" not in text and "sessionStorage" not in text
    assert "document.cookie" not in text
    assert not re.search(r"[?&]token=", text)


def _luminance(hex_colour: str) -> float:
    value = hex_colour.lstrip("#")
    channels = [int(value[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


# Text colour on the background it is drawn on, as app.css pairs them.
TEXT_PAIRS = [
    ("--fg", "--bg"),
    ("--fg", "--panel"),
    ("--muted", "--bg"),
    ("--muted", "--panel"),
    ("--accent", "--bg"),
    ("--ok", "--ok-bg"),
    ("--warn", "--warn-bg"),
    ("--bad", "--bad-bg"),
    ("--bad", "--bg"),
    ("--ok", "--bg"),
    ("--fg", "--accent-bg"),
    ("--fg", "--warn-bg"),
]


def test_text_colours_have_aa_contrast() -> None:
    css = assets.catalogue()["app.css"].body.decode()
    colours = dict(re.findall(r"(--[a-z-]+):\s*(#[0-9a-f]{6});", css))
    for fg, bg in TEXT_PAIRS:
        ratio = contrast(colours[fg], colours[bg])
        assert ratio >= 4.5, f"{fg} on {bg}: {ratio:.2f}:1"
    # White text on the accent (the current page's tab, primary buttons).
    assert contrast("#ffffff", colours["--accent"]) >= 4.5
    # Disabled buttons stay legible.
    assert contrast("#6e7781", "#eaeef2") >= 3.0
