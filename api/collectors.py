"""What ``/metrics`` shows of this machine's agent, this process's engine and the cluster.

The API takes plain readings from callables (fleetd/readings.py adapts the
agent and engine objects to them) and turns them into metric families at
scrape time, so a scrape shows their values as of that moment and costs no
registry read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)

from fleetd.model import DesiredState, Machine, MachineFlags, SystemdLink


@dataclass(frozen=True, slots=True)
class AgentReading:
    """This machine's agent now.

    ``lease_age``: seconds since the last successful keep-alive of the machine's
    lease was sent (None: not registered); ``units``: the units the agent manages
    by systemd ActiveState (``unknown`` until systemd reported one); ``passes``:
    reconcile passes run, ``errors`` those that failed (and were retried).
    """

    lease_ttl: float
    lease_age: float | None
    units: Mapping[str, int]
    passes: int
    errors: int


@dataclass(frozen=True, slots=True)
class EngineReading:
    """This process's engine now (its counters count since the process started)."""

    leader: bool
    leader_changes: int
    full_passes: int
    scoped_passes: int
    pass_seconds: float  # all passes together: plan and writes
    last_pass_seconds: float
    last_plan_seconds: float
    units_placed: int  # schedule entries written for units placed
    units_unscheduled: int
    unplaceable: int  # as of the last pass
    tasks_applied: int
    write_transactions: int
    fenced_writes: int  # refused because leadership was lost
    guarded: int = 0  # units the mass-loss guard keeps on absent machines


@dataclass(frozen=True, slots=True)
class ClusterCounts:
    """Cluster-wide numbers, wherever they were counted (engine model or a registry read)."""

    units: Mapping[DesiredState, int]  # submitted units by desired state
    machines: int
    unschedulable: int  # cordoned or draining
    systemd_unreachable: int  # machines whose agent cannot reach systemd
    unplaceable: int  # units with a placement reason
    scheduled: int  # schedule entries (unit copies assigned to machines)

    @classmethod
    def count(
        cls,
        *,
        desired: Iterable[DesiredState],
        machines: Iterable[Machine],
        flags: Iterable[MachineFlags],
        unplaceable: int,
        scheduled: int,
    ) -> ClusterCounts:
        present = list(machines)
        return cls(
            units=Counter(desired),
            machines=len(present),
            unschedulable=sum(1 for f in flags if f.unschedulable or f.draining),
            systemd_unreachable=sum(1 for m in present if not m.systemd_connected),
            unplaceable=unplaceable,
            scheduled=scheduled,
        )


class EngineView(Protocol):
    """This process's engine as ``/metrics`` reads it."""

    def reading(self) -> EngineReading: ...

    def cluster(self) -> ClusterCounts | None:
        """The cluster as the engine's model has it; None unless it leads with the model
        loaded."""
        ...


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, value=value)


def _counter(name: str, text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, text, value=value)


class AgentCollector:
    """``fleetd_agent_*``: the connection to systemd, the lease, units here, passes."""

    def __init__(
        self,
        systemd: Callable[[], SystemdLink] | None,
        agent: Callable[[], AgentReading] | None,
    ) -> None:
        self._systemd = systemd
        self._agent = agent

    def collect(self) -> Iterator[Metric]:
        if self._systemd is not None:
            yield _gauge(
                "fleetd_agent_systemd_connected",
                "Whether this machine's agent reaches systemd.",
                int(self._systemd().connected),
            )
        if self._agent is None:
            return
        r = self._agent()
        yield _gauge("fleetd_agent_lease_ttl_seconds", "TTL of this machine's lease.", r.lease_ttl)
        if r.lease_age is not None:
            yield _gauge(
                "fleetd_agent_lease_age_seconds",
                "Seconds since the last successful keep-alive of this machine's lease.",
                r.lease_age,
            )
        units = GaugeMetricFamily(
            "fleetd_agent_units",
            "Units this machine's agent manages, by systemd ActiveState.",
            labels=("active",),
        )
        for state, n in sorted(r.units.items()):
            units.add_metric((state,), n)
        yield units
        yield _counter(
            "fleetd_agent_reconcile_passes", "Reconcile passes of this machine's agent.", r.passes
        )
        yield _counter(
            "fleetd_agent_reconcile_errors",
            "Reconcile passes of this machine's agent that failed (retried).",
            r.errors,
        )


