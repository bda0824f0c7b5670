"""The engine's settings (from the fleetd configuration) and the metrics it publishes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from fleetd import clustersettings
from fleetd.clustersettings import ClusterSettings, Value
from fleetd.config import Config
from fleetd.engine.guard import GuardSettings
from fleetd.engine.index import Strategy
from fleetd.maintenance.plan import Timeouts
from fleetd.requirements import ReservationDefaults


@dataclass(slots=True)
class EngineMetrics:
    """What the engine counts; ``/metrics`` shows it as ``fleetd_engine_*`` (read through
    fleetd/readings.py, named in api/README.md).

    Only the engine writes these; everyone else reads.
    """

    leader: int = 0  # 1 while this process leads
    leader_changes_total: int = 0  # times this process became leader
    placements_total: int = 0
    unschedules_total: int = 0
    unplaceable: int = 0  # units the last pass could not place
    reconciles_total: int = 0
    full_reconciles_total: int = 0  # passes over the whole model (safety pass, timers)
    reconcile_seconds: float = 0.0  # the last pass: plan and writes
    reconcile_seconds_total: float = 0.0
    plan_seconds: float = 0.0  # the last pass: plan only
    write_ops_total: int = 0
    write_transactions_total: int = 0
    fenced_writes_total: int = 0  # writes refused because leadership was lost
    guarded: int = 0  # units the mass-loss guard keeps on absent machines (last full pass)


@dataclass(frozen=True, slots=True)
class EngineSettings:
    strategy: Strategy = Strategy.BINPACK
    defaults: ReservationDefaults = field(default_factory=ReservationDefaults)
    leader_ttl: int = 10
    at_most_once_grace: float = 5.0
    interval: float = 2.0  # least time between two safety passes
    safety_budget: float = 0.01  # share of a core a safety pass may use (stretches it)
    idle_interval: float = 600.0  # safety pass when nothing changed since one found nothing
    debounce: float = 0.005
    drain_batch: int = 10
    drain_interval: float = 5.0
    stop_poll: float = 0.5  # how often to look whether a moved AtMostOnce unit stopped
    move_poll: float = 0.2  # how often to look whether units moving start-first are up
    start_first_timeout: float = 300.0  # deadline of a start-first move (engine/handover.py)
    plan_in_thread: bool = True
    write_concurrency: int = 8  # fenced transactions in flight at once
    guard: GuardSettings = field(default_factory=GuardSettings)  # the mass-loss guard
    maintenance_timeouts: Timeouts = field(default_factory=Timeouts)


def settings_from_config(config: Config) -> EngineSettings:
    """Engine settings for a fleetd configured by ``config``.

    The leader lease is a third of the agent TTL (10 s by default), so a new
    leader takes over well before lost machines' units are due to move; the
    AtMostOnce grace is a sixth of the agent TTL (5 s by default).  The mass-loss
    guard's window is the agent TTL and it holds a TTL plus ``guard_grace``.
    """
    ttl = config.agent_ttl
    return EngineSettings(
        strategy=Strategy(config.scheduler_strategy),
        defaults=ReservationDefaults(
            config.default_cpu_reservation_millis, config.default_memory_reservation_bytes
        ),
        leader_ttl=max(2, int(config.agent_ttl // 3)),
        at_most_once_grace=max(1.0, config.agent_ttl / 6),
        interval=config.engine_reconcile_interval,
        start_first_timeout=config.start_first_timeout,
        guard=GuardSettings(window=ttl, hold=ttl + GUARD_GRACE),
    )


GUARD_GRACE = 5.0
"""How long after a TTL the mass-loss guard still waits for machines to register again."""


def cluster_defaults(base: EngineSettings) -> dict[str, Value]:
    """What each cluster setting is when not set, for an engine configured as ``base``."""
    return {
        "strategy": base.strategy.value,
        "max_unavailable": clustersettings.MAX_UNAVAILABLE,
        "guard_machines": base.guard.machines,
        "guard_share": base.guard.share,
        "guard_window": base.guard.window,
        "guard_hold": base.guard.hold,
    }


def with_cluster(base: EngineSettings, cluster: ClusterSettings) -> EngineSettings:
    """``base`` (from the configuration) with the cluster settings that are set."""
    g = base.guard
    guard = GuardSettings(
        share=g.share if cluster.guard_share is None else cluster.guard_share,
        machines=g.machines if cluster.guard_machines is None else cluster.guard_machines,
        window=g.window if cluster.guard_window is None else cluster.guard_window,
        hold=g.hold if cluster.guard_hold is None else cluster.guard_hold,
    )
    strategy = base.strategy if cluster.strategy is None else Strategy(cluster.strategy)
    return replace(base, strategy=strategy, guard=guard)
