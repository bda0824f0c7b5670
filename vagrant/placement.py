"""Where the example units run, checked against their constraints (used by test.sh).

    python3 placement.py MACHINES.json UNITS.json full
    python3 placement.py MACHINES.json UNITS.json moved VICTIM UNIT...

MACHINES.json and UNITS.json are `fleetctl -o json list-machines` and
`list-units`.  On success: exit 0 and one line `HOSTNAME UNIT` per unit
active on a machine.  Otherwise: exit 1 and one line saying what is not (yet)
so.  Standard library only.

full: the cluster of node1..node3 with every example unit started as
vagrant/README.md does, each placed as its constraints say (db.service on
node1, the only ssd machine with cores>=2; backup.service out of rack a, so
not on node1; monitor.service on every machine; cache@1..3 on three machines;
app-sidekick.service beside app.service; cleanup.timer beside
cleanup.service (loaded, started by the timer); bigmem.service placed nowhere, with
a reason).

moved: VICTIM has been halted; each UNIT (the units it ran that may move)
is active (cleanup.service: loaded) on another machine.
"""

import json
import sys

NODES = ("node1", "node2", "node3")
PLACED = (
    "hello.service",
    "db.service",
    "backup.service",
    "app.service",
    "app-sidekick.service",
    "singleton.service",
    "cache@1.service",
    "cache@2.service",
    "cache@3.service",
    "worker@1.service",
    "worker@2.service",
    "web@8081.service",
    "cleanup.timer",
)
# Loaded, not started: its timer starts it, beside it (MachineOf=cleanup.service).
LOADED = "cleanup.service"
GLOBAL = "monitor.service"
UNPLACEABLE = "bigmem.service"


class NotYet(Exception):
    """The cluster is not (yet) as expected; the message says how."""


def active(machines: list[dict], units: list[dict], loaded: bool = False) -> dict[str, list[str]]:
    """Unit name -> host names of the machines where it is active (or just loaded)."""
    hostnames = {m["id"]: m.get("hostname") or m["id"] for m in machines}
    where: dict[str, list[str]] = {}
    for unit in units:
        state = "loaded" if loaded else "active"
        field = "systemdLoadState" if loaded else "systemdActiveState"
        if unit.get("machineID") and unit.get(field) == state:
            host = hostnames.get(unit["machineID"], unit["machineID"])
            where.setdefault(unit["name"], []).append(host)
    return where


def one(where: dict[str, list[str]], name: str) -> str:
    hosts = where.get(name, [])
    if len(hosts) != 1:
        raise NotYet(f"{name} is active on {hosts or 'no machine'}, not on exactly one")
    return hosts[0]


def check_full(machines: list[dict], units: list[dict]) -> None:
    hosts = sorted(m.get("hostname") for m in machines)
    if hosts != list(NODES):
        raise NotYet(f"machines {hosts}, not {list(NODES)}")
    where = active(machines, units)
    placed = {name: one(where, name) for name in PLACED}
    if sorted(where.get(GLOBAL, [])) != list(NODES):
        raise NotYet(f"{GLOBAL} (global) is active on {sorted(where.get(GLOBAL, []))}")
    if placed["db.service"] != "node1":
        raise NotYet(f"db.service is on {placed['db.service']}, not node1 (disk=ssd, cores>=2)")
    if placed["backup.service"] == "node1":
        raise NotYet("backup.service is on node1, in rack a (MachineMetadata=rack!=a)")
    caches = [placed[f"cache@{i}.service"] for i in (1, 2, 3)]
    if len(set(caches)) != 3:
        raise NotYet(f"cache@1..3 share machines: {caches} (Conflicts=cache@*.service)")
    if placed["app-sidekick.service"] != placed["app.service"]:
        raise NotYet("app-sidekick.service is not beside app.service (MachineOf=app.service)")
    if one(active(machines, units, loaded=True), LOADED) != placed["cleanup.timer"]:
        raise NotYet(f"cleanup.timer is not beside {LOADED} (MachineOf={LOADED})")
    bigmem = [u for u in units if u["name"] == UNPLACEABLE]
    if not bigmem or any(u.get("machineID") for u in bigmem) or not bigmem[0].get("reason"):
        raise NotYet(f"{UNPLACEABLE} should be placed nowhere, with a reason: {bigmem}")


def check_moved(machines: list[dict], units: list[dict], victim: str, moved: list[str]) -> None:
    where = active(machines, units)
    loaded = active(machines, units, loaded=True)
    for name in moved:
        host = one(loaded if name == LOADED else where, name)
        if host == victim:
            raise NotYet(f"{name} is still active on {victim}")


def main(argv: list[str]) -> int:
    with open(argv[1]) as file:
        machines = json.load(file)
    with open(argv[2]) as file:
        units = json.load(file)
    try:
        if argv[3] == "full":
            check_full(machines, units)
        elif argv[3] == "moved":
            check_moved(machines, units, argv[4], argv[5:])
        else:
            raise SystemExit(f"placement.py: unknown check {argv[3]}")
    except NotYet as error:
        print(error)
        return 1
    for name, hosts in sorted(active(machines, units).items()):
        for host in hosts:
            print(host, name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
