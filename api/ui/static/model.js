// The cluster as the page knows it: loaded from GET /fleet/v1/cluster, then kept current by
// applying each event of /fleet/v1/events (each carries its key's whole new value, so
// applying one twice changes nothing).  Views subscribe and re-render at most every
// RENDER_EVERY milliseconds however many events arrive.

const RENDER_EVERY = 150;
export const ACTIVE_MAINTENANCE = new Set(["running", "stopping"]);
const HEALTH_ORDER = { unhealthy: 3, unknown: 2, healthy: 1 };
export const STATUSES = [
  "running",
  "starting",
  "failed",
  "unhealthy",
  "unplaceable",
  "loaded",
  "inactive",
];

function nested(map, key) {
  let inner = map.get(key);
  if (!inner) {
    inner = new Map();
    map.set(key, inner);
  }
  return inner;
}

function drop(map, key, innerKey) {
  const inner = map.get(key);
  if (!inner) return;
  inner.delete(innerKey);
  if (inner.size === 0) map.delete(key);
}

function strip(data) {
  const { action: _action, revision: _revision, ...rest } = data;
  return rest;
}

export class Cluster {
  constructor() {
    this.listeners = new Set();
    this.timer = null;
    this.clear();
  }

  clear() {
    this.revision = 0;
    this.leader = null;
    this.machines = new Map(); // id -> Machine (as GET /machines has it)
    this.units = new Map(); // name -> UnitSummary
    this.schedule = new Map(); // name -> Map(machine -> ScheduledUnit)
    this.states = new Map(); // name -> Map(machine -> UnitState)
    this.placements = new Map(); // name -> Placement
    this.rollouts = new Map(); // unit -> its rollout's last event (read in full by the unit page)
    this.maintenance = null; // the current or last maintenance (as GET /maintenance has it)
    this.rebootRequests = new Map(); // machine -> RebootRequest
    this.version = 0;
    this.derived = null;
  }

  load(view) {
    this.clear();
    this.revision = view.revision;
    this.leader = view.leader || null;
    for (const m of view.machines) this.machines.set(m.id, m);
    for (const u of view.units) this.units.set(u.name, u);
    for (const e of view.schedule) nested(this.schedule, e.name).set(e.machineID, e);
    for (const s of view.states) nested(this.states, s.name).set(s.machineID, s);
    for (const p of view.placements) this.placements.set(p.name, p);
    this.maintenance = view.maintenance || null;
    for (const r of view.rebootRequests || []) this.rebootRequests.set(r.machineID, r);
    this.changed();
  }

  /** Apply one event; answers the id of a machine whose full record should be re-read. */
  apply(kind, data) {
    const put = data.action === "put";
    let refresh = null;
    switch (kind) {
      case "unit":
        if (put) this.units.set(data.name, strip(data));
        else this.units.delete(data.name);
        break;
      case "schedule":
        if (put) nested(this.schedule, data.name).set(data.machineID, strip(data));
        else drop(this.schedule, data.name, data.machineID);
        break;
      case "state":
        if (put) nested(this.states, data.name).set(data.machineID, strip(data));
        else drop(this.states, data.name, data.machineID);
        break;
      case "machine":
        if (put) {
          const known = this.machines.get(data.machineID);
          this.machines.set(data.machineID, {
            ...(known || { id: data.machineID, metadata: {} }),
            primaryIP: data.primaryIP,
            systemdConnected: data.systemdConnected,
          });
          refresh = data.machineID;
        } else {
          this.machines.delete(data.machineID);
        }
        break;
      case "machine-flags": {
        const known = this.machines.get(data.machineID);
        if (known) {
          const draining = put && data.draining;
          known.unschedulable = put && (data.unschedulable || draining);
          known.draining = draining;
          refresh = data.machineID;
        }
        break;
      }
      case "placement":
        if (put) {
          this.placements.set(data.name, {
            name: data.name,
            summary: data.summary,
            reasons: data.reasons || {},
          });
        } else {
          this.placements.delete(data.name);
        }
        break;
      case "rollout":
        if (put) this.rollouts.set(data.unit, strip(data));
        else this.rollouts.delete(data.unit);
        break;
      case "leader":
        this.leader = put ? data.machineID : null;
        break;
      case "maintenance":
        this.maintenance = put ? data.maintenance || null : null;
        break;
      case "reboot-request":
        if (put) this.rebootRequests.set(data.machineID, strip(data));
        else this.rebootRequests.delete(data.machineID);
        break;
      default:
        return null;
    }
    this.changed();
    return refresh;
  }

