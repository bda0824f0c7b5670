"""Wire models: fleet's v1 JSON names, plus the extensions (documented as such).

fleet's entities (``Unit``, ``UnitOption``, ``UnitState``, ``Machine`` and
their pages) keep fleet's field names so that fleet's clients decode them.
Extension fields are optional additions that fleet's clients ignore.  Empty
optional fields are left out of responses, as Go's ``omitempty`` did.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fleetd import clustersettings

DesiredStateName = Literal["inactive", "loaded", "launched"]


# journalctl's --output modes (systemd 252); fleetctl journal --output passes one through.
JournalOutput = Literal[
    "short", "short-full", "short-iso", "short-iso-precise", "short-precise",
    "short-monotonic", "short-delta", "short-unix", "verbose", "export", "json",
    "json-pretty", "json-sse", "json-seq", "cat", "with-unit",
]  # fmt: skip
JOURNAL_OUTPUTS: tuple[str, ...] = get_args(JournalOutput)


class Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class UnitOption(Wire):
    """One option of a unit file: ``[section] name=value``."""

    section: str = Field(min_length=1, max_length=256)
    name: str = Field(max_length=256, description="may be empty, as fleet allowed (a warning)")
    value: str = ""


class UnitRequest(Wire):
    """Body of ``PUT /units/{name}``.

    Creating needs ``options`` (``desiredState`` defaults to ``inactive``);
    changing an existing unit needs ``desiredState``.  ``currentState`` and
    ``machineID`` are accepted and ignored, as fleet did.
    """

    name: str | None = Field(default=None, max_length=1024)
    options: list[UnitOption] | None = Field(default=None, max_length=10_000)
    desiredState: DesiredStateName | Literal[""] | None = None
    currentState: str | None = None
    machineID: str | None = None


class Unit(Wire):
    name: str
    options: list[UnitOption]
    desiredState: DesiredStateName
    currentState: DesiredStateName
    machineID: str | None = Field(
        default=None, description="machine the unit is scheduled to (absent if none)"
    )
    hash: str | None = Field(default=None, description="extension: SHA-1 of the unit file")
    reason: str | None = Field(
        default=None, description="extension: why the unit is not placed (absent if placed)"
    )


class UnitPage(Wire):
    units: list[Unit]
    nextPageToken: str | None = None


class UnitState(Wire):
    name: str
    hash: str
    machineID: str
    systemdLoadState: str
    systemdActiveState: str
    systemdSubState: str
    health: Literal["healthy", "unhealthy", "unknown"] | None = Field(
        default=None,
        description="extension: healthy (active and its HealthCheck= passed, or it has none), "
        "unhealthy (active and its check failed after HealthCheckGrace=), unknown (not active, "
        "not yet checked, or failing within the grace period)",
    )
    healthMessage: str | None = Field(
        default=None,
        description="extension: the last failed check's message while not healthy (absent if none)",
    )
    healthSince: str | None = Field(
        default=None,
        description="extension: when the health took its value, RFC 3339 in UTC "
        "(absent: never judged)",
    )


class UnitStatePage(Wire):
    states: list[UnitState]
    nextPageToken: str | None = None


class Resources(Wire):
    """Extension: CPU in millicores, memory in bytes."""

    cpuMillis: int
    memoryBytes: int


class Machine(Wire):
    id: str
    primaryIP: str
    metadata: dict[str, str]
    hostname: str | None = Field(default=None, description="extension")
    capacity: Resources | None = Field(default=None, description="extension: schedulable capacity")
    allocated: Resources | None = Field(
        default=None, description="extension: reservations of the units scheduled to it"
    )
    units: int | None = Field(default=None, description="extension: units scheduled to it")
    unschedulable: bool | None = Field(default=None, description="extension: cordoned")
    draining: bool | None = Field(default=None, description="extension: units are moved away")
    version: str | None = Field(default=None, description="extension: fleetd version")
    systemdConnected: bool | None = Field(
        default=None,
        description="extension: whether its agent reaches systemd (no new units while not)",
    )
    bootID: str | None = Field(default=None, description="extension: id of its current boot")


class Guard(Wire):
    """Extension: the engine leader's mass-loss guard, while it holds: the units of the
    ``absent`` machines stay where they are until ``until``."""

    cause: Literal["mass loss", "new leader"]
    reason: str
    since: str | None = Field(description="when it started (RFC 3339)")
    until: str | None = Field(description="when it ends unless more machines vanish")
    absent: list[str] = Field(description="ids of the machines whose units it holds")
    units: int = Field(description="units it holds (as of the leader's last full pass)")


class MachinePage(Wire):
    machines: list[Machine]
    nextPageToken: str | None = None
    guard: Guard | None = Field(
        default=None,
        description="extension: the mass-loss guard, while it holds (absent machines are "
        "not listed: their registration is gone)",
    )


class MetadataOp(Wire):
    """One JSON-Patch operation of ``PATCH /machines``."""

    op: Literal["add", "remove", "replace"]
    path: str = Field(max_length=1024, description="/<machine_id>/metadata/<key>")
    value: str | None = None


class ErrorEntity(Wire):
    code: int
    message: str


class ErrorResponse(Wire):
    error: ErrorEntity


class Placement(Wire):
    """Extension: why a unit is not placed, per machine."""

    name: str
    summary: str
    reasons: dict[str, str] = Field(description="machine id -> why it was rejected")


class PlacementPage(Wire):
    placements: list[Placement]
    nextPageToken: str | None = None


class MachineFlags(Wire):
    id: str
    unschedulable: bool
    draining: bool


class UnitStatus(Wire):
    """Extension: ``systemctl status`` of a unit, from the machine that runs it."""

    name: str
    machineID: str
    output: str
    exitCode: int


class Health(Wire):
    status: Literal["ok", "degraded"]
    machineID: str | None = None
    leader: str | None = None
    registry: Literal["ok", "unavailable"]
    systemd: Literal["ok", "unavailable"] | None = Field(
        default=None, description="this machine's agent's connection to systemd"
    )
    reason: str | None = Field(default=None, description="why the status is degraded")


class UnitBatchItem(Wire):
    """Extension: one change of ``PUT /units``, as the body of ``PUT /units/{name}``."""

    name: str = Field(min_length=1, max_length=1024)
    options: list[UnitOption] | None = Field(default=None, max_length=10_000)
    desiredState: DesiredStateName | Literal[""] | None = None


class UnitBatchRequest(Wire):
    """Extension: body of ``PUT /units`` (at most 1000 distinct units, 1 MiB)."""

    units: list[UnitBatchItem] = Field(max_length=1000)


class UnitBatchResult(Wire):
    name: str
    result: Literal["created", "replaced", "updated", "unchanged"]
    warnings: list[str] | None = Field(
        default=None,
        description="what fleet accepted in the unit file and fleetd suspects is a mistake "
        "(absent when none)",
    )


class UnitBatchResponse(Wire):
    units: list[UnitBatchResult]


class TemplateVersion(Wire):
    """Extension: the template version an instance's version has the text of."""

    name: str = Field(description="the template, e.g. web@.service")
    version: int


