// The last events of the stream as they arrive, newest first.

import { clock, fill, fmtCount, h } from "./dom.js";

function what(event, cluster) {
  const d = event.data;
  const machine = d.machineID ? cluster.machineName(d.machineID) : "";
  const gone = d.action === "delete";
  switch (event.kind) {
    case "unit":
      return gone ? `${d.name} destroyed` : `${d.name} desired ${d.desiredState}`;
    case "schedule":
      return gone ? `${d.name} unscheduled from ${machine}` : `${d.name} scheduled to ${machine}`;
    case "state":
      return gone
        ? `${d.name} on ${machine}: no longer reported`
        : `${d.name} on ${machine}: ${d.systemdActiveState} (${d.systemdSubState})${d.health && d.health !== "unknown" ? `, ${d.health}` : ""}`;
    case "machine":
      return gone ? `${machine} left the cluster` : `${machine} registered at ${d.primaryIP || "no address"}`;
    case "machine-flags":
      return gone || !(d.unschedulable || d.draining)
        ? `${machine} schedulable`
        : `${machine} ${d.draining ? "draining" : "cordoned"}`;
    case "placement":
      return gone ? `${d.name} placed` : `${d.name} not placed: ${d.summary}`;
    case "rollout":
      return gone
        ? `${d.unit}: rollout record removed`
        : `${d.unit} rollout ${d.phase}: ${d.done} of ${d.total} done${d.message ? ` (${d.message})` : ""}`;
    case "maintenance": {
      if (gone) return "maintenance record removed";
      const jobs = (d.machines || []).map((j) => `${cluster.machineName(j.id)} ${j.phase}`).join(", ");
      return `maintenance ${d.phase}${d.message ? `: ${d.message}` : ""}${jobs ? ` (${jobs})` : ""}${d.failure ? `; failed: ${d.failure}` : ""}`;
    }
    case "reboot-request":
      return gone ? `${machine}: reboot request cleared` : `${machine} asks for a reboot: ${d.reason}`;
    case "leader":
      return gone ? "no engine leader" : `${machine} leads the engine`;
    case "guard":
      return gone
        ? "mass-loss guard ended"
        : `${d.reason}; until ${d.until}: ${d.units} unit(s) of ${(d.absent || []).length} absent machine(s) held`;
    case "settings": {
      const set = Object.entries(d.settings || {}).map(([k, v]) => `${k}=${v}`);
      return `cluster settings: ${set.join(", ") || "all defaults"}`;
    }
    default:
      return JSON.stringify(d);
  }
}

export function eventsView(main, live) {
  const count = h("p", { class: "count" });
  const body = h("tbody", {});
  fill(
    main,
    h("h1", {}, "Events"),
    count,
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "events" },
        h("caption", { class: "sr-only" }, "The last events, newest first"),
        h("thead", {}, h("tr", {}, ["Time", "Kind", "Revision", "What"].map((t) => h("th", { scope: "col" }, t)))),
        body,
      ),
    ),
  );
  let seen = -1;
  // (re-rendered only when an event came: the model also changes on machine re-reads)
  return {
    title: "Events",
    update(cluster) {
      if (live.eventCount === seen) return;
      seen = live.eventCount;
      count.textContent = `${fmtCount(live.eventCount)} events since this page opened; the last ${live.events.length} below.`;
      if (live.events.length === 0) {
        body.replaceChildren(h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No event yet.")));
        return;
      }
      body.replaceChildren(
        ...live.events.map((event) =>
          h(
            "tr",
            { dataset: { kind: event.kind } },
            h("td", { class: "mono" }, clock(event.at)),
            h("td", {}, event.kind),
            h("td", { class: "mono" }, String(event.revision)),
            h("td", {}, what(event, cluster)),
          ),
        ),
      );
    },
    unmount() {},
  };
}
