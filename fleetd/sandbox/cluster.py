"""``Sandbox``: a cluster of real systemd machines on this host (the Python API behind the CLI).

    sb = Sandbox.up(SandboxSpec(machines=3))
    sb.exec("m1", "systemctl", "is-active", "fleetd")
    sb.partition("m2"); sb.heal("m2")
    teardown()

Every operation reloads the state file, so the CLI and the API can be mixed.
"""

from __future__ import annotations

import dataclasses
import secrets
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fleetd.errors import SandboxError
from fleetd.pki import Pki
from fleetd.registry.keys import Keys
from fleetd.sandbox import cuts, etcd, host, install, machine, network, security, seed
from fleetd.sandbox import state as st
from fleetd.sandbox.cuts import Cut
from fleetd.sandbox.install import Install
from fleetd.sandbox.seed import FLEETD_UNIT
from fleetd.sandbox.spec import API_PORT, TOKENS_FILE, SandboxSpec
from fleetd.sandbox.state import Instance, MachineState, SandboxState, instance
from fleetd.sandbox.status import SandboxStatus, collect
from fleetd.sandbox.teardown import teardown

__all__ = ["Sandbox", "teardown"]


class Sandbox:
    """Handle on one sandbox of this host: ``name`` (None: ``$FLEETD_SANDBOX``, else default)."""

    def __init__(self, name: str | Instance | None = None) -> None:
        self.instance = name if isinstance(name, Instance) else instance(name)
        self.state_dir = self.instance.state_dir

    # --- lifecycle -----------------------------------------------------------------

    @classmethod
    def up(
        cls,
        spec: SandboxSpec,
        *,
        name: str | Instance | None = None,
        timeout: float = 60.0,
        progress: Callable[[str], None] = lambda _msg: None,
    ) -> Sandbox:
        """Create and boot the sandbox; on any failure remove what was created and re-raise."""
        installed = install.locate()
        host.preflight()
        sandbox = cls(name)
        inst, state_dir = sandbox.instance, sandbox.state_dir
        existing = st.load(state_dir)
        if existing is not None:
            if existing.complete:
                raise SandboxError(
                    f"the {inst.label} is already running ({len(existing.machines)} machines, "
                    f"state in {state_dir}); nothing was changed. "
                    "Run `fleetd sandbox down` first."
                )
            raise SandboxError(
                f"a previous {inst.label} left state in {state_dir}; "
                "run `fleetd sandbox down` first"
            )
        leftovers = network.owned_netns(inst.prefix) + network.owned_links(inst.prefix)
        if leftovers:
            raise SandboxError(
                f"sandbox network objects exist without state ({', '.join(leftovers)}); "
                "run `fleetd sandbox down` first"
            )
        if spec.subnet:
            network.check_subnet_free(spec.subnet)
        else:
            spec = dataclasses.replace(spec, subnet=network.free_subnet())
        if spec.fleetd and not installed.fleetd.exists():
            raise SandboxError(f"fleetd is not installed at {installed.fleetd} (run .ci/setup)")
        try:
            sandbox._create(spec, installed, timeout, progress)
        except BaseException:
            teardown(inst)
            raise
        return sandbox

    def _create(
        self, spec: SandboxSpec, installed: Install, timeout: float, say: Callable[[str], None]
    ) -> None:
        deadline = time.monotonic() + timeout
        tokens = security.make_tokens() if spec.secure else {}
        state = SandboxState(
            subnet=spec.subnet,
            bridge=self.instance.bridge,
            bridge_ip=spec.bridge_ip(),
            etcd_endpoints=spec.etcd_endpoints(),
            etcd_members=spec.etcd_members,
            cgroup=str(host.cgroup2_root() / self.instance.cgroup_name),
            disks=str(self.state_dir / "disks"),
            token=(tokens.get("machine") or secrets.token_urlsafe(32)) if spec.auth else None,
            fleetd=spec.fleetd,
            spec=dataclasses.asdict(spec),
            binds=installed.binds,
            secure=spec.secure,
            tokens=tokens,
        )
        st.save(self.state_dir, state)
        state = self._save(dataclasses.replace(state, disks_mounted=True))
        Path(state.disks).mkdir(parents=True, exist_ok=True)
        host.run(["mount", "-t", "tmpfs", "-o", "mode=700", "fleetd-sandbox", state.disks])
        say(f"bridge {state.bridge} {state.bridge_ip}/{spec.network.prefixlen}")
        network.create_bridge(state.bridge, state.bridge_ip, spec.network.prefixlen)
        if spec.secure:
            say("PKI: CA, machine and client certificates; tokens per role")
            security.make_pki(
                self.state_dir, {n: spec.machine_ip(n) for n in spec.names}, state.bridge_ip
            )
        if spec.etcd_members == 1:
            pid = etcd.start_host_member(
                state.bridge_ip,
                Path(state.disks) / "etcd",
                Path(state.cgroup) / "etcd",
                self.state_dir / "etcd.log",
                security.host_etcd_tls(self.state_dir) if spec.secure else None,
            )
            state = self._save(dataclasses.replace(state, etcd_pid=pid))
        for name in spec.names:
            ms = MachineState(
                name=name,
                ip=spec.machine_ip(name),
                machine_id=uuid.uuid4().hex,
                netns=f"{self.instance.prefix}{name}",
                veth=f"{self.instance.prefix}{name}",
            )
            state = self._save(state.with_machine(ms))
            network.create_machine_net(
                state.bridge, ms.netns, ms.veth, ms.ip, spec.network.prefixlen, state.bridge_ip
            )
            extra = None
            if spec.secure:
                extra = security.machine_files(self.state_dir, name)
                extra[TOKENS_FILE] = (security.tokens_file(tokens), 0o600)
            files, enabled = seed.machine_files(spec, ms, state.token, installed.fleetd, extra)
            seed.write_seed(
                self._machine_dir(name) / "seed",
                files=files,
                masked=seed.masked_units(),
                enabled=enabled,
            )
        say(f"booting {len(spec.names)} machines")
        for name in spec.names:
            self._launch(name)
        self._wait_booted(spec.names, deadline)
        say(f"etcd {','.join(state.etcd_endpoints)}")
        access = self.etcd_access
        etcd.wait_healthy(state.etcd_endpoints, max(1.0, deadline - time.monotonic()), access)
        if access is not None:
            say("etcd: authentication on, fleetd may only touch the registry prefix")
            security.enable_auth(access, state.etcd_endpoints, Keys().prefix)
        if spec.fleetd:
            say("waiting for fleetd to register on every machine")
            self.wait_registered(spec.names, max(1.0, deadline - time.monotonic()))
        self._save(dataclasses.replace(self._state(), complete=True))

    def _machine_dir(self, name: str) -> Path:
        return self.state_dir / "machines" / name

    def _launch(self, name: str) -> None:
        state = self._state()
        ms = state.machine(name)
        launcher = machine.launch(
            name,
            self._machine_dir(name),
            Path(state.disks) / name,
            Path(state.cgroup) / name,
            ms.netns,
            install.boot_args(state.binds),
        )
        self._update(name, launcher_pid=launcher)

    def _wait_booted(self, names: Sequence[str], deadline: float) -> None:
        for name in names:
            state = self._state()
            ms = state.machine(name)
            assert ms.launcher_pid is not None
            pid = machine.find_systemd(ms.launcher_pid, self._machine_dir(name) / "boot.log")
            self._update(name, systemd_pid=pid)
        pids = {name: self._state().machine(name).systemd_pid or 0 for name in names}
        left = max(1.0, deadline - time.monotonic())
        with ThreadPoolExecutor(max_workers=min(16, len(names))) as pool:
            futures = [pool.submit(machine.wait_booted, n, pids[n], left) for n in names]
            for future in futures:
                future.result()

    def wait_registered(self, names: Sequence[str], timeout: float) -> None:
        """Wait until fleetd on each machine in ``names`` is up and has its key in etcd.

        fleetd is ``Type=notify`` and reports ready only once registered, so "active"
        also rules out a key left over from before a reboot.
        """
        state = self._state()
        prefix = Keys().machines
        wanted = {state.machine(n).machine_id: n for n in names}
        deadline = time.monotonic() + timeout
        missing = list(wanted)
        gave_up = False
        while time.monotonic() < deadline and not gave_up:
            try:
                present = set(etcd.keys(state.etcd_endpoints, prefix, access=self.etcd_access))
            except SandboxError:
                present = set()
            missing = [
                mid
                for mid in wanted
                if prefix + mid not in present or not self._fleetd_active(wanted[mid])
            ]
            if not missing:
                return
            # systemd stops restarting a fleetd that keeps crashing: no point waiting then.
            gave_up = any(self._fleetd_failed(wanted[mid]) for mid in missing)
            time.sleep(0.1)
        details = []
        for mid in missing:
            ms = state.machine(wanted[mid])
            out = self.exec(ms.name, "journalctl", "--no-pager", "-n", "20", "-u", FLEETD_UNIT)
            details.append(f"--- {ms.name} ({prefix}{mid}):\n{out.stdout.strip()}")
        where = ", ".join(wanted[m] for m in missing)
        why = "failed to start" if gave_up else f"did not register within {timeout:.0f}s"
        raise SandboxError(f"fleetd {why} on {where}:\n" + "\n".join(details))

    def _fleetd_active(self, name: str) -> bool:
        proc = self.exec(name, "systemctl", "is-active", "--quiet", FLEETD_UNIT, timeout=5)
        return proc.returncode == 0

    def _fleetd_failed(self, name: str) -> bool:
        proc = self.exec(name, "systemctl", "is-failed", "--quiet", FLEETD_UNIT, timeout=5)
        return proc.returncode == 0

    # --- queries ------------------------------------------------------------------------

    def _state(self) -> SandboxState:
        state = st.load(self.state_dir)
        if state is None:
            raise SandboxError(
                f"no {self.instance.label} is running (start one with `fleetd sandbox up`)"
            )
        return state

    def _save(self, state: SandboxState) -> SandboxState:
        st.save(self.state_dir, state)
        return state

    def _update(self, name: str, **changes: Any) -> None:
        """Change machine ``name``'s record in the state file as it is now: read, changed
        and written under the state's lock, so callers in other threads or processes (a
        sampler finding a machine's new PID 1 while a fault boots another) lose nothing."""
        self._edit(name, lambda ms: dataclasses.replace(ms, **changes))

    def _edit(self, name: str, change: Callable[[MachineState], MachineState]) -> None:
        """``_update`` with a change computed from the record as it is under the lock."""
        with st.locked(self.state_dir):
            state = self._state()
            st.save(self.state_dir, state.with_machine(change(state.machine(name))))

    @property
    def machines(self) -> tuple[MachineState, ...]:
        return self._state().machines

    def machine(self, name: str) -> MachineState:
        return self._state().machine(name)

    @property
    def etcd_endpoints(self) -> tuple[str, ...]:
        return self._state().etcd_endpoints

    @property
    def token(self) -> str | None:
        return self._state().token

    @property
    def api_endpoint(self) -> str:
        state = self._state()
        scheme = "https" if state.secure else "http"
        return f"{scheme}://{state.machines[0].ip}:{API_PORT}"

    @property
    def secure(self) -> bool:
        return self._state().secure

    @property
    def etcd_access(self) -> etcd.Access | None:
        """How to reach etcd as its root (``--secure``), None for a plain sandbox."""
        state = self._state()
        if not state.secure:
            return None
        return security.root_access(self.state_dir)

    def role_token(self, role: str) -> str:
        """The API token of ``role`` (read, operate, admin) of a ``--secure`` sandbox."""
        state = self._state()
        if not state.secure:
            raise SandboxError("only a --secure sandbox has tokens per role")
        if role not in ("read", "operate", "admin"):
            raise SandboxError(f"unknown role {role!r} (choose read, operate, admin)")
        return state.tokens[role]

    def env(self, role: str = "admin") -> dict[str, str]:
        """Environment for fleetctl on the host (REST endpoint, token, etcd endpoints); in a
        ``--secure`` sandbox the token of ``role`` and the CA, and for ``admin`` also the
        client certificate of etcd's root (``--driver etcd``)."""
        state = self._state()
        result = {
            "FLEETCTL_ENDPOINT": self.api_endpoint,
            "FLEETCTL_ETCD_ENDPOINTS": ",".join(self.etcd_endpoints),
        }
        if state.secure:
            pki = Pki(security.pki_dir(self.state_dir))
            result["FLEETCTL_TOKEN"] = self.role_token(role)
            result["FLEETCTL_CA_FILE"] = str(pki.ca_cert)
            if role == "admin":
                cert, key = pki.client("root")
                result["FLEETCTL_CERT_FILE"] = str(cert)
                result["FLEETCTL_KEY_FILE"] = str(key)
        elif self.token is not None:
            result["FLEETCTL_TOKEN"] = self.token
        return result

    def running(self, name: str) -> bool:
        return self.systemd_pid(name) is not None

    def boots(self, name: str) -> int:
        """How many times ``name`` was booted (``up`` and ``boot`` count, and every reboot)."""
        self.machine(name)  # an unknown name is an error
        return machine.boots(self._machine_dir(name))

    def systemd_pid(self, name: str) -> int | None:
        """The host PID of ``name``'s systemd now (None while off or between two boots).

        A reboot inside the machine gives it a new PID 1: the state file is updated."""
        state = self._state()
        ms = state.machine(name)
        if host.alive(ms.systemd_pid, "systemd"):
            return ms.systemd_pid
        pid = machine.current_systemd(ms.launcher_pid)
        if pid is not None:
            self._update(name, systemd_pid=pid)
        return pid

    def _pid(self, name: str) -> int:
        pid = self.systemd_pid(name)
        if pid is None:
            ms = self.machine(name)
            if host.alive(ms.launcher_pid, machine.LAUNCHER):
                raise SandboxError(f"machine {name} is rebooting")
            raise SandboxError(
                f"machine {name} is not running (boot it with `fleetd sandbox boot`)"
            )
        return pid

    def wait_rebooted(self, name: str, boots: int, timeout: float = 60.0) -> None:
        """Wait until ``name`` was booted more than ``boots`` times, is up again and (unless
        partitioned) its fleetd has registered."""
        deadline = time.monotonic() + timeout
        while self.boots(name) <= boots or self.systemd_pid(name) is None:
            if time.monotonic() >= deadline:
                raise SandboxError(
                    f"machine {name} did not boot again within {timeout:.0f}s "
                    f"(boots: {self.boots(name)})"
                )
            time.sleep(0.05)
        pid = self.systemd_pid(name)
        assert pid is not None
        machine.wait_booted(name, pid, max(1.0, deadline - time.monotonic()))
        state = self._state()
        if state.fleetd and not state.machine(name).partitioned:
            self.wait_registered([name], max(1.0, deadline - time.monotonic()))

    def exec(
        self, name: str, *cmd: str, timeout: float = 60.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` inside machine ``name``; output captured, return code not checked."""
        return machine.run_in(self._pid(name), cmd, timeout=timeout, input=input)

    def command(self, name: str, *cmd: str) -> list[str]:
        """argv that runs ``cmd`` inside ``name`` (for interactive use)."""
        return machine.command(self._pid(name), cmd)

    def status(self) -> SandboxStatus:
        """Machines (running, systemd and fleetd state, registered), etcd health."""
        return collect(
            self._state(), self.api_endpoint, self.state_dir / "machines", self.etcd_access
        )

    # --- fault injection --------------------------------------------------------------

    def partition(self, name: str) -> None:
        """Cut ``name`` off the bridge (host end of its veth down); it keeps running."""
        state = self._state()
        ms = state.machine(name)
        network.set_link(ms.veth, up=False)
        self._update(name, partitioned=True)

    def hosts_member(self, name: str) -> bool:
        """Whether ``name`` runs an etcd member (m1..m3 with ``--etcd-members 3``)."""
        return any(f"//{self.machine(name).ip}:" in e for e in self.etcd_endpoints)

    def cut(self, name: str, cut: Cut) -> None:
        """Cut only etcd's client or peer traffic of ``name`` (``cuts.py``); `heal` undoes it."""
        if cut is Cut.ETCD_PEERS and not self.hosts_member(name):
            raise SandboxError(f"machine {name} runs no etcd member (see --etcd-members)")
        # The cuts as recorded under the lock: one made meanwhile elsewhere is kept.
        self._edit(
            name,
            lambda ms: dataclasses.replace(
                ms, cuts=(*[c for c in ms.cuts if c != cut.value], cut.value)
            ),
        )
        cuts.apply(self.machine(name).netns, cut)

    def heal(self, name: str) -> None:
        """Undo every partition and cut of ``name``."""
        state = self._state()
        ms = state.machine(name)
        network.set_link(ms.veth, up=True)
        for cut in Cut:
            cuts.remove(ms.netns, cut)
        others = [m.netns for m in state.machines if m.name != name]
        network.forget_neighbours(state.bridge, ms.netns, others, ms.ip)
        self._update(name, partitioned=False, cuts=())

    def poweroff(self, name: str, timeout: float = 15.0) -> None:
        """systemd power-off of ``name`` (SIGRTMIN+4); its disk and network stay for `boot`."""
        if not self.running(name):
            raise SandboxError(f"machine {name} is not running")
        state = self._state()
        ms = state.machine(name)
        machine.poweroff(ms.launcher_pid, timeout)
        host.cgroup_remove(Path(state.cgroup) / name)
        self._update(name, launcher_pid=None, systemd_pid=None)

    def boot(self, name: str, timeout: float = 60.0) -> None:
        """Boot a powered-off machine again: same machine id, disk, address and config.

        Waits for fleetd to register, unless the machine is partitioned (it cannot).
        """
        deadline = time.monotonic() + timeout
        state = self._state()
        ms = state.machine(name)
        if host.alive(ms.launcher_pid, machine.LAUNCHER):
            raise SandboxError(f"machine {name} is already running")
        self._launch(name)
        self._wait_booted([name], deadline)
        if state.fleetd and not ms.partitioned:
            self.wait_registered([name], max(1.0, deadline - time.monotonic()))

    def kill_fleetd(self, name: str) -> None:
        """SIGKILL fleetd's main process inside ``name`` (systemd restarts it)."""
        proc = self.exec(
            name, "systemctl", "kill", "--signal=KILL", "--kill-whom=main", FLEETD_UNIT
        )
        if proc.returncode != 0:
            raise SandboxError(f"cannot kill fleetd on {name}: {proc.stderr.strip()}")