class UnitVersionInfo(Wire):
    """Extension: one kept version of a unit's file, without its text."""

    version: int = Field(description="1, 2, ...: never reused for this unit name")
    hash: str = Field(description="SHA-1 of the unit file, as the unit's hash")
    time: str | None = Field(
        description="when it was written, RFC 3339 in UTC (null: not recorded)"
    )
    by: str = Field(
        description="who wrote it: the API token's name, 'unix socket', "
        "'etcd driver (user@host)', 'anonymous' (TCP without authentication)"
    )
    remote: str = Field(description="the client's address, empty if not over the network")
    linesAdded: int | None = Field(description="lines added since the version before it")
    linesRemoved: int | None = Field(description="lines removed since the version before it")
    changes: str = Field(
        description="one line: '+3 -1 lines; [Service] ExecStart changed', 'first version', "
        "or 'version N-1 no longer kept'"
    )
    template: TemplateVersion | None = Field(
        default=None,
        description="instances only: the newest kept version of the template with this text",
    )


class UnitVersionList(Wire):
    """Extension: ``GET /units/{name}/versions``, oldest first (at most 20)."""

    name: str
    current: int | None = Field(
        description="the version the unit has now (null: destroyed, or its text was "
        "written before versions were kept)"
    )
    versions: list[UnitVersionInfo]


