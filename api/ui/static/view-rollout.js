// A unit's rollout on its page (GET /fleet/v1/rollouts/{unit}: the unit's own, or its
// template's for an instance): phase, progress, every target, and pause / resume /
// promote / abort while it runs.  Read again whenever a "rollout" event names it.

import { actionButton } from "./actions.js";
import { getJSON } from "./api.js";
import { badge, fill, fmtCount, h } from "./dom.js";

const TARGETS_SHOWN = 200;
const PHASE_KIND = {
  running: "info",
  paused: "warn",
  "awaiting-promotion": "warn",
  reverting: "warn",
  succeeded: "ok",
  failed: "bad",
  reverted: "bad",
  aborted: "",
};
const TARGET_KIND = { pending: "", updating: "info", healthy: "info", done: "ok", failed: "bad", skipped: "" };

/** The units whose rollout concerns `name`: itself, and the template of an instance. */
export function rolloutUnits(name) {
  const instance = /^(.+)@(.+)(\.[a-z]+)$/.exec(name);
  return instance ? [name, `${instance[1]}@${instance[3]}`] : [name];
}

function controls(rollout) {
  if (!rollout.active) return [];
  const target = { kind: "rollout", name: rollout.unit, label: `the rollout of ${rollout.unit}` };
  const out = [];
  if (rollout.phase === "paused") out.push("resume");
  else if (rollout.phase === "running" || rollout.phase === "reverting") out.push("pause");
  if (rollout.canary > 0 && !rollout.promoted && !rollout.reverting) out.push("promote");
  out.push("abort");
  return out.map((action) => actionButton(action, target));
}

function details(rollout) {
  const done = rollout.targets.filter((t) => t.state === "done").length;
  return [
    h(
      "p",
      { class: "unit-head" },
      badge(rollout.phase, PHASE_KIND[rollout.phase]),
      ` ${rollout.unit}: version ${rollout.fromVersion} → ${rollout.toVersion}, ` +
        `${fmtCount(done)} of ${fmtCount(rollout.targets.length)} targets done, ` +
        `${rollout.maxParallel} at a time${rollout.canary ? `, ${rollout.canary} canary` : ""}; ` +
        `started by ${rollout.startedBy}`,
    ),
    rollout.message ? h("p", {}, rollout.message) : null,
    rollout.failure ? h("p", { class: "error" }, rollout.failure) : null,
    h("div", { class: "actions" }, controls(rollout)),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "targets" },
        h("caption", { class: "sr-only" }, "Targets of the rollout"),
        h("thead", {}, h("tr", {}, ["Target", "State", "What it waits for"].map((t) => h("th", { scope: "col" }, t)))),
        h(
          "tbody",
          {},
          rollout.targets.slice(0, TARGETS_SHOWN).map((t) =>
            h(
              "tr",
              {},
              h("th", { scope: "row", class: "mono" }, t.name),
              h("td", {}, badge(t.state, TARGET_KIND[t.state])),
              h("td", {}, t.message),
            ),
          ),
        ),
      ),
    ),
  ];
}

export function rolloutPanel(name, signal) {
  const body = h("div", {});
  const element = h(
    "section",
    { id: "rollout", "aria-labelledby": "rollout-title", hidden: true },
    h("h2", { id: "rollout-title" }, "Rollout"),
    body,
  );
  const units = rolloutUnits(name);
  let seen = null;

  const load = async () => {
    for (const unit of units) {
      try {
        const rollout = await getJSON(`/fleet/v1/rollouts/${encodeURIComponent(unit)}`, { signal });
        element.hidden = false;
        if (rollout.active) fill(body, details(rollout));
        else {
          fill(
            body,
            h(
              "p",
              {},
              "Last rollout of ",
              h("span", { class: "mono" }, rollout.unit),
              ": ",
              badge(rollout.phase, PHASE_KIND[rollout.phase]),
              ` (version ${rollout.fromVersion} → ${rollout.toVersion}) ${rollout.message}`,
            ),
          );
        }
        return;
      } catch (err) {
        if (err.name === "AbortError") return;
        if (err.status !== 404) {
          element.hidden = false;
          fill(body, h("p", { class: "error" }, err.message));
          return;
        }
      }
    }
    element.hidden = true;
  };

  return {
    element,
    update(cluster) {
      const now = JSON.stringify(units.map((u) => cluster.rollouts.get(u) || null));
      if (now !== seen) {
        seen = now;
        load();
      }
    },
  };
}
