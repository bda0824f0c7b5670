"""The dashboard with 100 machines and 10,000 units, in Debian's headless Chromium.

A synthetic cluster (``fleetd/testing/synthetic.py``) in a memory registry is served
by the real listener (``ApiServer``: tokens, the dashboard's session gate) on
loopback; the browser signs in and then this measures, inside the page
(``performance.now()``, so polling adds nothing):

- the first page's weight as transferred (resource timing) and the answer of
  ``GET /fleet/v1/cluster`` (gzip and plain);
- from navigation to the cluster page showing every machine;
- the units table: open it, filter by name, sort by status, go to the last page;
- a unit's page;
- live updates: ``--changes`` unit states written at once (half the failed units
  recover, as many others fail), until the page's counts show all of them;
- the page's JS heap.

Run: ``.venv/bin/python benchmarks/ui_render.py [--machines 100] [--units 10000]``
(no root; needs the Debian packages chromium and chromium-driver).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import sys
import threading
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import httpx

from fleetd import model
from fleetd.api.app import create_app
from fleetd.api.serve import ApiServer
from fleetd.api.ui.assets import first_page_weight
from fleetd.caller import Role
from fleetd.registry.memory import MemoryRegistry
from fleetd.registry.store import Store
from fleetd.testing import browser, synthetic
from fleetd.tokens import StaticTokens, Token, digest

T = TypeVar("T")
SECRET = "benchmark-secret-0123456789"
# Runs in the page: poll (each animation frame) until `check()` holds; answer the ms taken.
WAIT = """
const [setup, check, limit, done] = [arguments[0], arguments[1], arguments[2],
                                     arguments[arguments.length - 1]];