class UnitVersion(Wire):
    """Extension: ``GET /units/{name}/versions/{n}``: one version with its text."""

    name: str
    version: int
    hash: str
    time: str | None
    by: str
    remote: str
    text: str = Field(description="the unit file, normalised as the unit's text")
    previous: int | None = Field(
        description="the version before it, if it is still kept (what a diff compares with)"
    )


class RolloutSettings(Wire):
    """Extension: how a rollout proceeds (times in seconds)."""

    maxParallel: int = Field(default=1, description="targets updated at once (at least 1)")
    minHealthyTime: float = Field(
        default=10.0,
        description="a target counts as updated once active and healthy this long",
    )
    healthyDeadline: float = Field(
        default=300.0,
        description="a target not updated this long after it was given the new file fails "
        "the rollout (longer than minHealthyTime)",
    )
    autoRevert: bool = Field(
        default=False,
        strict=True,
        description="when the rollout fails, roll every target already updated back",
    )
    canary: int = Field(
        default=0, description="update this many targets, then wait for a promotion (0: none)"
    )
    startFirst: bool = Field(
        default=False,
        strict=True,
        description="a plain unit: start the new copy and wait for it to be healthy before "
        "the old one stops",
    )


class RolloutRequest(RolloutSettings):
    """Extension: body of ``POST /rollouts``: roll ``unit`` out to a new file (``options``)
    or to the text of one of its kept versions (``version``: a rollback)."""

    unit: str = Field(max_length=1024, description="a template, a Global unit or a plain unit")
    options: list[UnitOption] | None = Field(
        default=None, max_length=10_000, description="the new unit file"
    )
    version: int | None = Field(
        default=None,
        ge=1,
        le=2**53,
        description="roll out the text of this kept version of the unit instead",
    )


class RolloutTarget(Wire):
    """Extension: one target of a rollout: an instance, a machine, or the unit itself."""

    name: str
    state: Literal["pending", "updating", "healthy", "done", "failed", "skipped"]
    hash: str = Field(description="the hash it has been given")
    oldHash: str = Field(description="its hash before the rollout")
    started: str | None = Field(description="when it was given the hash it moves to")
    since: str | None = Field(description="since when it is healthy, or when it settled")
    message: str = Field(description="what it waits for, why it failed or was skipped")


class Rollout(RolloutSettings):
    """Extension: a rollout and its progress."""

    id: str
    unit: str
    kind: Literal["template", "global", "unit"]
    phase: Literal[
        "running",
        "paused",
        "awaiting-promotion",
        "reverting",
        "succeeded",
        "failed",
        "reverted",
        "aborted",
    ]
    fromVersion: int
    fromHash: str
    toVersion: int
    toHash: str
    targets: list[RolloutTarget]
    startedBy: str
    created: str | None
    updated: str | None
    message: str = Field(description="what it waits for, or how it ended")
    failure: str = Field(description="why it failed (empty if it did not)")
    promoted: bool
    reverting: bool = Field(description="its targets are going back to their old files")
    revertVersion: int | None = Field(
        description="the version the unit's file was written back as by the revert"
    )
    active: bool


class RolloutList(Wire):
    """Extension: ``GET /rollouts``: the last rollout of each unit, by unit name."""

    rollouts: list[Rollout]


class PlanRequest(Wire):
    """Extension: body of ``POST /plan``: the changes to plan, each item meaning what it
    means in ``PUT /units`` (at most 1000 distinct units, 1 MiB)."""

    units: list[UnitBatchItem] = Field(min_length=1, max_length=1000)


