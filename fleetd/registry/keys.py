"""The registry key layout (docs/registry.md), pure.

Every key lives under a cluster prefix (default ``/fleet/``).  Per-machine
keys (``schedule/<machine>/``, ``states/<machine>/``) are grouped by machine
so that an agent watches only its own prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetd.errors import InvalidInput

SCHEMA_VERSION = 1


def segment(kind: str, value: str) -> str:
    """``value`` if it can be one path segment of a key (InvalidInput naming ``kind`` if not)."""
    if not value or "/" in value:
        raise InvalidInput(f"{kind} {value!r} cannot be used in a registry key (empty or '/')")
    return value


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "/fleet/"

    def __post_init__(self) -> None:
        if not self.prefix.startswith("/") or not self.prefix.endswith("/"):
            raise ValueError(f"registry prefix must start and end with '/': {self.prefix!r}")

    @property
    def version(self) -> str:
        return f"{self.prefix}version"

    # units/<name>: the submitted unit (text, hash, desired state)
    @property
    def units(self) -> str:
        return f"{self.prefix}units/"

    def unit(self, name: str) -> str:
        return f"{self.units}{name}"

    # schedule/<machine>/<name>: what a machine must run (engine, leader only)
    @property
    def schedule(self) -> str:
        return f"{self.prefix}schedule/"

    def machine_schedule(self, machine: str) -> str:
        return f"{self.schedule}{machine}/"

    def scheduled(self, machine: str, name: str) -> str:
        return f"{self.schedule}{machine}/{name}"

    # machines/<machine>: presence, under the machine lease (agent)
    @property
    def machines(self) -> str:
        return f"{self.prefix}machines/"

    def machine(self, machine: str) -> str:
        return f"{self.machines}{machine}"

    # states/<machine>/<name>: what systemd reports, under the machine lease (agent)
    @property
    def states(self) -> str:
        return f"{self.prefix}states/"

    def machine_states(self, machine: str) -> str:
        return f"{self.states}{machine}/"

    def state(self, machine: str, name: str) -> str:
        return f"{self.states}{machine}/{name}"

    # placement/<name>: why a unit is not placed (engine)
    @property
    def placements(self) -> str:
        return f"{self.prefix}placement/"

    def placement(self, name: str) -> str:
        return f"{self.placements}{name}"

    # machine-flags/<machine>: cordon / drain / metadata overrides (API)
    @property
    def machine_flags(self) -> str:
        return f"{self.prefix}machine-flags/"

    def machine_flag(self, machine: str) -> str:
        return f"{self.machine_flags}{machine}"

    # versions/<name>/<n>: the kept texts of a unit name (API writes, with the unit)
    @property
    def versions(self) -> str:
        return f"{self.prefix}versions/"

    def unit_versions(self, name: str) -> str:
        return f"{self.versions}{name}/"

    def unit_version(self, name: str, number: int) -> str:
        return f"{self.versions}{name}/{number}"

    # version-heads/<name>: the latest version number and hash of a unit name; it
    # outlives the unit, so numbers never repeat (API writes, with the unit)
    @property
    def version_heads(self) -> str:
        return f"{self.prefix}version-heads/"

    def version_head(self, name: str) -> str:
        return f"{self.version_heads}{name}"

    # rollouts/<unit>: the last rollout of a unit, its progress (API creates, engine leader
    # drives; both compare-and-swap)
    @property
    def rollouts(self) -> str:
        return f"{self.prefix}rollouts/"

    def rollout(self, unit: str) -> str:
        return f"{self.rollouts}{unit}"

    # maintenance/current: the current (or last) maintenance of machines (API creates,
    # engine leader drives; both compare-and-swap)
    @property
    def maintenance_prefix(self) -> str:
        return f"{self.prefix}maintenance/"

    @property
    def maintenance(self) -> str:
        return f"{self.maintenance_prefix}current"

    # machine-actions/<machine>: the action a machine's agent runs (engine leader asks,
    # the agent reports)
    @property
    def machine_actions(self) -> str:
        return f"{self.prefix}machine-actions/"

    def machine_action(self, machine: str) -> str:
        return f"{self.machine_actions}{machine}"

    # reboot-requests/<machine>: a machine asks for a reboot (its agent, or the API)
    @property
    def reboot_requests(self) -> str:
        return f"{self.prefix}reboot-requests/"

    def reboot_request(self, machine: str) -> str:
        return f"{self.reboot_requests}{machine}"

    # cluster/settings: settings of the whole cluster that operators tune at run time
    # (fleetd/clustersettings.py; the API writes them, every engine watches them)
    @property
    def cluster_settings(self) -> str:
        return f"{self.prefix}cluster/settings"

    # engine/guard: the leader's mass-loss guard while it holds, under the leader lease
    @property
    def guard(self) -> str:
        return f"{self.prefix}engine/guard"

    # engine/leader: leader machine id, under the leader lease (engine)
    @property
    def leader(self) -> str:
        return f"{self.prefix}engine/leader"

    def split(self, key: str, under: str) -> list[str]:
        """The path parts of ``key`` below the collection prefix ``under``."""
        if not key.startswith(under):
            raise ValueError(f"{key!r} is not under {under!r}")
        return key[len(under) :].split("/")
