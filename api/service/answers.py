"""fleet's error answers read back into fleetd's exception tree (fleetctl, forwarding peers).

The API answers an error with the status ``fleetd.errors.http_status`` gives
it and fleet's body ``{"error": {"code": N, "message": "..."}}``.  A client
turns such an answer back into the type the API answered it for
(``fleetd.errors.error_for_status``), the cause being httpx's
``HTTPStatusError``, which holds the request and the response.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from fleetd.errors import FleetError, error_for_status


def error_message(response: httpx.Response) -> str:
    """The message of fleet's error body; else the body's text; else the status."""
    try:
        body = response.json()
        return str(body["error"]["message"])
    except (ValueError, KeyError, TypeError):
        text = response.text.strip()
        return text or f"HTTP {response.status_code}"


def raise_for(
    response: httpx.Response,
    error: Callable[[int, str], FleetError] = error_for_status,
) -> None:
    """Raise ``error(status, message)`` if ``response`` is an error answer (>= 400).

    A streamed response must have been read (``aread``) first."""
    if response.status_code < 400:
        return
    failure = error(response.status_code, error_message(response))
    try:
        response.raise_for_status()
    except httpx.HTTPStatusError as exc:
        raise failure from exc
    raise failure