class PlanUnit(Wire):
    """Extension: one unit of a plan, as the cluster would have it."""

    name: str
    result: Literal["created", "replaced", "updated", "unchanged"] = Field(
        description="what the unit's record would undergo, as in PUT /units"
    )
    hash: str
    previousHash: str | None = Field(description="the hash the cluster has now (null: new)")
    desiredState: DesiredStateName
    previousDesiredState: DesiredStateName | None
    machineIDs: list[str] = Field(description="where it would be scheduled (empty: nowhere)")
    reason: str | None = Field(
        description="why it would not be placed, or what it waits for (null: neither)"
    )
    warnings: list[str] = Field(description="what fleetd suspects is a mistake in the file")


class PlanChange(Wire):
    """Extension: one schedule entry the plan changes, as the engine would write it."""

    action: Literal["schedule", "unschedule", "update"]
    unit: str
    machineID: str
    hostname: str | None = Field(description="the machine's hostname (null: unknown, gone)")
    reason: str = Field(description="the engine's reason for the write")
    effect: str = Field(
        description="what the machine's agent would do: 'load and start', 'stop and unload', "
        "'restart with the new file', ..."
    )
    hash: str | None = Field(description="the entry's hash afterwards (null: unscheduled)")
    previousHash: str | None = Field(description="the entry's hash now (null: new entry)")
    desiredState: DesiredStateName | None
    previousDesiredState: DesiredStateName | None


class PlanUnplaceable(Wire):
    """Extension: a unit the engine would not place (a planned unit, or one the plan
    pushes out), with why not on each machine."""

    name: str
    reason: str
    reasons: dict[str, str] = Field(description="machine id -> why it was rejected")


class PlanWaiting(Wire):
    """Extension: a unit that would be placed only later (AtMostOnce, after a lost
    machine's grace period)."""

    name: str
    reason: str


class PlanResponse(Wire):
    """Extension: what ``POST /plan`` found; nothing was written."""

    units: list[PlanUnit] = Field(description="the planned units, in request order")
    changes: list[PlanChange] = Field(description="unschedules first, then by unit")
    unplaceable: list[PlanUnplaceable]
    waiting: list[PlanWaiting]
    pending: int = Field(
        description="schedule entries the engine would change regardless of these units "
        "(a drain in progress, a unit about to move): left out of changes"
    )
    changed: bool = Field(description="whether a unit record or a schedule entry would change")
    strategy: Literal["binpack", "spread"] = Field(description="the strategy planned with")


class UnitSummary(Wire):
    """Extension: a unit without its file, as a live view keeps it (``GET /cluster``, and
    the data of a ``unit`` event)."""

    name: str
    desiredState: DesiredStateName
    hash: str
    global_: bool = Field(alias="global", description="runs on every matching machine")
    runsOnce: bool = Field(
        description="a oneshot service without RemainAfterExit: inactive again once it ran"
    )
    cpuMillis: int = Field(description="the CPU it reserves on its machine")
    memoryBytes: int = Field(description="the memory it reserves on its machine")


class ScheduledUnit(Wire):
    """Extension: one schedule entry: the unit ``name`` is given to ``machineID``."""

    name: str
    machineID: str
    desiredState: DesiredStateName
    hash: str


class MaintenanceRequest(Wire):
    """Extension: body of ``POST /maintenance``: take ``machines`` (ids), or every machine
    (``all``), down ``maxUnavailable`` at a time for a reboot, or to run ``command``."""

    machines: list[str] | None = Field(default=None, max_length=10_000, description="ids")
    all: bool = Field(default=False, strict=True, description="every registered machine")
    maxUnavailable: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="machines taken down at once (at least 1; default: the cluster "
        "setting max_unavailable, itself 1 by default)",
    )
    command: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="run this argument list on each machine instead of rebooting it (no "
        "shell; its output goes to the machine's journal)",
    )


class MaintenanceMachine(Wire):
    """Extension: one machine of a maintenance."""

    id: str
    phase: Literal["pending", "draining", "acting", "returning", "done", "failed"]
    detail: str = Field(description="what it does or waits for, or why it failed")
    since: str | None = Field(description="when it entered its phase")
    exitStatus: int | None = Field(default=None, description="of the command")


