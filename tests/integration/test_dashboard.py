"""The dashboard in a real browser against a real cluster.

A ``--secure`` sandbox of 3 machines (HTTPS, a token per role) and Debian's headless
Chromium driven by Selenium, served by m1's fleetd at ``https://<m1>:49153/ui/``
(Chromium trusts exactly m1's certificate key).  The page must list the machines and
their units, start a unit that systemd inside its machine then runs, show why a unit
cannot be placed, show a rollout on its instances' pages and promote it, be usable by
keyboard alone, show each machine's phases in a maintenance live, drop a partitioned
machine within TTL + 2 s without a reload, and give a read-only token no enabled write
button while forged writes get 403.

Screenshots of every page are saved under ``build/screenshots/`` (printed at the end).
"""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from fleetd.pki import Pki
from fleetd.sandbox import security
from fleetd.sandbox.cluster import Sandbox, teardown
from fleetd.sandbox.spec import API_PORT, DEFAULT_AGENT_TTL, SandboxSpec
from fleetd.sandbox.state import Instance
from fleetd.testing import browser
from fleetd.unitfile import UnitFile

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(browser.missing() is not None, reason=str(browser.missing())),
]

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "screenshots"
BIN = Path(sys.executable).parent
SERVICE = "[Unit]\nDescription=dashboard {what}\n\n[Service]\nExecStart=/bin/sleep 100000\n"
HUGE = SERVICE + "\n[X-Fleet]\nMemoryReservation=900G\n"
# Console messages a page may show: its first look for a session (401), a unit without a
# rollout (404), and the forged writes this module makes on purpose (403).
EXPECTED = ("/ui/session", "/rollouts/", "status of 403")


def _free_instance() -> Instance:
    for digit in range(10):
        candidate = Instance(f"ui{digit}")
        if not candidate.state_dir.exists():
            return candidate
    raise RuntimeError("no free sandbox name ui0..ui9 (stale sandboxes? `fleetd sandbox down`)")