class EngineCollector:
    """``fleetd_engine_*``: leadership, passes and what they applied."""

    def __init__(self, engine: EngineView) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        r = self._engine.reading()
        yield _gauge("fleetd_engine_leader", "Whether this process leads the engine.", r.leader)
        yield _counter(
            "fleetd_engine_leader_changes",
            "Times this process became the engine leader.",
            r.leader_changes,
        )
        passes = CounterMetricFamily(
            "fleetd_engine_passes",
            "Reconcile passes by kind: full (the whole model) or scoped (what changed).",
            labels=("kind",),
        )
        passes.add_metric(("full",), r.full_passes)
        passes.add_metric(("scoped",), r.scoped_passes)
        yield passes
        yield SummaryMetricFamily(
            "fleetd_engine_pass_seconds",
            "Time of reconcile passes: plan and writes.",
            count_value=r.full_passes + r.scoped_passes,
            sum_value=r.pass_seconds,
        )
        yield _gauge(
            "fleetd_engine_last_pass_seconds", "Time of the last pass.", r.last_pass_seconds
        )
        yield _gauge(
            "fleetd_engine_last_plan_seconds",
            "Time the last pass took to plan.",
            r.last_plan_seconds,
        )
        yield _counter("fleetd_engine_units_placed", "Units placed on machines.", r.units_placed)
        yield _counter(
            "fleetd_engine_units_unscheduled",
            "Unit copies taken off machines.",
            r.units_unscheduled,
        )
        yield _gauge(
            "fleetd_engine_units_unplaceable",
            "Units the last pass could not place.",
            r.unplaceable,
        )
        yield _gauge(
            "fleetd_engine_units_guarded",
            "Units the mass-loss guard keeps on absent machines (0: it holds none).",
            r.guarded,
        )
        yield _counter(
            "fleetd_engine_tasks_applied", "Tasks (registry writes) applied.", r.tasks_applied
        )
        yield _counter(
            "fleetd_engine_write_transactions",
            "Fenced transactions written.",
            r.write_transactions,
        )
        yield _counter(
            "fleetd_engine_fenced_writes",
            "Writes refused because leadership was lost.",
            r.fenced_writes,
        )


def cluster_families(counts: ClusterCounts | None, registry_up: bool) -> list[Metric]:
    """Cluster gauges (none when they could not be counted) and ``fleetd_registry_up``."""
    families: list[Metric] = [
        _gauge("fleetd_registry_up", "Whether the registry answered this scrape.", int(registry_up))
    ]
    if counts is None:
        return families
    units = GaugeMetricFamily(
        "fleetd_units", "Submitted units by desired state.", labels=("desired",)
    )
    for state in DesiredState:
        units.add_metric((state.value,), counts.units.get(state, 0))
    families += [
        units,
        _gauge("fleetd_machines", "Machines present in the cluster.", counts.machines),
        _gauge(
            "fleetd_machines_unschedulable", "Machines cordoned or draining.", counts.unschedulable
        ),
        _gauge(
            "fleetd_machines_systemd_unreachable",
            "Machines whose agent cannot reach systemd.",
            counts.systemd_unreachable,
        ),
        _gauge(
            "fleetd_units_unplaceable",
            "Units the engine could not place (with a placement reason).",
            counts.unplaceable,
        ),
        _gauge(
            "fleetd_scheduled_units",
            "Schedule entries (unit copies assigned to machines).",
            counts.scheduled,
        ),
    ]
    return families