class Maintenance(Wire):
    """Extension: a maintenance of machines and its progress."""

    id: str
    phase: Literal["running", "stopping", "done", "failed", "cancelled"]
    action: Literal["reboot", "command"]
    command: list[str] | None = None
    maxUnavailable: int
    startedBy: str
    started: str | None
    finished: str | None
    message: str
    failure: str = Field(description="which machine failed and why (empty: none)")
    requested: bool = Field(description="it serves machines' reboot requests")
    cancelledBy: str | None = Field(default=None, description="who cancelled it (null: nobody)")
    machines: list[MaintenanceMachine]


class RebootRequest(Wire):
    """Extension: a machine's request for a reboot."""

    machineID: str
    since: str | None
    reason: str
    window: str | None = None


# -- cluster settings (GET/PATCH /config) -------------------------------------------------

SettingValue = int | float | str


class ClusterSetting(Wire):
    """Extension: one cluster setting (fleetd/clustersettings.py)."""

    name: str
    value: SettingValue = Field(description="in force: the one set, else the default")
    default: SettingValue = Field(
        description="when not set (strategy and the guard's follow this fleetd's "
        "configuration; an engine configured otherwise uses its own)"
    )
    set: bool = Field(description="whether it is set in the registry")
    description: str


class ClusterSettings(Wire):
    """Extension: every cluster setting, as ``GET /config`` answers."""

    settings: list[ClusterSetting]
    revision: int = Field(description="mod revision of cluster/settings (0: never set)")


_S = clustersettings.BY_NAME


class ClusterSettingsPatch(Wire):
    """Extension: body of ``PATCH /config``: the settings to change (null: back to the
    default); the others stay as they are."""

    model_config = ConfigDict(extra="forbid", strict=True)

    strategy: Literal["binpack", "spread"] | None = Field(
        default=None, description=_S["strategy"].help
    )
    max_unavailable: int | None = Field(
        default=None,
        ge=_S["max_unavailable"].low,
        le=_S["max_unavailable"].high,
        description=_S["max_unavailable"].help,
    )
    guard_machines: int | None = Field(
        default=None,
        ge=_S["guard_machines"].low,
        le=_S["guard_machines"].high,
        description=_S["guard_machines"].help,
    )
    guard_share: float | None = Field(
        default=None,
        ge=_S["guard_share"].low,
        le=_S["guard_share"].high,
        allow_inf_nan=False,
        description=_S["guard_share"].help,
    )
    guard_window: float | None = Field(
        default=None,
        ge=_S["guard_window"].low,
        le=_S["guard_window"].high,
        allow_inf_nan=False,
        description=_S["guard_window"].help,
    )
    guard_hold: float | None = Field(
        default=None,
        ge=_S["guard_hold"].low,
        le=_S["guard_hold"].high,
        allow_inf_nan=False,
        description=_S["guard_hold"].help,
    )

    @model_validator(mode="before")
    @classmethod
    def _known(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(k for k in data if k not in clustersettings.BY_NAME)
            if unknown:
                raise ValueError(
                    f"unknown cluster setting {unknown[0]!r} (known: "
                    f"{', '.join(clustersettings.NAMES)})"
                )
        return data

    def changes(self) -> dict[str, SettingValue | None]:
        """The settings given, by name (None: back to the default)."""
        return {name: getattr(self, name) for name in sorted(self.model_fields_set)}


class ClusterView(Wire):
    """Extension: ``GET /cluster``: everything a live view shows, read from registry
    revision ``revision`` on; follow ``/events?since=<revision>`` to keep it current."""

    revision: int = Field(
        description="the registry revision the read started at: every change after it "
        "comes through /events?since=<revision> (some may already be in this answer)"
    )
    leader: str | None = Field(default=None, description="the engine leader's machine")
    machines: list[Machine]
    units: list[UnitSummary]
    schedule: list[ScheduledUnit]
    states: list[UnitState]
    placements: list[Placement]
    maintenance: Maintenance | None = Field(
        default=None, description="the current or last maintenance (null: none ever)"
    )
    rebootRequests: list[RebootRequest] = Field(
        default_factory=list, description="the machines that ask for a reboot"
    )
