"""Debian's Firefox ESR for the dashboard's tests, driven over WebDriver BiDi.

Debian has no geckodriver package, and nothing is downloaded: Firefox is started
headless with ``--remote-debugging-port 0`` (its own WebDriver BiDi endpoint; it
prints the address it listens on) and this speaks BiDi to it over one websocket
(``websocket-client``): ``session.new``, ``browsingContext.navigate`` /
``setViewport`` / ``captureScreenshot``, ``script.evaluate``, ``input.performActions``
and the ``log.entryAdded`` events.  Each browser gets a fresh profile in a
temporary directory, removed when it quits.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import websocket

from fleetd.testing import polling

FIREFOX = Path("/usr/bin/firefox-esr")
DESKTOP = (1280, 800)
PHONE = (390, 844)
START_LIMIT = 60.0
LISTENING = re.compile(r"WebDriver BiDi listening on (ws://[0-9.:]+)")
# Quiet prefs: no first-run pages, updates, telemetry or lookups of anything outside.
PREFS = {
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.page": 0,
    "browser.startup.homepage": "about:blank",
    "app.update.auto": False,
    "app.update.disabledForTesting": True,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "extensions.update.enabled": False,
}
KEYS = {"\n": "\ue007", "\t": "\ue004"}


class BidiError(RuntimeError):
    """A BiDi command failed: its error and message, as Firefox answered."""


def missing() -> str | None:
    """Why Firefox cannot run here (the package is not installed), or None."""
    if not os.access(FIREFOX, os.X_OK):
        return f"{FIREFOX} is missing (Debian package firefox-esr; .ci/setup installs it)"
    return None


class Firefox:
    """One headless Firefox and its BiDi session on its one tab (``context``)."""

    def __init__(self, ws: websocket.WebSocket) -> None:
        self.ws = ws
        self.seq = 0
        self.context = ""
        self.logs: list[dict[str, Any]] = []

    def command(self, method: str, params: dict[str, Any], timeout: float = 60) -> Any:
        """Send one command; answers its result (events meanwhile are kept)."""
        self.seq += 1
        ident = self.seq
        self.ws.settimeout(timeout)
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("type") == "event":
                if message.get("method") == "log.entryAdded":
                    self.logs.append(message["params"])
                continue
            if message.get("id") != ident:
                continue
            if message.get("type") == "error":
                raise BidiError(f"{method}: {message.get('error')}: {message.get('message')}")
            return message.get("result", {})

    def start(self, size: tuple[int, int]) -> None:
        self.command(
            "session.new", {"capabilities": {"alwaysMatch": {"acceptInsecureCerts": True}}}
        )
        self.command("session.subscribe", {"events": ["log.entryAdded"]})
        tree = self.command("browsingContext.getTree", {})
        self.context = tree["contexts"][0]["context"]
        self.set_size(size)

    def set_size(self, size: tuple[int, int]) -> None:
        viewport = {"width": size[0], "height": size[1]}
        self.command("browsingContext.setViewport", {"context": self.context, "viewport": viewport})

    def navigate(self, url: str) -> None:
        self.command(
            "browsingContext.navigate", {"context": self.context, "url": url, "wait": "complete"}
        )

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited if a promise), as
        JSON would carry it."""
        wrapped = f"(async () => JSON.stringify(await ({expression})))()"
        result = self.command(
            "script.evaluate",
            {"expression": wrapped, "target": {"context": self.context}, "awaitPromise": True},
        )
        if result.get("type") == "exception":
            details = result.get("exceptionDetails", {})
            raise BidiError(f"script.evaluate: {details.get('text', details)}")
        value = result["result"]
        return json.loads(value["value"]) if value.get("type") == "string" else None

    def element(self, selector: str) -> dict[str, str]:
        """A reference to the first element matching ``selector`` (BidiError if none)."""
        result = self.command(
            "script.evaluate",
            {
                "expression": f"document.querySelector({json.dumps(selector)})",
                "target": {"context": self.context},
                "awaitPromise": False,
            },
        )
        value = result.get("result", {})
        if value.get("type") != "node":
            raise BidiError(f"no element matches {selector}")
        return {"sharedId": value["sharedId"]}

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element."""
        origin = {"type": "element", "element": self.element(selector)}
        mouse = [
            {"type": "pointerMove", "x": 0, "y": 0, "origin": origin},
            {"type": "pointerDown", "button": 0},
            {"type": "pointerUp", "button": 0},
        ]
        actions = [{"type": "pointer", "id": "mouse", "actions": mouse}]
        self.command("input.performActions", {"context": self.context, "actions": actions})

    def type_text(self, text: str) -> None:
        """Key presses into the focused element ("\\n" is Enter, "\\t" Tab)."""
        keys: list[dict[str, str]] = []
        for char in text:
            value = KEYS.get(char, char)
            keys += [{"type": "keyDown", "value": value}, {"type": "keyUp", "value": value}]
        actions = [{"type": "key", "id": "keyboard", "actions": keys}]
        self.command("input.performActions", {"context": self.context, "actions": actions})

    def console_errors(self) -> list[str]:
        """The page's console and JavaScript errors since the last call."""
        self.evaluate("0")  # reads the events that came meanwhile
        errors = [str(e.get("text", "")) for e in self.logs if e.get("level") == "error"]
        self.logs.clear()
        return errors

    def screenshot(self, folder: Path, name: str) -> Path:
        """Save the whole page (not only the viewport) as ``folder/name.png``."""
        folder.mkdir(parents=True, exist_ok=True)
        result = self.command(
            "browsingContext.captureScreenshot", {"context": self.context, "origin": "document"}
        )
        path = folder / f"{name}.png"
        path.write_bytes(base64.b64decode(result["data"]))
        return path


