"""The dashboard in Firefox (Debian's firefox-esr), driven over WebDriver BiDi
(``fleetd/testing/firefox.py``: Debian has no geckodriver), against the real listener
on loopback over a memory registry: sign in with a token, the cluster page lists the
machines and their units, an operator cordons a machine from it, a read-only token
sees only disabled buttons.  Screenshots go to ``build/screenshots/firefox-*.png``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from uikit import MACHINES, SHOTS, UNITS, seed

from fleetd.testing import firefox as ff
from fleetd.testing.uiserver import SECRETS, Served, served

pytestmark = pytest.mark.skipif(ff.missing() is not None, reason=str(ff.missing()))
# A fresh page asks for its session first: that 401 is how it learns to sign in.
EXPECTED = ("401",)
CARD_TITLES = "[...document.querySelectorAll('article.machine h3')].map((e) => e.textContent)"


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    with served() as found:
        found.run(seed(found.store))
        yield found


def sign_in(browser: ff.Firefox, server: Served, role: str) -> None:
    browser.navigate(f"{server.base}/ui/")
    ff.wait_until(lambda: browser.evaluate("!!document.getElementById('token')"), 30, "sign-in")
    browser.click("#token")
    browser.type_text(SECRETS[role] + "\n")
    ff.wait_until(lambda: browser.evaluate(f"{CARD_TITLES}.length === 3"), 30, "the three machines")


def card_text(browser: ff.Firefox, machine: str) -> str:
    return str(
        browser.evaluate(
            "[...document.querySelectorAll('article.machine')].find((c) => "
            f"c.querySelector('h3').textContent === '{machine}')?.innerText || ''"
        )
    )


def test_an_operator_sees_the_cluster_and_cordons_a_machine(server: Served) -> None:
    with ff.firefox() as browser:
        sign_in(browser, server, "operate")
        assert "operate" in browser.evaluate("document.getElementById('caller').textContent")
        assert sorted(browser.evaluate(CARD_TITLES)) == ["m1", "m2", "m3"]
        for unit, machine in UNITS.items():
            ff.wait_until(
                lambda u=unit, m=machine: u in card_text(browser, m), 10, f"{unit} on {machine}"
            )
        assert "active (running)" in card_text(browser, "m1")
        browser.screenshot(SHOTS, "firefox-cluster")
        browser.click('button[aria-label="Cordon m2"]')
        ff.wait_until(
            lambda: browser.evaluate("document.getElementById('confirm').open"), 10, "the dialog"
        )
        browser.click("#confirm-ok")
        flags = ff.wait_until(
            lambda: (
                (f := server.run(server.store.get_machine_flags(MACHINES["m2"])))
                and f.unschedulable
                and f
            ),
            10,
            "m2 cordoned in the registry",
        )
        assert not flags.draining
        # The page follows the registry live: the card says so, and offers Uncordon.
        ff.wait_until(lambda: "cordoned" in card_text(browser, "m2"), 10, "the cordoned badge")
        assert browser.evaluate("!!document.querySelector('button[aria-label=\"Uncordon m2\"]')")
        browser.screenshot(SHOTS, "firefox-cordoned")
        errors = [e for e in browser.console_errors() if not any(x in e for x in EXPECTED)]
        assert not errors, errors


def test_a_read_only_token_sees_only_disabled_buttons_on_a_phone(server: Served) -> None:
    with ff.firefox(ff.PHONE) as browser:
        sign_in(browser, server, "read")
        states = browser.evaluate(
            "[...document.querySelectorAll('button[data-action]')].map((b) => b.disabled)"
        )
        assert states and all(states), states
        width = browser.evaluate("document.documentElement.scrollWidth")
        assert width <= ff.PHONE[0], "the cluster page scrolls sideways on a phone"
        browser.screenshot(SHOTS, "firefox-read-only-phone")
