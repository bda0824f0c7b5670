"""What is copied over a machine's root on every boot: identity, fleet config, units, masks.

``seed/`` holds the machine-id, hostname, /etc/hosts, /etc/fleet/fleet.conf and
the API token, the fleetd unit (and an etcd member unit on m1..m3 of a
3-member layout), and ``/dev/null`` links that mask host units.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fleetd.sandbox import etcd, host, security
from fleetd.sandbox.spec import SandboxSpec
from fleetd.sandbox.state import MachineState

TOKEN_FILE = "/etc/fleet/api-token"  # noqa: S105 (a path, not a secret)
FLEETD_UNIT = "fleetd.service"

# Units that would clash with the host, touch host-global state (clock, sysctls,
# devices, disks) or wait for hardware that a sandbox machine does not have.
MASKED = (
    "getty.target",
    "console-getty.service",
    "getty@tty1.service",
    "serial-getty@ttyS0.service",
    "systemd-udevd.service",
    "systemd-udevd-control.socket",
    "systemd-udevd-kernel.socket",
    "systemd-udev-trigger.service",
    "systemd-udev-settle.service",
    "systemd-sysctl.service",
    "systemd-modules-load.service",
    "systemd-timesyncd.service",
    "systemd-networkd.service",
    "systemd-networkd.socket",
    "systemd-networkd-wait-online.service",
    "systemd-binfmt.service",
    "systemd-remount-fs.service",
    "systemd-fsck-root.service",
    "systemd-pstore.service",
    "systemd-firstboot.service",
    "systemd-hwdb-update.service",
    "systemd-journald-audit.socket",
    "e2scrub_reap.service",
    "e2scrub_all.timer",
    "fstrim.timer",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "man-db.timer",
    "dpkg-db-backup.timer",
    "logrotate.timer",
)
# Host services (any unit whose name starts with one of these) are masked too:
# they would bind ports or run jobs meant for the host.
MASKED_PREFIXES = (
    "etcd", "postgresql", "redis", "nginx", "apache2", "httpd", "docker", "containerd",
    "ssh", "mysql", "mariadb", "memcached", "rabbitmq", "mongod", "cron", "anacron",
    "networking", "ifup", "NetworkManager", "dhcpcd", "wpa_supplicant", "ModemManager",
    "avahi", "cloud-", "unattended-upgrades", "chrony", "ntp", "qemu-guest-agent",
    "libvirt", "virt", "dnsmasq",
)  # fmt: skip
UNIT_DIRS = (
    Path("/lib/systemd/system"),
    Path("/etc/systemd/system"),
    Path("/usr/lib/systemd/system"),
)


def masked_units() -> list[str]:
    names = set(MASKED)
    for directory in UNIT_DIRS:
        if directory.is_dir():
            for entry in directory.iterdir():
                if entry.name.startswith(MASKED_PREFIXES) and "." in entry.name:
                    names.add(entry.name)
    return sorted(names)


@dataclass(frozen=True, slots=True)
class SeedFile:
    path: str  # absolute path inside the machine
    text: str
    mode: int = 0o644


def write_seed(
    seed: Path,
    *,
    files: Sequence[SeedFile],
    masked: Sequence[str],
    enabled: Sequence[str],
) -> None:
    """Lay out ``seed/`` (files, masks, ``multi-user.target.wants`` links) afresh."""
    host.run(["rm", "-rf", str(seed)])
    units = seed / "etc/systemd/system"
    (units / "multi-user.target.wants").mkdir(parents=True)
    for item in files:
        target = seed / item.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(item.text)
        os.chmod(target, item.mode)
    for unit in masked:
        (units / unit).symlink_to("/dev/null")
    for unit in enabled:
        (units / "multi-user.target.wants" / unit).symlink_to(f"/etc/systemd/system/{unit}")


def command(path: Path) -> str:
    """``path`` as the command word of a unit's ``Exec*=`` line (systemd.service(5)).

    Quoted when it has a space, quote or backslash; ``%`` and ``$`` doubled
    (specifiers, variables).  Control characters cannot be written at all
    (install.locate refuses such paths).
    """
    word = str(path).replace("%", "%%").replace("$", "$$")
    if any(char in word for char in " \t\"'\\"):
        word = '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return word


def machine_files(
    spec: SandboxSpec,
    ms: MachineState,
    token: str | None,
    fleetd_bin: Path,
    secure: dict[str, tuple[str, int]] | None = None,
) -> tuple[list[SeedFile], list[str]]:
    """The seed files of machine ``ms`` and the units to enable there; ``secure``: the
    PKI files and tokens file of ``--secure`` (path inside -> text, mode)."""
    hosts = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
    hosts += [f"{spec.machine_ip(n)} {n}" for n in spec.names]
    template = resources.files("fleetd.share").joinpath("fleetd.service").read_text()
    files = [
        SeedFile("/etc/machine-id", ms.machine_id + "\n", 0o444),
        SeedFile("/etc/hostname", ms.name + "\n"),
        SeedFile("/etc/hosts", "\n".join(hosts) + "\n"),
        SeedFile("/etc/fleet/fleet.conf", spec.fleet_conf(ms.name, TOKEN_FILE)),
        SeedFile(
            f"/etc/systemd/system/{FLEETD_UNIT}", template.replace("@FLEETD@", command(fleetd_bin))
        ),
    ]
    if token is not None:
        files.append(SeedFile(TOKEN_FILE, token + "\n", 0o600))
    for path, (text, mode) in (secure or {}).items():
        files.append(SeedFile(path, text, mode))
    enabled = [FLEETD_UNIT] if spec.fleetd else []
    members = [(n, spec.machine_ip(n)) for n in spec.names[:3]]
    if spec.etcd_members == 3 and ms.name in dict(members):
        tls = security.IN_MACHINE if spec.secure else None
        unit = etcd.member_unit(ms.name, ms.ip, members, tls)
        files.append(SeedFile(f"/etc/systemd/system/{etcd.MEMBER_UNIT}", unit))
        enabled.append(etcd.MEMBER_UNIT)
    return files, enabled
