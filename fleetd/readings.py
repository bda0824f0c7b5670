"""What ``/metrics`` reads of this process's engine and agent (api/collectors.py).

Adapters from the engine's and the agent's objects to the API's plain
readings: only this module knows where those values live, so the engine and
the agent can change shape without the API noticing.  Everything here is
read on the event loop, between the engine's and agent's own steps.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from fleetd.api.collectors import AgentReading, ClusterCounts, EngineReading

if TYPE_CHECKING:
    from fleetd.agent.agent import Agent
    from fleetd.engine.engine import Engine

UNKNOWN = "unknown"
"""The state of a unit the agent manages before systemd reported one."""


class EngineReadings:
    """``EngineView`` over an Engine: its ``EngineMetrics`` and, while it leads, its model."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def reading(self) -> EngineReading:
        m = self.engine.metrics
        return EngineReading(
            leader=bool(m.leader),
            leader_changes=m.leader_changes_total,
            full_passes=m.full_reconciles_total,
            scoped_passes=m.reconciles_total - m.full_reconciles_total,
            pass_seconds=m.reconcile_seconds_total,
            last_pass_seconds=m.reconcile_seconds,
            last_plan_seconds=m.plan_seconds,
            units_placed=m.placements_total,
            units_unscheduled=m.unschedules_total,
            unplaceable=m.unplaceable,
            tasks_applied=m.write_ops_total,
            write_transactions=m.write_transactions_total,
            fenced_writes=m.fenced_writes_total,
            guarded=m.guarded,
        )

    def cluster(self) -> ClusterCounts | None:
        engine = self.engine
        # The model is the cluster only while this engine leads and every mirror has
        # read its prefix (the engine's _loaded); a new term starts from an empty one.
        if not engine.metrics.leader or not engine._loaded.is_set():
            return None
        model = engine.model
        return ClusterCounts.count(
            desired=(spec.desired for spec in model.units.values()),
            machines=model.machines.values(),
            flags=model.flags.values(),
            unplaceable=len(model.placements),
            scheduled=len(model.schedule),
        )


def agent_reading(agent: Agent) -> AgentReading:
    """The agent's lease, the units it manages by ActiveState, its reconcile passes."""
    presence = agent.presence
    published = agent.publisher
    states = Counter(
        status.active_state if (status := published.statuses.get(name)) else UNKNOWN
        for name in published.hashes
    )
    return AgentReading(
        lease_ttl=presence.ttl,
        lease_age=presence.clock() - presence.last_renewed if presence.lease else None,
        units=states,
        passes=agent.reconciler.passes,
        errors=agent.reconciler.errors,
    )
