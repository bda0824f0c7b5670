"""The dashboard's browser session: the token in a cookie, and CSRF-safe writes (pure).

On TCP the page asks for a token once and sends it to ``POST /ui/login``; the
answer keeps it in ``COOKIE``: ``HttpOnly`` (no script reads it),
``SameSite=Strict`` (no other site's page makes the browser send it),
``Path=/ui`` (sent to the dashboard's paths only, never to ``/fleet/v1``) and
``Secure`` over HTTPS.  The token never appears in a URL.

The page calls the API under ``/ui/api`` (api/ui/gate.py turns the cookie
into the request's bearer token there).  A write must also carry
``CSRF_HEADER`` with the session's CSRF token, which the page reads from
``GET /ui/session`` (a page of another origin cannot read that answer, and
cannot send a custom header without a CORS preflight that fleetd never
grants), and it must not come from another origin: an ``Origin`` header must
name this listener itself and ``Sec-Fetch-Site``, when the browser sends it,
must be ``same-origin``.  ``SameSite`` alone would not do: pages on another
port of the same host are the same *site*.

The CSRF token of a token is an HMAC keyed with the token itself, so every
fleetd derives the same one and a restart does not change it; on the unix
socket (no token) it is keyed with a secret of this process.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable

COOKIE = "fleetd_ui"
CSRF_HEADER = "x-fleetd-csrf"
UI_PATH = "/ui"
API_PREFIX = "/ui/api"
MAX_AGE = 7 * 24 * 3600
"""How long the browser keeps the token: a week (the token's own expiry still applies)."""
_CSRF_LABEL = b"fleetd dashboard csrf v1"
MAX_COOKIE_TOKEN = 1024

Headers = Iterable[tuple[bytes, bytes]]


def encode_token(token: str) -> str:
    """The cookie value holding ``token`` (URL-safe base64: no ``;`` ``,`` or quotes)."""
    return base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")


def decode_token(value: str) -> str | None:
    """The token in a cookie value, or None if it is not one this module wrote."""
    if not value or len(value) > MAX_COOKIE_TOKEN:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        token = raw.decode("ascii")
    except (binascii.Error, ValueError):
        return None
    return token if token and token.isprintable() else None


def cookie_value(headers: Headers, name: str = COOKIE) -> str | None:
    """The value of cookie ``name`` in the request's ``Cookie`` headers (the first one)."""
    for key, value in headers:
        if key != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            key_text, sep, found = part.strip().partition("=")
            if sep and key_text == name:
                return found.strip().strip('"')
    return None


def set_cookie(token: str, secure: bool) -> str:
    """The ``Set-Cookie`` value that keeps ``token`` in the browser."""
    attributes = [
        f"{COOKIE}={encode_token(token)}",
        f"Path={UI_PATH}",
        f"Max-Age={MAX_AGE}",
        "HttpOnly",
        "SameSite=Strict",
    ]
    if secure:
        attributes.append("Secure")
    return "; ".join(attributes)


def clear_cookie(secure: bool) -> str:
    """The ``Set-Cookie`` value that makes the browser forget the token (sign-out)."""
    attributes = [f"{COOKIE}=", f"Path={UI_PATH}", "Max-Age=0", "HttpOnly", "SameSite=Strict"]
    if secure:
        attributes.append("Secure")
    return "; ".join(attributes)


def csrf_token(key: bytes) -> str:
    """The CSRF token of a session keyed with ``key`` (the API token, or a process secret)."""
    digest = hmac.new(key, _CSRF_LABEL, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def header(headers: Headers, name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def cross_origin(headers: Headers, scheme: str) -> str | None:
    """Why a request seems to come from another origin than this listener, or None.

    ``Origin`` (browsers send it with every write) must be this listener's own
    scheme, host and port, as the ``Host`` header names them; ``Sec-Fetch-Site``
    (sent by current browsers) must be ``same-origin``.  A request with neither
    (not from a browser) passes: the CSRF header is what it must still show.
    """
    headers = list(headers)
    site = header(headers, b"sec-fetch-site")
    if site is not None and site.strip().lower() not in ("same-origin", "none"):
        return f"a {site.strip()} request (Sec-Fetch-Site) to the dashboard is refused"
    origin = header(headers, b"origin")
    if origin is None:
        return None
    host = header(headers, b"host") or ""
    if origin.strip().lower() != f"{scheme}://{host}".lower():
        return f"a request from origin {origin.strip()!r} to the dashboard is refused"
    return None


def csrf_refusal(headers: Headers, scheme: str, expected: str) -> str | None:
    """Why a write through the dashboard's API is refused as cross-site, or None."""
    headers = list(headers)
    why = cross_origin(headers, scheme)
    if why is not None:
        return why
    given = header(headers, CSRF_HEADER.encode())
    if given is None:
        return f"a write through the dashboard needs the {CSRF_HEADER} header"
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        return f"the {CSRF_HEADER} header does not match the session"
    return None
