// One unit: its state where it runs, why it is not placed, its rollout, its file, its
// versions with diffs, `systemctl status` and a live `journalctl` tail from its machine,
// and actions.

import { actionButton } from "./actions.js";
import { ApiError, call, getJSON, unitPath } from "./api.js";
import { diffLines } from "./diff.js";
import { fill, h, shortHash } from "./dom.js";
import { reasonsList, stateLabel } from "./view-machines.js";
import { rolloutPanel } from "./view-rollout.js";
import { healthBadge, statusBadge } from "./view-units.js";

const JOURNAL_LINES = 50;
const JOURNAL_KEEP = 500;

/** fleet's option list as the unit file's text. */
export function fileText(options) {
  const sections = new Map();
  for (const o of options) {
    if (!sections.has(o.section)) sections.set(o.section, []);
    sections.get(o.section).push(`${o.name}=${o.value}`);
  }
  return [...sections].map(([section, lines]) => `[${section}]\n${lines.join("\n")}\n`).join("\n");
}

function section(id, title, ...children) {
  return h("section", { id, "aria-labelledby": `${id}-title` }, h("h2", { id: `${id}-title` }, title), children);
}

function diffView(before, after) {
  return h(
    "pre",
    { class: "diff", "aria-label": "changes: lines starting with + were added, - removed" },
    diffLines(before, after).map(({ op, line }) =>
      h("span", { class: op === "+" ? "add" : op === "-" ? "del" : "same" }, `${op} ${line}\n`),
    ),
  );
}