class Cluster:
    """The sandbox, its API as each role, and a way to open the page."""

    def __init__(self, sandbox: Sandbox, tmp: Path) -> None:
        self.sandbox = sandbox
        self.tmp = tmp
        self.pki = Pki(security.pki_dir(sandbox.state_dir))
        self.m1 = sandbox.machine("m1").ip
        self.base = f"https://{self.m1}:{API_PORT}"
        self.flags = [browser.spki_pin(self.pki.machine("m1")[0])]

    def api(self, role: str = "admin") -> httpx.Client:
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        return httpx.Client(
            base_url=self.base,
            verify=ctx,
            timeout=30,
            headers={"Authorization": f"Bearer {self.sandbox.role_token(role)}"},
        )

    def fleetctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **self.sandbox.env("admin")}
        proc = subprocess.run(
            [str(BIN / "fleetctl"), *args], capture_output=True, text=True, env=env, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
        return proc

    def submit(self, name: str, text: str, *verbs: str) -> None:
        path = self.tmp / name
        path.write_text(text)
        self.fleetctl("submit", str(path))
        for verb in verbs:
            self.fleetctl(verb, "--no-block", name)

    def machine_name(self, machine_id: str) -> str:
        with self.api() as api:
            found = api.get(f"/fleet/v1/machines/{machine_id}").json()
        return next(m.name for m in self.sandbox.machines if m.ip == found["primaryIP"])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    name = _free_instance()
    sandbox = Sandbox.up(SandboxSpec(machines=3, secure=True), name=name, timeout=120)
    try:
        yield Cluster(sandbox, tmp_path_factory.mktemp("units"))
    finally:
        teardown(name)
        print(f"\ndashboard screenshots: {SHOTS}")


def sign_in(driver: WebDriver, cluster: Cluster, role: str) -> None:
    driver.get(f"{cluster.base}/ui/")
    field = browser.wait_until(lambda: driver.find_elements(By.ID, "token"), 30, "sign-in form")
    field[0].send_keys(cluster.sandbox.role_token(role))
    driver.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    browser.wait_until(
        lambda: driver.find_elements(By.CSS_SELECTOR, "article.machine"), 30, "the cluster page"
    )


@pytest.fixture
def page(cluster: Cluster) -> Iterator[WebDriver]:
    """A browser signed in with the admin token; no unexpected console error at the end."""
    with browser.chromium(flags=cluster.flags) as driver:
        sign_in(driver, cluster, "admin")
        yield driver
        errors = [e for e in browser.console_errors(driver) if not any(x in e for x in EXPECTED)]
        assert not errors, errors


def card(driver: WebDriver, machine: str) -> Any:
    for element in driver.find_elements(By.CSS_SELECTOR, "article.machine"):
        if element.find_element(By.TAG_NAME, "h3").text == machine:
            return element
    return None


def confirm(driver: WebDriver) -> None:
    ok = browser.wait_until(
        lambda: [b for b in driver.find_elements(By.ID, "confirm-ok") if b.is_displayed()],
        10,
        "the confirmation dialog",
    )
    ok[0].click()


def test_the_cluster_page_lists_the_machines_and_their_units(
    cluster: Cluster, page: WebDriver
) -> None:
    names = [f"dash-list{i}.service" for i in range(4)]
    for name in names:
        cluster.submit(name, SERVICE.format(what=name), "start")
    with cluster.api() as api:

        def placed() -> dict[str, str] | None:
            units = api.get("/fleet/v1/units").json()["units"]
            found = {u["name"]: u.get("machineID", "") for u in units if u["name"] in names}
            return found if len(found) == len(names) and all(found.values()) else None

        where = browser.wait_until(placed, 60, "the units placed")
    on = {name: cluster.machine_name(machine) for name, machine in where.items()}
    # No reload: the page shows them through the event stream.
    browser.wait_until(
        lambda: all(
            name in (card(page, m).text if card(page, m) else "") for name, m in on.items()
        ),
        30,
        f"every unit on its machine's card: {on}",
    )
    titles = sorted(e.text for e in page.find_elements(By.CSS_SELECTOR, "article.machine h3"))
    assert titles == ["m1", "m2", "m3"]
    for machine in ("m1", "m2", "m3"):
        text = card(page, machine).text
        assert cluster.sandbox.machine(machine).ip in text
        assert "CPU" in text and "Memory" in text
        for name, placed_on in on.items():
            assert (name in text) == (placed_on == machine), (machine, name, text)
    leader = page.find_elements(By.XPATH, "//article[.//span[text()='engine leader']]")
    assert len(leader) == 1
    browser.screenshot(page, SHOTS, "cluster")
    page.get(f"{cluster.base}/ui/#/units")
    browser.wait_until(
        lambda: all(page.find_elements(By.CSS_SELECTOR, f'tr[data-unit="{n}"]') for n in names),
        30,
        "the units table",
    )
    browser.screenshot(page, SHOTS, "units")
    page.get(f"{cluster.base}/ui/#/events")
    browser.wait_until(lambda: page.find_elements(By.CSS_SELECTOR, "table.events"), 10, "events")
    browser.screenshot(page, SHOTS, "events")


def test_starting_a_unit_from_the_page_runs_it_in_systemd(
    cluster: Cluster, page: WebDriver
) -> None:
    name = "dash-start.service"
    cluster.submit(name, SERVICE.format(what="started from the page"))
    page.get(f"{cluster.base}/ui/#/unit/{name}")
    start = browser.wait_until(
        lambda: page.find_elements(By.CSS_SELECTOR, 'button[data-action="start"]'), 30, "Start"
    )[0]
    assert start.is_enabled()
    start.click()
    confirm(page)
    browser.wait_until(
        lambda: "active (running)" in page.find_element(By.ID, "where").text,
        60,
        "the page showing the unit active",
    )
    with cluster.api() as api:
        machine_id = api.get(f"/fleet/v1/units/{name}").json()["machineID"]
    machine = cluster.machine_name(machine_id)
    assert machine in page.find_element(By.ID, "where").text
    state = cluster.sandbox.exec(machine, "systemctl", "is-active", name)
    assert state.stdout.strip() == "active"
    # Its journal and status come from its machine, live.
    browser.wait_until(
        lambda: "dashboard started from the page" in page.find_element(By.ID, "status").text,
        30,
        "systemctl status on the page",
    )
    browser.wait_until(
        lambda: page.find_element(By.CSS_SELECTOR, "pre.journal").text.strip(), 30, "a journal"
    )
    browser.screenshot(page, SHOTS, "unit")


def test_an_unplaceable_unit_shows_its_reason(cluster: Cluster, page: WebDriver) -> None:
    name = "dash-huge.service"
    cluster.submit(name, HUGE.format(what="too big"), "start")
    with cluster.api() as api:
        placement = browser.wait_until(
            lambda: api.get(f"/fleet/v1/units/{name}/placement").json()["reasons"] or None,
            60,
            "the engine's reasons",
        )
    assert set(placement) and all(placement.values())
    section = browser.wait_until(
        lambda: page.find_elements(By.CSS_SELECTOR, f'li[data-unplaceable="{name}"]'),
        30,
        "the unplaceable unit on the cluster page",
    )[0]
    for machine_id, why in placement.items():
        assert f"{cluster.machine_name(machine_id)}: {why}" in section.text
    browser.screenshot(page, SHOTS, "unplaceable")
    page.get(f"{cluster.base}/ui/#/units?status=unplaceable")
    row = browser.wait_until(
        lambda: page.find_elements(By.CSS_SELECTOR, f'tr[data-unit="{name}"]'), 30, "its row"
    )[0]
    assert "Not placed" in row.text and next(iter(placement.values())) in row.text


def test_a_read_only_token_has_no_enabled_write_button_and_forged_writes_get_403(
    cluster: Cluster,
) -> None:
    name = "dash-readonly.service"
    cluster.submit(name, SERVICE.format(what="read only"))
    with browser.chromium(flags=cluster.flags) as driver:
        sign_in(driver, cluster, "read")
        assert "read" in driver.find_element(By.ID, "caller").text
        for hash_ in ("#/", f"#/unit/{name}"):
            driver.get(f"{cluster.base}/ui/{hash_}")
            buttons = browser.wait_until(
                lambda: driver.find_elements(By.CSS_SELECTOR, "button[data-action]"), 30, "buttons"
            )
            assert [b.get_attribute("data-action") for b in buttons if b.is_enabled()] == []
        browser.screenshot(driver, SHOTS, "read-only")
        forged = driver.execute_async_script(
            """
            const [url, done] = [arguments[0], arguments[arguments.length - 1]];
            const put = (headers) => fetch(url, {
              method: "PUT",
              headers: {"Content-Type": "application/json", ...headers},
              body: JSON.stringify({desiredState: "launched"}),
            });
            (async () => {
              const csrf = (await (await fetch("session")).json()).csrf;
              const a = await put({"X-Fleetd-CSRF": csrf});
              const b = await put({});
              done([a.status, await a.text(), b.status, await b.text()]);
            })().catch((e) => done(String(e)));
            """,
            f"api/fleet/v1/units/{name}",
        )
        assert forged[0] == 403 and "needs the operate role" in forged[1], forged
        assert forged[2] == 403 and "x-fleetd-csrf" in forged[3], forged
        cookies = {c["name"]: c for c in driver.get_cookies()}
        cookie = cookies["fleetd_ui"]
        assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
        assert cookie["path"] == "/ui"
        assert driver.execute_script("return document.cookie") == ""
        assert cluster.sandbox.role_token("read") not in driver.current_url
        driver.find_element(By.ID, "signout").click()
        browser.wait_until(lambda: driver.find_elements(By.ID, "token"), 10, "the sign-in form")
        assert "fleetd_ui" not in {c["name"] for c in driver.get_cookies()}
    # An admin's page cannot be made to write without the CSRF header either.
    with browser.chromium(flags=cluster.flags) as driver:
        sign_in(driver, cluster, "admin")
        status = driver.execute_async_script(
            """const done = arguments[arguments.length - 1];
            fetch(arguments[0], {method: "DELETE"}).then((r) => done(r.status));""",
            f"api/fleet/v1/units/{name}",
        )
        assert status == 403
    with cluster.api("read") as api:
        unit = api.get(f"/fleet/v1/units/{name}")
    assert unit.status_code == 200 and unit.json()["desiredState"] == "inactive"


def test_a_rollout_shows_on_its_instances_page_and_is_promoted_from_there(
    cluster: Cluster, page: WebDriver
) -> None:
    template = "dash-roll@.service"
    cluster.submit(template, SERVICE.format(what="roll %i"))
    cluster.fleetctl("start", "dash-roll@1.service", "dash-roll@2.service")
    options = UnitFile.from_text(SERVICE.format(what="roll v2 %i")).to_dicts()
    request = {"unit": template, "options": options, "canary": 1, "minHealthyTime": 1}
    with cluster.api() as api:
        started = api.post("/fleet/v1/rollouts", json=request)
    assert started.status_code == 201, started.text
    page.get(f"{cluster.base}/ui/#/unit/dash-roll@1.service")
    panel = browser.wait_until(
        lambda: [e for e in page.find_elements(By.ID, "rollout") if e.is_displayed()],
        30,
        "the rollout on the instance's page",
    )[0]
    browser.wait_until(
        lambda: "awaiting-promotion" in panel.text, 60, "the canary done, a promotion awaited"
    )
    assert template in panel.text
    # The instance's new version, and its diff against the one before.
    diff = browser.wait_until(
        lambda: page.find_elements(
            By.CSS_SELECTOR, 'button[aria-label="Show the changes of version 2"]'
        ),
        30,
        "version 2 in the list",
    )
    diff[0].click()
    browser.wait_until(
        lambda: "+ Description=dashboard roll v2 %i" in page.find_element(By.ID, "versions").text,
        30,
        "the diff",
    )
    assert "- Description=dashboard roll %i" in page.find_element(By.ID, "versions").text
    browser.screenshot(page, SHOTS, "rollout")
    page.find_element(By.CSS_SELECTOR, '#rollout button[data-action="promote"]').click()
    confirm(page)
    browser.wait_until(lambda: "succeeded" in panel.text, 90, "the rollout succeeded on the page")
    with cluster.api() as api:
        rollout = api.get(f"/fleet/v1/rollouts/{template}").json()
    assert rollout["phase"] == "succeeded" and rollout["promoted"] is True


def test_keyboard_alone_reaches_an_action_and_a_dialog_asks_first(
    cluster: Cluster, page: WebDriver
) -> None:
    unlabelled = page.execute_script(
        """return [...document.querySelectorAll("input, select, button")].filter((el) =>
             !(el.labels && el.labels.length) && !el.getAttribute("aria-label") &&
             !el.textContent.trim()).map((el) => el.outerHTML)"""
    )
    assert unlabelled == []
    page.get(f"{cluster.base}/ui/")  # signed in: a fresh page, focus at its start
    browser.wait_until(lambda: card(page, "m1"), 30, "the cluster page")
    body = page.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    assert page.switch_to.active_element.text == "Skip to content"
    for _ in range(80):
        if page.switch_to.active_element.get_attribute("data-action") == "cordon":
            break
        page.switch_to.active_element.send_keys(Keys.TAB)
    focused = page.switch_to.active_element
    assert focused.get_attribute("data-action") == "cordon", "Tab never reached a Cordon button"
    machine = focused.get_attribute("aria-label").removeprefix("Cordon ")
    focused.send_keys(Keys.ENTER)
    browser.wait_until(
        lambda: page.execute_script("return document.getElementById('confirm').open"),
        10,
        "the dialog",
    )
    assert page.execute_script(
        "return document.getElementById('confirm').contains(document.activeElement)"
    ), "focus is not in the dialog"
    page.switch_to.active_element.send_keys(Keys.ESCAPE)
    browser.wait_until(
        lambda: not page.execute_script("return document.getElementById('confirm').open"),
        10,
        "the dialog closed",
    )
    with cluster.api() as api:
        machines = api.get("/fleet/v1/machines").json()["machines"]
    ip = cluster.sandbox.machine(machine).ip
    assert [m.get("unschedulable", False) for m in machines if m["primaryIP"] == ip] == [False]


def test_phone_sized_pages(cluster: Cluster) -> None:
    with browser.chromium(browser.PHONE, flags=cluster.flags) as driver:
        sign_in(driver, cluster, "operate")
        width = driver.execute_script("return document.documentElement.scrollWidth")
        assert width <= browser.PHONE[0], "the cluster page scrolls sideways on a phone"
        browser.screenshot(driver, SHOTS, "cluster-phone")
        driver.get(f"{cluster.base}/ui/#/units")
        browser.wait_until(
            lambda: driver.find_elements(By.CSS_SELECTOR, "table.units tr"), 30, "rows"
        )
        width = driver.execute_script("return document.documentElement.scrollWidth")
        assert width <= browser.PHONE[0], "the units page scrolls sideways on a phone"
        browser.screenshot(driver, SHOTS, "units-phone")


# Records, in the page, every phase each machine's card showed (a phase may last less
# than the test's polling interval; the page renders each change of the record).
WATCH_PHASES = """
window.__phases = {};
const note = () => {
  for (const card of document.querySelectorAll("article.machine")) {
    const name = card.querySelector("h3").textContent;
    const p = card.querySelector("p.maint[data-maintenance-phase]");
    const seen = (window.__phases[name] = window.__phases[name] || []);
    const phase = p && p.dataset.maintenancePhase;
    if (phase && seen[seen.length - 1] !== phase) seen.push(phase);
  }
};
const view = document.getElementById("view");
new MutationObserver(note).observe(view, {subtree: true, childList: true});
note();
"""
ORDER = ["pending", "draining", "acting", "returning", "done"]


def test_a_maintenance_shows_each_machine_phase_live(cluster: Cluster, page: WebDriver) -> None:
    name = "dash-maint.service"
    cluster.submit(name, SERVICE.format(what="moved by a maintenance"), "start")
    page.execute_script(WATCH_PHASES)
    page.execute_script("window.__sameDocument = true")
    started = time.monotonic()
    cluster.fleetctl("reboot", "--no-block", "--command", "/bin/true", "m2", "m3")
    # (the panel is rebuilt at each change: found again at each look)
    panel = lambda: page.find_element(By.ID, "maintenance").text  # noqa: E731
    browser.wait_until(
        lambda: "Maintenance: command /bin/true" in panel(), 30, "the maintenance panel"
    )
    browser.wait_until(lambda: "acting" in str(page.execute_script("return window.__phases")),
                       120, "a machine acting")  # fmt: skip
    browser.screenshot(page, SHOTS, "maintenance")
    browser.wait_until(
        lambda: "Last maintenance: command /bin/true done" in panel(), 240, "the end"
    )
    took = time.monotonic() - started
    phases: dict[str, list[str]] = page.execute_script("return window.__phases")
    print(f"\nmaintenance of m2, m3 (/bin/true) over in {took:.1f}s; the page showed {phases}")
    assert "2 of 2 machines done" in panel()
    assert page.execute_script("return window.__sameDocument === true"), "the page reloaded"
    for machine in ("m2", "m3"):
        seen = phases.get(machine, [])
        # Each phase shown in order, at least one with the machine down or coming back.
        assert seen == sorted(seen, key=ORDER.index), (machine, seen)
        assert {"draining", "acting", "returning"} & set(seen), (machine, seen)
    assert phases.get("m1", []) == []
    # Over: the cards no longer speak of it; the panel keeps the last one.
    assert page.find_elements(By.CSS_SELECTOR, "p.maint[data-maintenance-phase]") == []
    browser.screenshot(page, SHOTS, "maintenance-done")


def test_a_partitioned_machine_leaves_the_page_within_the_ttl_and_2s(
    cluster: Cluster, page: WebDriver
) -> None:
    victim = "m3"
    assert card(page, victim) is not None
    page.execute_script("window.__sameDocument = true")
    cluster.sandbox.partition(victim)
    started = time.monotonic()
    try:
        browser.wait_until(
            lambda: card(page, victim) is None, DEFAULT_AGENT_TTL + 2, f"{victim} gone"
        )
        took = time.monotonic() - started
        print(
            f"\n{victim} left the page {took:.1f}s after the partition (TTL {DEFAULT_AGENT_TTL:g}s)"
        )
        assert page.execute_script("return window.__sameDocument === true"), "the page reloaded"
        assert {e.text for e in page.find_elements(By.CSS_SELECTOR, "article.machine h3")} == {
            "m1",
            "m2",
        }
        browser.screenshot(page, SHOTS, "partitioned")
    finally:
        cluster.sandbox.heal(victim)
