// Maintenance on the cluster page (docs/maintenance.md): a panel for the current (or last)
// maintenance and the reboot requests waiting, and each machine's part on its card.

import { actionButton } from "./actions.js";
import { badge, clock, h } from "./dom.js";
import { ACTIVE_MAINTENANCE } from "./model.js";

const JOB_KIND = { pending: "info", draining: "warn", acting: "warn", returning: "info", done: "ok", failed: "bad" };
const PHASE_KIND = { running: "warn", stopping: "warn", done: "ok", failed: "bad", cancelled: "" };
const JOBS_SHOWN = 10;
const REQUESTS_SHOWN = 20;

function at(rfc3339) {
  return rfc3339 ? clock(new Date(rfc3339)) : "";
}

function what(m) {
  return m.action === "command" ? `command ${(m.command || []).join(" ")}` : "reboot";
}

/** The badge of a machine's phase in a maintenance ("maintenance: draining"). */
export function jobBadge(job) {
  return badge(`maintenance: ${job.phase}`, JOB_KIND[job.phase], job.detail || undefined);
}

/** What a machine's card shows of the maintenance and of its reboot request. */
export function machineMaintenance(job, request) {
  const out = [];
  if (job) {
    out.push(
      h(
        "p",
        { class: `maint ${job.phase}`, dataset: { maintenancePhase: job.phase } },
        h("strong", {}, `Maintenance ${job.phase}`),
        job.detail ? `: ${job.detail}` : "",
        job.since ? h("span", { class: "muted" }, ` (since ${at(job.since)})`) : null,
      ),
    );
  }
  if (request) {
    const window = request.window ? `, window ${request.window}` : "";
    out.push(
      h("p", { class: "maint request" }, h("strong", {}, "Reboot requested"), `: ${request.reason}${window}`),
    );
  }
  return out;
}

function progress(m) {
  const counts = new Map();
  for (const job of m.machines) counts.set(job.phase, (counts.get(job.phase) || 0) + 1);
  const parts = ["done", "failed", "returning", "acting", "draining", "pending"]
    .filter((phase) => counts.get(phase))
    .map((phase) => `${counts.get(phase)} ${phase}`);
  return `${counts.get("done") || 0} of ${m.machines.length} machines done (${parts.join(", ")})`;
}

function jobs(m, cluster) {
  const shown = m.machines.filter((j) => j.phase !== "pending" && j.phase !== "done");
  if (shown.length === 0) return null;
  return h(
    "ul",
    { class: "jobs" },
    shown.slice(0, JOBS_SHOWN).map((job) =>
      h(
        "li",
        { dataset: { job: job.id } },
        h("strong", {}, cluster.machineName(job.id)),
        " ",
        jobBadge(job),
        job.detail ? ` ${job.detail}` : "",
      ),
    ),
  );
}

function requests(cluster) {
  const waiting = [...cluster.rebootRequests.values()].sort((a, b) =>
    cluster.machineName(a.machineID).localeCompare(cluster.machineName(b.machineID), "en", { numeric: true }),
  );
  if (waiting.length === 0) return null;
  return [
    h("h3", {}, `Reboot requests waiting (${waiting.length})`),
    h(
      "ul",
      { class: "requests" },
      waiting.slice(0, REQUESTS_SHOWN).map((r) =>
        h(
          "li",
          { dataset: { request: r.machineID } },
          h("strong", {}, cluster.machineName(r.machineID)),
          `: ${r.reason}`,
          r.window ? ` (window ${r.window})` : "",
          r.since ? h("span", { class: "muted" }, ` since ${at(r.since)}`) : null,
        ),
      ),
    ),
  ];
}

/** The panel of the current or last maintenance and of the reboot requests (null: neither). */
export function maintenancePanel(cluster) {
  const m = cluster.maintenance;
  const waiting = requests(cluster);
  if (!m && !waiting) return null;
  const active = Boolean(m) && ACTIVE_MAINTENANCE.has(m.phase);
  const state = !m ? "" : active ? "active" : m.phase === "failed" ? "failed" : "over";
  const body = [];
  if (m) {
    body.push(
      h(
        "h2",
        { id: "maintenance-title" },
        active ? "Maintenance: " : "Last maintenance: ",
        what(m),
        " ",
        badge(m.phase, PHASE_KIND[m.phase]),
      ),
      h(
        "p",
        { class: "muted" },
        `${m.requested ? "serving reboot requests" : `started by ${m.startedBy}`}`,
        m.started ? ` at ${at(m.started)}` : "",
        m.finished ? `, finished at ${at(m.finished)}` : "",
        ` · at most ${m.maxUnavailable} down at once`,
      ),
      h("p", { class: "progress" }, progress(m)),
      m.message ? h("p", {}, m.message) : null,
      m.failure ? h("p", { class: "error" }, h("strong", {}, "Failed: "), m.failure) : null,
      m.cancelledBy ? h("p", {}, `Cancelled by ${m.cancelledBy}`) : null,
      active ? jobs(m, cluster) : null,
      m.phase === "running" && !m.cancelledBy
        ? h(
            "div",
            { class: "actions" },
            actionButton("cancelMaintenance", { kind: "maintenance", id: m.id, label: `the ${what(m)}` }),
          )
        : null,
    );
  } else {
    body.push(h("h2", { id: "maintenance-title" }, "Maintenance"));
  }
  if (waiting) body.push(waiting);
  return h(
    "section",
    {
      class: `maintenance ${state}`,
      id: "maintenance",
      "aria-labelledby": "maintenance-title",
      dataset: { phase: m ? m.phase : "" },
    },
    body,
  );
}