const ok = new Function(check);
const start = performance.now();
new Function(setup)();
(function poll() {
  let good = false;
  try { good = ok(); } catch (e) { good = false; }
  if (good) return done(performance.now() - start);
  if (performance.now() - start > limit) return done(-1);
  requestAnimationFrame(poll);
})();
"""


class Served:
    """The API with its dashboard on loopback, served from a thread with its own loop."""

    def __init__(self, shape: synthetic.Shape) -> None:
        self.loop = asyncio.new_event_loop()
        self.store = Store(MemoryRegistry())
        self.leases: dict[str, int] = {}
        self.base = ""
        self.shape = shape
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 600) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self.thread.start()
        started = time.monotonic()
        self.leases = self.run(synthetic.seed(self.store, self.shape))
        print(f"seeded {self.shape.machines} machines, {self.shape.units} units "
              f"in {time.monotonic() - started:.1f}s")  # fmt: skip
        app = create_app(self.store, machine_id=synthetic.machine_id(0), inspector=Inspector())
        tokens = StaticTokens([Token("bench", Role.ADMIN, digest(SECRET))])
        server = ApiServer(
            app, ["tcp://127.0.0.1:0"], tokens=tokens, refused=app.state.audit.refused,
            insecure_http=True,
        )  # fmt: skip
        server.bind()
        self.base = "http://" + server.addresses[0][len("tcp://") :]
        self.loop.call_soon_threadsafe(lambda: self.loop.create_task(server.run()))

    async def flip(self, count: int) -> tuple[int, int]:
        """Write ``count`` unit states: failed units recover, running ones fail.  Answers
        the failed count before and after."""
        states = await self.store.list_states()
        failed = [s for s in states if s.active_state == "failed"]
        running = [s for s in states if s.active_state == "active"]
        recover = failed[: count // 2]
        fail = running[: count - len(recover)]
        by_machine: dict[str, list[model.UnitState]] = {}
        for s in recover:
            by_machine.setdefault(s.machine, []).append(_with(s, "active", "running"))
        for s in fail:
            by_machine.setdefault(s.machine, []).append(_with(s, "failed", "failed"))
        for machine, found in by_machine.items():
            await self.store.put_states(machine, found, self.leases[machine])
        return len(failed), len(failed) - len(recover) + len(fail)


class Inspector:
    """``systemctl status`` and a journal for the units of this machine (machine 0)."""

    async def status(self, name: str) -> tuple[int, str]:
        return 0, f"* {name} - synthetic\n     Active: active (running)\n"

    async def journal(
        self, name: str, lines: int, follow: bool, output: str = "short"
    ) -> AsyncIterator[bytes]:
        yield f"{name}: started\n".encode()
        if follow:
            await asyncio.Event().wait()  # until the page goes away


def _with(state: model.UnitState, active: str, sub: str) -> model.UnitState:
    return model.UnitState(state.machine, state.name, state.hash, state.load_state, active, sub)


def measure(driver: Any, setup: str, check: str, what: str, limit: float = 60000) -> float:
    ms = float(driver.execute_async_script(WAIT, setup, check, limit))
    if ms < 0:
        raise SystemExit(f"{what}: not done within {limit / 1000:g}s")
    return ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--machines", type=int, default=100)
    parser.add_argument("--units", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=1_000)
    args = parser.parse_args()
    why = browser.missing()
    if why:
        sys.exit(why)
    shape = synthetic.Shape(machines=args.machines, units=args.units)
    served = Served(shape)
    served.start()
    raw, packed = first_page_weight()
    print(f"first page files: {raw / 1024:.1f} KiB, {packed / 1024:.1f} KiB gzip")
    auth = {"Authorization": f"Bearer {SECRET}"}
    with httpx.Client(base_url=served.base, headers=auth, timeout=60) as client:
        for _ in range(2):
            started = time.perf_counter()
            plain = client.get("/fleet/v1/cluster", headers={"Accept-Encoding": "identity"})
            took = (time.perf_counter() - started) * 1000
        with client.stream("GET", "/fleet/v1/cluster", headers={"Accept-Encoding": "gzip"}) as r:
            wire = b"".join(r.iter_raw())
        assert gzip.decompress(wire) == plain.content
    print(f"GET /fleet/v1/cluster: {took:.0f} ms, {len(plain.content) / 1024:.0f} KiB, "
          f"{len(wire) / 1024:.0f} KiB gzip")  # fmt: skip
    machines, units = f"{args.machines:,}", f"{args.units:,}"
    with browser.chromium() as driver:
        driver.set_script_timeout(120)
        driver.get(served.base + "/ui/")
        browser.wait_until(lambda: driver.find_elements("id", "token"), 30, "the sign-in form")
        # Everything the first page needs has loaded with the sign-in form (a cold cache).
        weight = driver.execute_script(
            "const nav = performance.getEntriesByType('navigation')[0].transferSize;"
            "return nav + performance.getEntriesByType('resource')"
            ".filter(e => !e.name.includes('/ui/api/') && !e.name.endsWith('/ui/session'))"
            ".reduce((a, e) => a + e.transferSize, 0);"
        )
        driver.find_element("id", "token").send_keys(SECRET + "\n")
        browser.wait_until(
            lambda: driver.find_elements("css selector", "article.machine"), 120, "the cluster"
        )
        # A fresh navigation, signed in: what an operator opening the page waits for.
        driver.get(served.base + "/ui/")
        shown = measure(
            driver, "", f"return document.querySelectorAll('article.machine').length === "
            f"{args.machines}", "the cluster page",
        )  # fmt: skip
        since_navigation = driver.execute_script("return performance.now()")
        print(f"first page transferred: {weight / 1024:.1f} KiB (limit 300 KiB)")
        print(f"cluster page with {machines} machines: shown {since_navigation:.0f} ms after "
              f"navigation (last poll {shown:.0f} ms)")  # fmt: skip
        count = "document.getElementById('unit-count')"
        timings = {
            "units table, first page": measure(
                driver, "location.hash = '#/units'",
                f"return {count} && {count}.textContent.includes('of {units} units')", "table",
            ),
            "filter by name (svc-001)": measure(
                driver,
                "const f = document.getElementById('unit-filter'); f.value = 'svc-001';"
                "f.dispatchEvent(new Event('input'));",
                f"return {count}.textContent.includes('matching')", "filter",
            ),
            "clear the filter, sort by status": measure(
                driver,
                "const f = document.getElementById('unit-filter'); f.value = '';"
                "f.dispatchEvent(new Event('input'));"
                "const s = document.getElementById('unit-sort'); s.value = 'status:';"
                "s.dispatchEvent(new Event('change'));",
                "return document.querySelector('th[data-col=status][aria-sort]') !== null"
                f" && {count}.textContent.includes('of {units} units')", "sort",
            ),
            "a unit's page": measure(
                driver, "location.hash = '#/unit/svc-00000.service'",
                "const t = document.querySelector('#file pre'); const j = document.querySelector("
                "'pre.journal'); return t && t.textContent.includes('ExecStart') && j && "
                "j.textContent.includes('started')", "unit page",
            ),
        }  # fmt: skip
        for what, ms in timings.items():
            print(f"{what}: {ms:.0f} ms")
        driver.execute_script("location.hash = '#/'")
        browser.wait_until(lambda: driver.find_elements("css selector", ".stats"), 30, "totals")
        failed_stat = (
            "[...document.querySelectorAll('.stat')].find(s => s.querySelector('dt')"
            ".textContent === 'Failed').querySelector('dd').textContent"
        )
        before, after = served.run(served.flip(args.changes))
        started = time.monotonic()
        browser.wait_until(
            lambda: driver.execute_script(f"return {failed_stat}") == f"{after:,}",
            60, f"{args.changes} state changes on the page",
        )  # fmt: skip
        live = (time.monotonic() - started) * 1000
        print(f"live: {args.changes} states written at once (failed {before} -> {after}), "
              f"shown {live:.0f} ms after the write returned")  # fmt: skip
        heap = driver.execute_script("return performance.memory.usedJSHeapSize")
        print(f"JS heap: {heap / (1 << 20):.1f} MiB")
        # (A fresh browser asks for its session first: that 401 is how it learns to sign in.)
        errors = [
            e
            for e in browser.console_errors(driver)
            if "/ui/session" not in e and "/rollouts/" not in e  # 401: sign in; 404: none
        ]
        if errors:
            raise SystemExit(f"console errors: {errors}")


if __name__ == "__main__":
    main()
