"""systemd inside every machine, sampled every 100 ms for the chaos run's history.

One ``fleetd.testing.unitwatch`` per machine (a D-Bus connection to its systemd,
started through ``Sandbox.command``, so a partition does not cut it off) reports
the active units matching a pattern every ``interval`` and their ``MainPID``s every
``pids_every`` samples.  Only changes become records (``active``, ``pids``; see
``history.py``).  When a machine powers off its watcher ends: its units are
recorded as gone at that moment, and a new watcher starts once it runs again.  A
watcher that reports nothing for ``stall`` seconds (its machine's bus gone with a
power-off it did not notice, a D-Bus call that never returns) is killed and started
again, so a machine is never left unsampled for the rest of a run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable

from fleetd.sandbox import Sandbox
from fleetd.testing import unitwatch
from fleetd.testing.chaos.history import Record


class Sampler:
    def __init__(
        self,
        sandbox: Sandbox,
        pattern: str,
        record: Callable[[Record], None],
        interval: float = 0.1,
        pids_every: int = 10,
        stall: float = 5.0,
    ) -> None:
        self.sandbox = sandbox
        self.argv = unitwatch.argv(pattern, interval, pids_every)
        self.record = record
        self.stall = stall
        self._heard: dict[str, float] = {}  # when each machine's watcher last reported
        self.samples = {m.name: 0 for m in sandbox.machines}
        self.latest: dict[str, set[str]] = {m.name: set() for m in sandbox.machines}
        self._last: dict[str, float] = {}  # each machine's last sample
        self._pids: dict[str, dict[str, int]] = {}
        self._last_pids: dict[str, float] = {}
        self._stop = threading.Event()
        self._procs: dict[str, subprocess.Popen[str]] = {}
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._machine, args=(m.name,), name=f"sample-{m.name}")
            for m in sandbox.machines
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            if proc.stdin is not None:
                proc.stdin.close()
        for thread in self._threads:
            thread.join(timeout=15)
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()

    def _machine(self, name: str) -> None:
        while not self._stop.is_set():
            try:
                self._watch(name)
            except Exception as exc:  # recorded, and sampling goes on
                self.record({"kind": "watcher", "t": time.monotonic(), "machine": name,
                             "event": "error", "details": repr(exc)})  # fmt: skip
            self._stop.wait(0.5)  # systemd's bus may not be up yet after a boot

    def _watch(self, name: str) -> None:
        """One watcher's life in ``name``, recorded as ``watcher`` records (started, and
        ended with its exit status and the end of its stderr)."""
        if not self.sandbox.running(name):
            return
        proc = subprocess.Popen(
            self.sandbox.command(name, *self.argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # a group of its own, for _guard
        )
        self.record({"kind": "watcher", "t": time.monotonic(), "machine": name, "event": "started"})
        with self._lock:
            self._procs[name] = proc
        self._heard[name] = time.monotonic()
        guard = threading.Thread(target=self._guard, args=(name, proc), name=f"guard-{name}")
        guard.start()
        try:
            self._read(name, proc)
        finally:
            guard.join()
            proc.wait()
            with self._lock:
                self._procs.pop(name, None)
            err = proc.stderr.read()[-500:] if proc.stderr is not None else ""
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
            self.record({"kind": "watcher", "t": time.monotonic(), "machine": name,
                         "event": "ended", "status": proc.returncode, "details": err})  # fmt: skip

    def _guard(self, name: str, proc: subprocess.Popen[str]) -> None:
        """Kill ``proc`` once it has reported nothing for ``stall`` seconds."""
        while proc.poll() is None and not self._stop.wait(0.5):
            silent = time.monotonic() - self._heard[name]
            if silent > self.stall:
                details = f"silent for {silent:.1f}s"
                self.record({"kind": "watcher", "t": time.monotonic(), "machine": name,
                             "event": "stalled", "details": details})  # fmt: skip
                # nsenter and the watcher it forked inside the machine: both hold stdout.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                return

    def _read(self, name: str, proc: subprocess.Popen[str]) -> None:
        """Record the changes a watcher reports.  A machine's last view outlives its
        watcher: after a power-off, the first sample of the next boot records its units
        gone, as last seen before the power-off (``prev``)."""
        assert proc.stdout is not None
        for line in proc.stdout:
            self._heard[name] = time.monotonic()
            if line.startswith("P "):
                _, stamp, *pairs = line.split()
                now = {u: int(p) for u, p in (pair.split("=", 1) for pair in pairs)}
                self._pids_seen(name, float(stamp), now)
            else:
                stamp, *units = line.split()
                self._active_seen(name, float(stamp), set(units))

    def _pids_seen(self, name: str, t: float, now: dict[str, int]) -> None:
        known = self._pids.setdefault(name, {})
        changed = {u: p for u, p in now.items() if known.get(u) != p}
        if changed:
            prev = self._last_pids.get(name, t)
            self.record({"kind": "pids", "t": t, "prev": prev, "machine": name, "pids": changed})
        known.update(now)
        self._last_pids[name] = t

    def _active_seen(self, name: str, t: float, seen: set[str]) -> None:
        active = self.latest[name]
        self.samples[name] += 1
        if seen != active:
            self.record(
                {
                    "kind": "active",
                    "t": t,
                    "prev": self._last.get(name, t),
                    "machine": name,
                    "added": sorted(seen - active),
                    "removed": sorted(active - seen),
                }
            )
        self.latest[name] = seen
        self._last[name] = t

    def close_off_machines(self) -> None:
        """After ``stop``: a machine still off runs nothing (its last view ends here)."""
        for name in self.latest:
            if not self.sandbox.running(name):
                self._active_seen(name, time.monotonic(), set())
