// The cluster page: totals, unplaceable units with their reasons, and one card per machine
// (address, metadata, CPU and memory allocated, flags, systemd link, leader, its part in a
// maintenance or its reboot request, its units), with the maintenance's panel above them.
// Cards are rebuilt only when what they show changed, and focus survives a rebuild.

import { actionButton } from "./actions.js";
import { badge, fill, fmtBytes, fmtCount, fmtCpu, h, meter } from "./dom.js";
import { stateText } from "./model.js";
import { machineMaintenance, maintenancePanel } from "./view-maintenance.js";

const UNITS_ON_CARD = 12;
const UNPLACEABLE_SHOWN = 20;

export function unitLink(name) {
  return h("a", { href: `#/unit/${encodeURIComponent(name)}`, dataset: { key: `unit:${name}` } }, name);
}

/** A copy's systemd state as text, marked when it failed. */
export function stateLabel(state) {
  const failed = state && state.systemdActiveState === "failed";
  return h("span", { class: failed ? "state-failed" : "muted" }, stateText(state));
}

export function reasonsList(reasons, cluster) {
  const entries = Object.entries(reasons || {}).sort((a, b) =>
    cluster.machineName(a[0]).localeCompare(cluster.machineName(b[0]), "en", { numeric: true }),
  );
  if (entries.length === 0) return null;
  return h(
    "ul",
    { class: "reasons" },
    entries.map(([machine, why]) => h("li", {}, h("strong", {}, cluster.machineName(machine)), `: ${why}`)),
  );
}

/** Keep keyboard focus on the "same" control (by data-key) across a rebuild of `root`. */
export function keepingFocus(root, rebuild) {
  const active = document.activeElement;
  const key = active && root.contains(active) && active.dataset ? active.dataset.key : null;
  rebuild();
  if (key) {
    const again = root.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }
}

function flags(machine, cluster) {
  const out = [];
  if (cluster.leader === machine.id) out.push(badge("engine leader", "info"));
  if (machine.draining) out.push(badge("draining", "warn"));
  else if (machine.unschedulable) out.push(badge("cordoned", "warn"));
  if (machine.systemdConnected === false) {
    out.push(badge("systemd unreachable", "bad", "its agent cannot reach systemd: no new units"));
  }
  return out;
}

function card(machine, cluster, slot) {
  const name = cluster.machineName(machine.id);
  const target = { kind: "machine", id: machine.id, label: name };
  const capacity = machine.capacity || { cpuMillis: 0, memoryBytes: 0 };
  const metadata = Object.entries(machine.metadata || {}).sort();
  const units = slot.units.slice().sort();
  const titleId = `machine-${machine.id}`;
  const request = cluster.rebootRequests.get(machine.id);
  return h(
    "article",
    { class: "machine card", "aria-labelledby": titleId, dataset: { machine: machine.id } },
    h("header", {}, h("h3", { id: titleId }, name), h("span", { class: "flags" }, flags(machine, cluster))),
    h(
      "p",
      { class: "addr" },
      machine.primaryIP || "no address",
      h("span", { class: "muted" }, ` · ${machine.id.slice(0, 12)}`),
      machine.version ? h("span", { class: "muted" }, ` · fleetd ${machine.version}`) : null,
    ),
    metadata.length
      ? h(
          "ul",
          { class: "chips", "aria-label": "metadata" },
          metadata.map(([k, v]) => h("li", {}, `${k}=${v}`)),
        )
      : null,
    machineMaintenance(cluster.maintenanceJob(machine.id), request),
    meter("CPU", slot.cpuMillis, capacity.cpuMillis, fmtCpu, " cores"),
    meter("Memory", slot.memoryBytes, capacity.memoryBytes, fmtBytes),
    h("h4", {}, `Units (${fmtCount(units.length)})`),
    units.length
      ? h(
          "ul",
          { class: "unitlist" },
          units.slice(0, UNITS_ON_CARD).map((unit) => {
            const state = (cluster.states.get(unit) || new Map()).get(machine.id);
            return h("li", {}, unitLink(unit), " ", stateLabel(state));
          }),
        )
      : h("p", { class: "muted" }, "none"),
    units.length > UNITS_ON_CARD
      ? h(
          "p",
          {},
          h(
            "a",
            { href: `#/units?machine=${encodeURIComponent(machine.id)}` },
            `all ${fmtCount(units.length)} units on ${name}`,
          ),
        )
      : null,
    h(
      "div",
      { class: "actions" },
      machine.unschedulable ? actionButton("uncordon", target) : actionButton("cordon", target),
      machine.draining ? null : actionButton("drain", target),
      request ? null : actionButton("reboot", target),
    ),
  );
}

