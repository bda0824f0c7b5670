"""Maintenance on the dashboard's cluster page, in Debian's headless Chromium, against the
real listener on loopback over a memory registry (no engine: the test writes the
maintenance record's steps as the leader would, so each phase is seen for sure).

The page shows a maintenance started through the API, each machine's phase and detail
on its card as the record moves (pending, draining, acting, returning, done, failed),
the panel's progress and failure, a reboot request waiting, all without a reload;
an operator cancels it from the page after confirming (the record names them), and a
read-only token's Cancel button is disabled.  Screenshots: ``build/screenshots/
maintenance-*.png``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from uikit import MACHINES, SHOTS, seed

from fleetd.maintenance.record import JobPhase, Maintenance, Phase
from fleetd.maintenance.store import MaintenanceStore
from fleetd.testing import browser
from fleetd.testing.uiserver import SECRETS, Served, served

pytestmark = pytest.mark.skipif(browser.missing() is not None, reason=str(browser.missing()))
EXPECTED = ("/ui/session",)  # a fresh page's first look for a session (401)
M1, M2, M3 = MACHINES["m1"], MACHINES["m2"], MACHINES["m3"]


@pytest.fixture
def server() -> Iterator[Served]:
    with served() as found:
        found.run(seed(found.store))
        yield found


def api(server: Served, role: str = "admin") -> httpx.Client:
    auth = {"Authorization": f"Bearer {SECRETS[role]}"}
    return httpx.Client(base_url=server.base, headers=auth, timeout=30)


def sign_in(driver: WebDriver, server: Served, role: str) -> None:
    driver.get(f"{server.base}/ui/")
    field = browser.wait_until(lambda: driver.find_elements(By.ID, "token"), 30, "sign-in form")
    field[0].send_keys(SECRETS[role] + "\n")
    browser.wait_until(
        lambda: len(driver.find_elements(By.CSS_SELECTOR, "article.machine")) == 3,
        30,
        "the cluster page",
    )


def step(server: Served, **jobs: tuple[JobPhase, str]) -> None:
    """Write the record's next step as the leader would: these machines' phases."""

    async def write() -> None:
        records = MaintenanceStore(server.store)
        found = await records.get()
        assert found is not None
        record, revision = found
        now = time.time()
        new = tuple(
            replace(j, phase=jobs[j.machine][0], detail=jobs[j.machine][1], since=now)
            if j.machine in jobs
            else j
            for j in record.jobs
        )
        await records.replace(replace(record, jobs=new), revision)

    server.run(write())


def finish(server: Served, phase: Phase, failure: str = "") -> None:
    async def write() -> None:
        records = MaintenanceStore(server.store)
        found = await records.get()
        assert found is not None
        record, revision = found
        await records.replace(
            replace(record, phase=phase, failure=failure, finished=time.time()), revision
        )

    server.run(write())


def record(server: Served) -> Maintenance:
    found = server.run(MaintenanceStore(server.store).get())
    assert found is not None
    return found[0]


def phase_on_card(driver: WebDriver, machine: str) -> str | None:
    for card in driver.find_elements(By.CSS_SELECTOR, "article.machine"):
        if card.find_element(By.TAG_NAME, "h3").text == machine:
            found = card.find_elements(By.CSS_SELECTOR, "p.maint[data-maintenance-phase]")
            return found[0].get_attribute("data-maintenance-phase") if found else ""
    return None


def shows(driver: WebDriver, machine: str, phase: str, detail: str = "") -> Any:
    def check() -> bool:
        if phase_on_card(driver, machine) != phase:
            return False
        return not detail or any(
            detail in p.text for p in driver.find_elements(By.CSS_SELECTOR, "p.maint")
        )

    return browser.wait_until(check, 10, f"{machine} {phase} on its card")


def panel(driver: WebDriver) -> str:
    found = driver.find_elements(By.ID, "maintenance")
    return found[0].text if found else ""


def cancel_button(driver: WebDriver) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, 'button[data-action="cancelMaintenance"]')


def test_a_maintenance_shows_live_and_an_operator_cancels_it(server: Served) -> None:
    with browser.chromium() as driver:
        sign_in(driver, server, "operate")
        assert driver.find_elements(By.ID, "maintenance") == []  # none ever: no panel
        request = {"machines": [M1, M2, M3], "command": ["/bin/true"]}
        with api(server) as client:
            assert client.post("/fleet/v1/maintenance", json=request).status_code == 201
        browser.wait_until(lambda: "command /bin/true" in panel(driver), 10, "the panel")
        browser.wait_until(
            lambda: (
                "started by admin" in panel(driver)
                and "0 of 3 machines done (3 pending)" in panel(driver)
            ),
            10,
            "who started it and the progress",
        )
        for machine in ("m1", "m2", "m3"):
            shows(driver, machine, "pending")
        step(server, **{M1: (JobPhase.DRAINING, "2 units still on it")})
        shows(driver, "m1", "draining", "2 units still on it")
        step(server, **{M1: (JobPhase.ACTING, "running /bin/true")})
        shows(driver, "m1", "acting", "running /bin/true")
        browser.screenshot(driver, SHOTS, "maintenance-running")
        step(server, **{M1: (JobPhase.RETURNING, "units coming back")})
        shows(driver, "m1", "returning")
        step(server, **{M1: (JobPhase.DONE, ""), M2: (JobPhase.DRAINING, "")})
        shows(driver, "m2", "draining")
        browser.wait_until(
            lambda: "1 of 3 machines done (1 done, 1 draining, 1 pending)" in panel(driver),
            10,
            "the progress",
        )
        # A machine asks for a reboot meanwhile: it waits, on the panel and its card.
        with api(server, "operate") as client:
            asked = client.post(f"/fleet/v1/machines/{M3}/reboot-request")
            assert asked.status_code == 201, asked.text
        browser.wait_until(
            lambda: (
                "Reboot requests waiting (1)" in panel(driver)
                and "m3: asked by operate" in panel(driver)
            ),
            10,
            "the request on the panel",
        )
        # Cancel, from the page, after confirming.
        # The panel is drawn again on every event: find the button anew at each try.
        browser.wait_until(lambda: cancel_button(driver).is_enabled(), 10, "an enabled Cancel")
        browser.wait_until(lambda: cancel_button(driver).click() or True, 10, "Cancel clicked")
        dialog = driver.find_element(By.ID, "confirm")
        browser.wait_until(dialog.is_displayed, 10, "the confirmation")
        assert "No machine starts any more" in dialog.text
        driver.find_element(By.ID, "confirm-ok").click()
        browser.wait_until(lambda: record(server).cancelled == "operate", 10, "the cancel")
        assert record(server).phase is Phase.STOPPING
        browser.wait_until(lambda: "Cancelled by operate" in panel(driver), 10, "who cancelled")
        assert (
            driver.find_elements(By.CSS_SELECTOR, 'button[data-action="cancelMaintenance"]') == []
        )
        browser.screenshot(driver, SHOTS, "maintenance-cancelled")
        errors = [e for e in browser.console_errors(driver) if not any(x in e for x in EXPECTED)]
        assert not errors, errors


def test_a_failed_maintenance_says_why_and_a_reader_cannot_cancel(server: Served) -> None:
    with api(server) as client:
        started = client.post("/fleet/v1/maintenance", json={"machines": [M1, M2]})
        assert started.status_code == 201, started.text
    with browser.chromium(browser.PHONE) as driver:
        sign_in(driver, server, "read")
        browser.wait_until(lambda: "Maintenance: reboot" in panel(driver), 10, "the panel")
        browser.wait_until(
            lambda: (
                not cancel_button(driver).is_enabled()
                and "needs the operate role" in (cancel_button(driver).get_attribute("title") or "")
            ),
            10,
            "a disabled Cancel that says why",
        )
        why = "m1 was not back within 10 minutes"
        step(server, **{M1: (JobPhase.FAILED, why)})
        finish(server, Phase.FAILED, f"m1: {why}")
        browser.wait_until(lambda: f"Failed: m1: {why}" in panel(driver), 10, "the failure")
        browser.wait_until(lambda: "Last maintenance: reboot" in panel(driver), 10, "the last one")
        # The failed machine stays cordoned: its card keeps saying why; the other no more.
        shows(driver, "m1", "failed", why)
        browser.wait_until(lambda: phase_on_card(driver, "m2") == "", 10, "m2's card without it")
        width = driver.execute_script("return document.documentElement.scrollWidth")
        assert width <= browser.PHONE[0], "the cluster page scrolls sideways on a phone"
        browser.screenshot(driver, SHOTS, "maintenance-failed-phone")
