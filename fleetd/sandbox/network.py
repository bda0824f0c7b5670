"""The sandbox network: one bridge on the host, one netns + veth pair per machine.

The host end of a machine's veth is named like its netns (e.g. ``fleetd-m1``);
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

# Candidates for an automatically chosen sandbox network.
AUTO_SUBNETS = tuple(f"10.87.{n}.0/24" for n in range(256))


def owned(prefix: str) -> re.Pattern[str]:
    """Names a sandbox with ``prefix`` creates; only these are removed without state."""
    return re.compile(rf"^{re.escape(prefix)}(m\d+|br0)$")


def _conflict(network: ipaddress.IPv4Network) -> str | None:
    """What on this host already uses ``network`` (a route or an address), if anything."""
    routes = json.loads(run(["ip", "-j", "-4", "route", "show", "table", "all"]).stdout or "[]")
    for route in routes:
        dst = route.get("dst", "")
        if dst in ("", "default") or route.get("type") in ("broadcast", "local"):
            continue
        try:
            other = ipaddress.IPv4Network(dst, strict=False)
        except ValueError:
            continue
        if other.overlaps(network):
            return f"route {dst} via {route.get('dev', '?')}"
    addrs = json.loads(run(["ip", "-j", "-4", "addr", "show"]).stdout or "[]")
    for link in addrs:
        for info in link.get("addr_info", []):
            if ipaddress.IPv4Address(info["local"]) in network:
                return f"{info['local']} on {link['ifname']}"
    return None


def check_subnet_free(subnet: str) -> None:
    """Raise SandboxError when ``subnet`` overlaps an address or route of the host."""
    used = _conflict(ipaddress.IPv4Network(subnet))
    if used:
        raise SandboxError(
            f"address range {subnet} is in use on this host ({used}); choose another with --subnet"
        )


def free_subnet() -> str:
    """The first of 10.87.0.0/24, 10.87.1.0/24, ... that nothing on the host uses."""
    for subnet in AUTO_SUBNETS:
        if _conflict(ipaddress.IPv4Network(subnet)) is None:
            return subnet
    raise SandboxError("every 10.87.N.0/24 is in use on this host; choose a range with --subnet")


def create_bridge(bridge: str, ip: str, prefixlen: int) -> None:
    run(["ip", "link", "add", bridge, "type", "bridge"])
    run(["ip", "addr", "add", f"{ip}/{prefixlen}", "dev", bridge])
    run(["ip", "link", "set", bridge, "up"])


def create_machine_net(
    bridge: str, netns: str, veth: str, ip: str, prefixlen: int, gateway: str
) -> None:
    """A netns with lo up and ``eth0`` at ``ip``, its peer ``veth`` on ``bridge``."""
    run(["ip", "netns", "add", netns])
    run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns])
    run(["ip", "link", "set", veth, "master", bridge, "up"])
    run(["ip", "-n", netns, "addr", "add", f"{ip}/{prefixlen}", "dev", "eth0"])
    run(["ip", "-n", netns, "link", "set", "lo", "up"])
    run(["ip", "-n", netns, "link", "set", "eth0", "up"])
    run(["ip", "-n", netns, "route", "add", "default", "via", gateway])


def set_link(veth: str, up: bool) -> None:
    run(["ip", "link", "set", veth, "up" if up else "down"])


def forget_neighbours(bridge: str, netns: str, others: list[str], ip: str) -> None:
    """Drop ARP entries that failed while a machine was cut off, so traffic resumes at once."""
    run(["ip", "-n", netns, "neigh", "flush", "dev", "eth0"], check=False)
    run(["ip", "neigh", "flush", "dev", bridge, "to", ip], check=False)
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


def owned_netns(prefix: str) -> list[str]:
    pattern = owned(prefix)
    return [name for name in netns_names() if pattern.match(name)]


def owned_links(prefix: str) -> list[str]:
    pattern = owned(prefix)
    return [name for name in link_names() if pattern.match(name)]


def delete_netns(netns: str) -> None:
    """Delete ``netns`` (its eth0 and with it the veth pair go too); absent is fine."""
    if netns in netns_names():
        run(["ip", "netns", "delete", netns])


def delete_link(name: str) -> None:
    if name in link_names():
        run(["ip", "link", "delete", name])
