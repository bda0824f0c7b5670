"""A real browser for the dashboard's tests and benchmark: Debian's chromium, driven by
its chromedriver through Selenium.

Nothing is downloaded: the browser and its driver are the Debian packages
``chromium`` and ``chromium-driver`` (installed by ``.ci/setup``), named by path,
and Selenium Manager is kept offline.  Each browser gets a fresh profile in a
temporary directory, removed when it quits, and runs headless without
background networking, component updates or sync.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service

from fleetd.testing import polling

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DESKTOP = (1280, 800)
PHONE = (390, 844)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--disable-default-apps",
    "--disable-extensions",
)
T = TypeVar("T")


def missing() -> str | None:
    """Why no browser can run here (the packages are not installed), or None."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} is missing (Debian package {package}; .ci/setup installs it)"
    return None


def spki_pin(cert_pem: Path) -> str:
    """The flag that makes Chromium accept exactly this certificate's key (a sandbox's
    machine certificate, signed by a CA the browser does not know): base64 of the
    SHA-256 of its SubjectPublicKeyInfo."""
    cert = x509.load_pem_x509_certificate(cert_pem.read_bytes())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pin = base64.b64encode(hashlib.sha256(spki).digest()).decode()
    return f"--ignore-certificate-errors-spki-list={pin}"


@contextmanager
def chromium(
    size: tuple[int, int] = DESKTOP, flags: Sequence[str] = ()
) -> Iterator[webdriver.Chrome]:
    """A headless Chromium with a fresh profile, quit (and its profile removed) at the end;
    ``flags`` are added to the usual ones."""
    why = missing()
    if why is not None:
        raise RuntimeError(why)
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never fetch a driver
    # At DEBUG it logs each command's body: the token a test types into the sign-in form.
    logging.getLogger("selenium.webdriver.remote.remote_connection").setLevel(logging.INFO)
    profile = tempfile.mkdtemp(prefix="fleetd-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={size[0]},{size[1]}")
    for flag in flags:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.set_window_size(*size)
        yield driver
    finally:
        try:
            driver.quit()
        finally:
            shutil.rmtree(profile, ignore_errors=True)


def wait_until(
    check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05
) -> T:
    """Poll ``check`` until it answers something true; AssertionError naming ``what``
    at the deadline (a browser exception while polling counts as not yet)."""
    return polling.wait_until(
        check, timeout, what, transient=(WebDriverException,), interval=interval
    )


def console_errors(driver: webdriver.Chrome) -> list[str]:
    """The page's console messages of level SEVERE since the last call."""
    entries: list[dict[str, Any]] = cast(Any, driver).get_log("browser")
    return [str(e.get("message", "")) for e in entries if e.get("level") == "SEVERE"]


def screenshot(driver: webdriver.Chrome, folder: Path, name: str) -> Path:
    """Save the whole page (not only the window) as ``folder/name.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    size = driver.get_window_size()
    width, height = int(size["width"]), int(size["height"])
    full = driver.execute_script(
        "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)"
    )
    driver.set_window_size(width, max(height, min(int(full) + 120, 6000)))
    try:
        driver.save_screenshot(str(path))
    finally:
        driver.set_window_size(width, height)
    return path
