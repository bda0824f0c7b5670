"""The sandbox network: one bridge on the host, one netns + veth pair per machine.

The host end of a machine's veth is named like its netns (``fleetd-m1``);
the machine end is ``eth0`` inside the netns.  Partitioning a machine sets
the host end down, which cuts it off from the bridge (etcd, the other
machines, the host) while the machine keeps running.
"""

from __future__ import annotations

import ipaddress
import json
import re

from fleetd.errors import SandboxError
from fleetd.sandbox.host import run
from fleetd.sandbox.state import BRIDGE, PREFIX

# Only names this pattern matches are ever removed without a state file saying so.
OWNED = re.compile(rf"^{re.escape(PREFIX)}(m\d+|br0)$")


def check_subnet_free(subnet: str) -> None:
    """Raise SandboxError when ``subnet`` overlaps an address or route of the host."""
    network = ipaddress.IPv4Network(subnet)
    routes = json.loads(run(["ip", "-j", "-4", "route", "show", "table", "all"]).stdout or "[]")
    for route in routes:
        dst = route.get("dst", "")
        if dst in ("", "default") or route.get("type") in ("broadcast", "local"):
            continue
        try:
            other = ipaddress.IPv4Network(dst, strict=False)
        except ValueError:
            continue
        if other.overlaps(network) and route.get("dev") != BRIDGE:
            raise SandboxError(
                f"address range {subnet} is in use on this host (route {dst} via "
                f"{route.get('dev', '?')}); choose another with --subnet"
            )
    addrs = json.loads(run(["ip", "-j", "-4", "addr", "show"]).stdout or "[]")
    for link in addrs:
        for info in link.get("addr_info", []):
            if ipaddress.IPv4Address(info["local"]) in network and link["ifname"] != BRIDGE:
                raise SandboxError(
                    f"address range {subnet} is in use on this host ({info['local']} on "
                    f"{link['ifname']}); choose another with --subnet"
                )


def create_bridge(ip: str, prefixlen: int) -> None:
    run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    run(["ip", "addr", "add", f"{ip}/{prefixlen}", "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])


def create_machine_net(netns: str, veth: str, ip: str, prefixlen: int, gateway: str) -> None:
    """A netns with lo up and ``eth0`` at ``ip``, its peer ``veth`` on the bridge."""
    run(["ip", "netns", "add", netns])
    run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns])
    run(["ip", "link", "set", veth, "master", BRIDGE, "up"])
    run(["ip", "-n", netns, "addr", "add", f"{ip}/{prefixlen}", "dev", "eth0"])
    run(["ip", "-n", netns, "link", "set", "lo", "up"])
    run(["ip", "-n", netns, "link", "set", "eth0", "up"])
    run(["ip", "-n", netns, "route", "add", "default", "via", gateway])


def set_link(veth: str, up: bool) -> None:
    run(["ip", "link", "set", veth, "up" if up else "down"])


def forget_neighbours(netns: str, others: list[str], ip: str) -> None:
    """Drop ARP entries that failed while a machine was cut off, so traffic resumes at once."""
    run(["ip", "-n", netns, "neigh", "flush", "dev", "eth0"], check=False)
    run(["ip", "neigh", "flush", "dev", BRIDGE, "to", ip], check=False)
    for other in others:
        run(["ip", "-n", other, "neigh", "flush", "dev", "eth0", "to", ip], check=False)


def link_up(veth: str) -> bool:
    out = run(["ip", "-j", "link", "show", "dev", veth], check=False).stdout
    links = json.loads(out or "[]")
    return bool(links) and "UP" in links[0].get("flags", [])


def netns_names() -> list[str]:
    out = run(["ip", "-j", "netns", "list"], check=False).stdout
    return [entry["name"] for entry in json.loads(out or "[]")]


def link_names() -> list[str]:
    out = run(["ip", "-j", "link", "show"]).stdout
    return [link["ifname"] for link in json.loads(out or "[]")]


def owned_netns() -> list[str]:
    return [name for name in netns_names() if OWNED.match(name)]


def owned_links() -> list[str]:
    return [name for name in link_names() if OWNED.match(name)]


def delete_netns(netns: str) -> None:
    """Delete ``netns`` (its eth0 and with it the veth pair go too); absent is fine."""
    if netns in netns_names():
        run(["ip", "netns", "delete", netns])


def delete_link(name: str) -> None:
    if name in link_names():
        run(["ip", "link", "delete", name])