function signature(machine, cluster, slot) {
  const states = slot.units.slice(0, 200).map((u) => {
    const s = (cluster.states.get(u) || new Map()).get(machine.id);
    return s ? `${u}:${s.systemdActiveState}/${s.systemdSubState}` : u;
  });
  const maintenance = [cluster.maintenanceJob(machine.id), cluster.rebootRequests.get(machine.id)];
  return JSON.stringify([machine, cluster.leader === machine.id, slot.cpuMillis, slot.memoryBytes, states, maintenance]);
}

function totals(cluster) {
  const { counts } = cluster.index;
  const item = (label, value, kind) =>
    h("div", { class: `stat ${kind || ""}` }, h("dt", {}, label), h("dd", {}, fmtCount(value)));
  return h(
    "dl",
    { class: "stats" },
    item("Machines", cluster.machines.size),
    item("Units", cluster.units.size),
    item("Running", counts.running),
    item("Starting", counts.starting),
    item("Failed", counts.failed, counts.failed ? "bad" : ""),
    item("Unhealthy", counts.unhealthy, counts.unhealthy ? "warn" : ""),
    item("Unplaceable", counts.unplaceable, counts.unplaceable ? "warn" : ""),
    h(
      "div",
      { class: "stat" },
      h("dt", {}, "Engine leader"),
      h("dd", {}, cluster.leader ? cluster.machineName(cluster.leader) : "none"),
    ),
  );
}

function unplaceable(cluster) {
  const rows = cluster.index.rows.filter((r) => r.unplaceable);
  if (rows.length === 0) return null;
  return h(
    "section",
    { class: "unplaceable", "aria-labelledby": "unplaceable-title" },
    h("h2", { id: "unplaceable-title" }, `Unplaceable units (${fmtCount(rows.length)})`),
    h(
      "ul",
      {},
      rows.slice(0, UNPLACEABLE_SHOWN).map((row) =>
        h(
          "li",
          { dataset: { unplaceable: row.name } },
          unitLink(row.name),
          reasonsList(row.unplaceable.reasons, cluster) ||
            h("span", {}, ` — ${row.unplaceable.summary}`),
        ),
      ),
    ),
    rows.length > UNPLACEABLE_SHOWN ? h("p", {}, h("a", { href: "#/units?status=unplaceable" }, "all of them")) : null,
  );
}

export function machinesView(main) {
  const head = h("div", {});
  const grid = h("div", { class: "grid", id: "machines" });
  const title = h("h2", { id: "machines-title" }, "Machines");
  fill(
    main,
    h("h1", {}, "Cluster"),
    head,
    h("section", { "aria-labelledby": "machines-title" }, title, grid),
  );
  const cards = new Map(); // machine id -> {sig, el}
  return {
    title: "Cluster",
    update(cluster) {
      keepingFocus(main, () => {
        fill(head, totals(cluster), maintenancePanel(cluster), unplaceable(cluster));
        const { perMachine } = cluster.index;
        const machines = cluster.sortedMachines();
        title.textContent = `Machines (${fmtCount(machines.length)})`;
        const seen = new Set();
        const order = [];
        for (const machine of machines) {
          const slot = perMachine.get(machine.id) || { cpuMillis: 0, memoryBytes: 0, units: [] };
          const sig = signature(machine, cluster, slot);
          let entry = cards.get(machine.id);
          if (!entry || entry.sig !== sig) {
            entry = { sig, el: card(machine, cluster, slot) };
            cards.set(machine.id, entry);
          }
          seen.add(machine.id);
          order.push(entry.el);
        }
        for (const id of [...cards.keys()]) if (!seen.has(id)) cards.delete(id);
        if (order.length === 0) order.push(h("p", { class: "muted" }, "No machine is registered."));
        const same =
          order.length === grid.children.length && order.every((el, i) => grid.children[i] === el);
        if (!same) grid.replaceChildren(...order);
      });
    },
    unmount() {},
  };
}
