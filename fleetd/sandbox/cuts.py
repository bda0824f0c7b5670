"""Partial partitions inside one machine: etcd's client or peer traffic cut, nothing else.

``partition`` cuts a whole machine off the bridge.  With ``--etcd-members 3`` the
members live inside m1..m3, so that also takes a member away; these cuts separate
the two.  Each is a policy-routing rule in the machine's network namespace that
blackholes the TCP traffic it names, for packets the machine sends (``iif lo``):

- ``ETCD_CLIENTS``: nothing in the machine reaches any etcd member's client port
  (its fleetd is cut off from etcd); the machine's own member still serves others
  and stays in its cluster.
- ``ETCD_PEERS``: the machine's etcd member neither sends to nor answers its peers
  (it falls out of the cluster); the machine, its fleetd and the member's client
  port stay reachable.

New connections fail at once (as with an ICMP unreachable); established ones stall,
their segments dropped, as in a partition.  The rules precede the ``local`` table
(moved from priority 0 to ``LOCAL_PREF``), so traffic to the machine's own address
is cut too.  They live in the netns, so they survive a power-off and boot and go
with ``down``.
"""

from __future__ import annotations

import enum
import json

from fleetd.sandbox.host import run
from fleetd.sandbox.spec import ETCD_CLIENT_PORT, ETCD_PEER_PORT

LOCAL_PREF = 100


class Cut(enum.Enum):
    ETCD_CLIENTS = "etcd-clients"
    ETCD_PEERS = "etcd-peers"


# (priority, selector) of each cut's rules; a priority names one rule.
_RULES: dict[Cut, tuple[tuple[int, tuple[str, ...]], ...]] = {
    Cut.ETCD_CLIENTS: ((40, ("dport", str(ETCD_CLIENT_PORT))),),
    Cut.ETCD_PEERS: (
        (41, ("dport", str(ETCD_PEER_PORT))),
        (42, ("sport", str(ETCD_PEER_PORT))),
    ),
}


def _prefs(netns: str) -> set[int]:
    out = run(["ip", "-j", "-n", netns, "rule", "show"]).stdout
    return {int(rule["priority"]) for rule in json.loads(out or "[]")}


def _local_moved(netns: str, prefs: set[int]) -> None:
    """The ``local`` lookup after the cuts' rules (idempotent)."""
    if LOCAL_PREF not in prefs:
        run(["ip", "-n", netns, "rule", "add", "pref", str(LOCAL_PREF), "lookup", "local"])
    if 0 in prefs:
        run(["ip", "-n", netns, "rule", "del", "pref", "0"])


def apply(netns: str, cut: Cut) -> None:
    """Add ``cut``'s rules in ``netns`` (those already there are kept)."""
    prefs = _prefs(netns)
    _local_moved(netns, prefs)
    for pref, selector in _RULES[cut]:
        if pref not in prefs:
            rule = ["pref", str(pref), "iif", "lo", "ipproto", "tcp", *selector, "blackhole"]
            run(["ip", "-n", netns, "rule", "add", *rule])


def remove(netns: str, cut: Cut) -> None:
    """Remove ``cut``'s rules from ``netns`` (absent ones are fine)."""
    prefs = _prefs(netns)
    for pref, _ in _RULES[cut]:
        if pref in prefs:
            run(["ip", "-n", netns, "rule", "del", "pref", str(pref)])
