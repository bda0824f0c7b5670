"""Which host units a sandbox machine masks (fleetd/sandbox/seed.py): host services that
would bind the host's ports or start daemons inside every machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetd.sandbox import seed


def test_host_services_found_in_the_unit_directories_are_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [
        "etcd.service",
        "postgresql@.service",
        "libvirtd.socket",
        "virtlogd.service",
        "dnsmasq.service",
        "sshd.service",
        "myapp.service",
        "systemd-logind.service",
    ]
    for name in names:
        (tmp_path / name).write_text("")
    monkeypatch.setattr(seed, "UNIT_DIRS", (tmp_path, tmp_path / "absent"))
    masked = set(seed.masked_units())
    assert set(names) - masked == {"myapp.service", "systemd-logind.service"}
    assert set(seed.MASKED) <= masked