  /** Replace one machine's record with a fresh read (keeps the model's own flags). */
  updateMachine(machine) {
    if (!this.machines.has(machine.id)) return;
    this.machines.set(machine.id, machine);
    this.changed();
  }

  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  changed() {
    this.version += 1;
    this.derived = null;
    if (this.timer !== null) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      for (const listener of [...this.listeners]) listener(this);
    }, RENDER_EVERY);
  }

  // --- derived views (recomputed once per change) ---------------------------

  get index() {
    if (this.derived === null) this.derived = this.derive();
    return this.derived;
  }

  derive() {
    const perMachine = new Map();
    for (const id of this.machines.keys()) {
      perMachine.set(id, { cpuMillis: 0, memoryBytes: 0, units: [] });
    }
    for (const [name, copies] of this.schedule) {
      const unit = this.units.get(name);
      for (const machine of copies.keys()) {
        const slot = perMachine.get(machine);
        if (!slot) continue;
        slot.units.push(name);
        if (unit) {
          slot.cpuMillis += unit.cpuMillis || 0;
          slot.memoryBytes += unit.memoryBytes || 0;
        }
      }
    }
    const rows = [];
    const counts = Object.fromEntries(STATUSES.map((s) => [s, 0]));
    for (const name of [...this.units.keys()].sort()) {
      const row = this.row(name);
      rows.push(row);
      counts[row.status] += 1;
      if (row.health === "unhealthy" && row.status !== "unhealthy") counts.unhealthy += 1;
    }
    return { perMachine, rows, counts };
  }

  /** Everything the unit table shows about one unit. */
  row(name) {
    const unit = this.units.get(name);
    const copies = [];
    for (const [machine, entry] of this.schedule.get(name) || []) {
      copies.push({ machine, entry, state: (this.states.get(name) || new Map()).get(machine) });
    }
    copies.sort((a, b) => this.machineName(a.machine).localeCompare(this.machineName(b.machine)));
    let health = "";
    for (const copy of copies) {
      const value = copy.state && copy.state.health;
      if (value && (HEALTH_ORDER[value] || 0) > (HEALTH_ORDER[health] || 0)) health = value;
    }
    const placement = this.placements.get(name);
    const desired = unit ? unit.desiredState : "inactive";
    const unplaceable = placement && desired !== "inactive" && copies.length === 0 ? placement : null;
    const row = { name, unit, desired, copies, health, unplaceable };
    row.status = status(row);
    return row;
  }

  /** The maintenance's job of one machine, while it is worth showing on its card: the
   * maintenance is not over, or the machine failed (it stays cordoned). */
  maintenanceJob(id) {
    const m = this.maintenance;
    if (!m) return null;
    const job = m.machines.find((j) => j.id === id);
    if (!job) return null;
    return ACTIVE_MAINTENANCE.has(m.phase) || job.phase === "failed" ? job : null;
  }

  machineName(id) {
    const machine = this.machines.get(id);
    return (machine && machine.hostname) || id.slice(0, 8);
  }

  sortedMachines() {
    return [...this.machines.values()].sort((a, b) =>
      this.machineName(a.id).localeCompare(this.machineName(b.id), "en", { numeric: true }),
    );
  }
}

function ran(copy, unit) {
  // A oneshot service without RemainAfterExit is inactive again once it ran (views.py).
  const state = copy.state;
  if (!state) return false;
  if (state.systemdActiveState === "active") return true;
  return Boolean(unit && unit.runsOnce) && state.systemdActiveState === "inactive" && state.hash === copy.entry.hash;
}

function status({ unit, desired, copies, unplaceable, health }) {
  if (unplaceable) return "unplaceable";
  if (copies.some((c) => c.state && c.state.systemdActiveState === "failed")) return "failed";
  if (desired === "launched") {
    if (copies.length > 0 && copies.every((c) => ran(c, unit))) {
      return health === "unhealthy" ? "unhealthy" : "running";
    }
    return "starting";
  }
  return desired === "loaded" ? "loaded" : "inactive";
}

/** The systemd state of one copy as a short text: "active (running)". */
export function stateText(state) {
  if (!state) return "not reported";
  return `${state.systemdActiveState} (${state.systemdSubState})`;
}