def _listen_address(
    proc: subprocess.Popen[str], lines: collections.deque[str]
) -> tuple[str, threading.Thread]:
    """Read Firefox's stderr until it names its BiDi address; keep draining it after
    (a full pipe would stop Firefox)."""
    assert proc.stderr is not None
    stream = proc.stderr
    found: list[str] = []
    ready = threading.Event()

    def drain() -> None:
        for line in iter(stream.readline, ""):
            lines.append(line.rstrip())
            match = LISTENING.search(line)
            if match and not ready.is_set():
                found.append(match.group(1))
                ready.set()
        ready.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    if not ready.wait(START_LIMIT) or not found:
        raise RuntimeError(f"Firefox did not open its BiDi port: {list(lines)[-10:]}")
    return found[0], reader


@contextlib.contextmanager
def firefox(size: tuple[int, int] = DESKTOP) -> Iterator[Firefox]:
    """A headless Firefox with a fresh profile and a BiDi session, quit (and its profile
    removed) at the end."""
    why = missing()
    if why is not None:
        raise RuntimeError(why)
    profile = tempfile.mkdtemp(prefix="fleetd-firefox-")
    prefs = "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in PREFS.items())
    Path(profile, "user.js").write_text(prefs)
    lines: collections.deque[str] = collections.deque(maxlen=200)
    proc = subprocess.Popen(
        [str(FIREFOX), "--headless", "--no-remote", "--profile", profile,
         "--remote-debugging-port", "0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "MOZ_CRASHREPORTER_DISABLE": "1"},
    )  # fmt: skip
    ws: websocket.WebSocket | None = None
    reader: threading.Thread | None = None
    try:
        address, reader = _listen_address(proc, lines)
        # Firefox refuses a handshake with an Origin header (only local clients drive it).
        ws = websocket.create_connection(f"{address}/session", timeout=30, suppress_origin=True)
        browser = Firefox(ws)
        browser.start(size)
        yield browser
        with contextlib.suppress(Exception):
            browser.command("session.end", {}, timeout=10)
    finally:
        if ws is not None:
            with contextlib.suppress(Exception):
                ws.close()
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)
        if reader is not None:
            reader.join(15)  # at the end of Firefox's stderr
        if proc.stderr is not None:
            proc.stderr.close()
        shutil.rmtree(profile, ignore_errors=True)


def wait_until(check: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``check`` until it answers something true; AssertionError naming ``what``
    at the deadline (a BiDi error while polling counts as not yet)."""
    return polling.wait_until(check, timeout, what, transient=(BidiError,), interval=interval)