export function unitView(main, name) {
  const controller = new AbortController();
  const signal = controller.signal;
  const badgeSlot = h("span", {});
  const desiredSlot = h("span", {});
  const hashSlot = h("span", { class: "mono" });
  const where = h("div", {});
  const placement = section("placement", "Placement");
  placement.hidden = true;
  const placementBody = h("div", {});
  placement.append(placementBody);
  const file = h("pre", { class: "file", tabindex: "0", "aria-label": "unit file" });
  const versions = h("div", {});
  const diff = h("div", { class: "diff-wrap", "aria-live": "polite" });
  const statusText = h("pre", { class: "output", tabindex: "0", "aria-label": "systemctl status" }, "…");
  const statusButton = h("button", { type: "button", class: "small" }, "Refresh status");
  const journalText = h("pre", { class: "output journal", tabindex: "0", "aria-label": "journal" }, "…");
  const journalButton = h("button", { type: "button", class: "small", "aria-pressed": "true" }, "Following");
  const target = { kind: "unit", name, label: name, cluster: null };
  const actions = h("div", { class: "actions" });
  const rollout = rolloutPanel(name, signal);
  let known = { hash: null, machines: null, exists: null };
  let journal = null;
  let following = true;

  fill(
    main,
    h("p", { class: "crumbs" }, h("a", { href: "#/units" }, "Units"), " / "),
    h("h1", { class: "mono" }, name),
    h("p", { class: "unit-head" }, badgeSlot, " desired ", desiredSlot, " · hash ", hashSlot),
    actions,
    section("where", "Where it runs", where),
    placement,
    rollout.element,
    section("file", "Unit file", file),
    section("versions", "Versions", versions, diff),
    section("status", "Status", statusButton, statusText),
    section("journal", "Journal", journalButton, journalText),
  );

  const loadFile = async () => {
    try {
      const unit = await getJSON(unitPath(name), { signal });
      file.textContent = fileText(unit.options);
    } catch (err) {
      if (err.name !== "AbortError") file.textContent = err.status === 404 ? "(no such unit)" : err.message;
    }
  };

  const showDiff = async (version) => {
    fill(diff, h("p", { class: "muted" }, `Loading version ${version.version}…`));
    try {
      const current = await getJSON(`${unitPath(name)}/versions/${version.version}`, { signal });
      const before = current.previous
        ? (await getJSON(`${unitPath(name)}/versions/${current.previous}`, { signal })).text
        : "";
      const label = current.previous
        ? `Version ${current.previous} → ${current.version}`
        : `Version ${current.version} (first kept)`;
      fill(diff, h("h3", {}, label), diffView(before, current.text));
    } catch (err) {
      if (err.name !== "AbortError") fill(diff, h("p", { class: "error" }, err.message));
    }
  };

  const loadVersions = async () => {
    try {
      const list = await getJSON(`${unitPath(name)}/versions`, { signal });
      const rows = list.versions.slice().reverse();
      if (rows.length === 0) {
        fill(versions, h("p", { class: "muted" }, "No version of its file is kept."));
        return;
      }
      fill(
        versions,
        h(
          "table",
          { class: "versions" },
          h("caption", { class: "sr-only" }, "Versions of the unit file, newest first"),
          h(
            "thead",
            {},
            h("tr", {}, ["Version", "Written", "By", "Changes", ""].map((t) => h("th", { scope: "col" }, t))),
          ),
          h(
            "tbody",
            {},
            rows.map((v) =>
              h(
                "tr",
                {},
                h("th", { scope: "row" }, `${v.version}${v.version === list.current ? " (current)" : ""}`),
                h("td", {}, v.time ? v.time.replace("T", " ").replace("Z", " UTC") : "not recorded"),
                h("td", {}, v.by),
                h("td", {}, v.changes),
                h(
                  "td",
                  {},
                  h(
                    "button",
                    {
                      type: "button",
                      class: "small",
                      "aria-label": `Show the changes of version ${v.version}`,
                      onclick: () => showDiff(v),
                    },
                    "Diff",
                  ),
                ),
              ),
            ),
          ),
        ),
      );
    } catch (err) {
      if (err.name !== "AbortError") fill(versions, h("p", { class: "muted" }, err.message));
    }
  };

  const loadStatus = async () => {
    statusButton.disabled = true;
    try {
      const status = await getJSON(`${unitPath(name)}/status`, { signal });
      statusText.textContent = status.output || `(exit status ${status.exitCode}, no output)`;
    } catch (err) {
      if (err.name !== "AbortError") statusText.textContent = err.message;
    } finally {
      statusButton.disabled = false;
    }
  };

  const stopJournal = () => {
    if (journal) journal.abort();
    journal = null;
  };

  const followJournal = async () => {
    stopJournal();
    const mine = new AbortController();
    journal = mine;
    signal.addEventListener("abort", () => mine.abort(), { once: true });
    let lines = [];
    journalText.textContent = "";
    try {
      const url = `${unitPath(name)}/journal?lines=${JOURNAL_LINES}&follow=true`;
      const response = await call("GET", url, undefined, { signal: mine.signal });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let partial = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const parts = (partial + value).split("\n");
        partial = parts.pop();
        lines = lines.concat(parts).slice(-JOURNAL_KEEP);
        const atEnd = journalText.scrollHeight - journalText.scrollTop - journalText.clientHeight < 24;
        journalText.textContent = lines.join("\n") + (partial ? `\n${partial}` : "");
        if (atEnd) journalText.scrollTop = journalText.scrollHeight;
      }
      journalText.append("\n-- the journal stream ended --");
    } catch (err) {
      if (err.name === "AbortError") return;
      journalText.textContent = err instanceof ApiError ? err.message : String(err);
    }
  };

  statusButton.addEventListener("click", loadStatus);
  journalButton.addEventListener("click", () => {
    following = !following;
    journalButton.setAttribute("aria-pressed", String(following));
    journalButton.textContent = following ? "Following" : "Paused";
    if (following) followJournal();
    else stopJournal();
  });

  return {
    title: name,
    update(cluster) {
      target.cluster = cluster;
      rollout.update(cluster);
      const row = cluster.row(name);
      const exists = Boolean(row.unit);
      fill(badgeSlot, exists ? statusBadge(row) : h("span", { class: "badge bad" }, "no such unit"));
      desiredSlot.textContent = row.desired;
      hashSlot.textContent = exists ? shortHash(row.unit.hash) : "—";
      if (known.exists !== exists) {
        fill(
          actions,
          exists
            ? ["start", "stop", "restart", "destroy"].map((a) => actionButton(a, target))
            : h("p", { class: "muted" }, "This unit is not in the cluster (its versions are kept)."),
        );
      }
      fill(
        where,
        row.copies.length === 0
          ? h("p", { class: "muted" }, row.unplaceable ? "Nowhere: it could not be placed." : "Not scheduled.")
          : h(
              "table",
              { class: "where" },
              h("caption", { class: "sr-only" }, "Machines the unit is scheduled to"),
              h(
                "thead",
                {},
                h("tr", {}, ["Machine", "systemd", "Health", "Message"].map((t) => h("th", { scope: "col" }, t))),
              ),
              h(
                "tbody",
                {},
                row.copies.map((c) =>
                  h(
                    "tr",
                    {},
                    h("th", { scope: "row" }, cluster.machineName(c.machine)),
                    h("td", {}, stateLabel(c.state)),
                    h("td", {}, healthBadge(c.state && c.state.health)),
                    h("td", {}, (c.state && c.state.healthMessage) || ""),
                  ),
                ),
              ),
            ),
      );
      const reasons = cluster.placements.get(name);
      placement.hidden = !reasons || !row.unplaceable;
      if (reasons && row.unplaceable) {
        fill(
          placementBody,
          h("p", {}, "It could not be placed. Why not, per machine:"),
          reasonsList(reasons.reasons, cluster) || h("p", {}, reasons.summary),
        );
      }
      const hash = exists ? row.unit.hash : "";
      if (hash !== known.hash) {
        loadFile();
        loadVersions();
      }
      const machines = row.copies.map((c) => c.machine).join();
      if (machines !== known.machines) {
        if (machines) {
          loadStatus();
          if (following) followJournal();
        } else {
          stopJournal();
          statusText.textContent = "Not scheduled to any machine.";
          journalText.textContent = "Not scheduled to any machine.";
        }
      }
      known = { hash, machines, exists };
    },
    unmount() {
      controller.abort();
      stopJournal();
    },
  };
}
