// The units table: every unit, filtered by name, status and machine, sorted by a column,
// shown PAGE_SIZE rows at a time (10,000 units stay fast: only one page is in the DOM).
// The filter lives in the URL (#/units?q=web&status=failed&machine=ID&sort=name&page=2).

import { badge, fill, fmtCount, h, shortHash } from "./dom.js";
import { STATUSES } from "./model.js";
import { keepingFocus, reasonsList, stateLabel, unitLink } from "./view-machines.js";

export const PAGE_SIZE = 100;
const OPEN_REASONS = 4; // up to this many machines, their reasons show without a click
const STATUS_KIND = {
  running: "ok",
  starting: "info",
  failed: "bad",
  unhealthy: "bad",
  unplaceable: "warn",
  loaded: "",
  inactive: "",
};
const HEALTH_KIND = { healthy: "ok", unhealthy: "bad", unknown: "" };
const COLUMNS = [
  { key: "name", label: "Unit" },
  { key: "desired", label: "Desired", class: "narrow-hide" },
  { key: "status", label: "Status" },
  { key: "machine", label: "Machines and systemd state" },
  { key: "health", label: "Health" },
  { key: "hash", label: "Hash", class: "narrow-hide" },
];

export function statusBadge(row) {
  return badge(row.status, STATUS_KIND[row.status]);
}

export function healthBadge(health, message) {
  return health ? badge(health, HEALTH_KIND[health], message || undefined) : h("span", { class: "muted" }, "—");
}

function sortKey(row, key, cluster) {
  switch (key) {
    case "machine":
      return row.copies.length ? cluster.machineName(row.copies[0].machine) : "\uffff";
    case "desired":
      return row.desired;
    case "status":
      return row.status;
    case "health":
      return row.health || "\uffff";
    case "hash":
      return row.unit ? row.unit.hash : "";
    default:
      return row.name;
  }
}

function where(row, cluster) {
  if (row.unplaceable) {
    return h(
      "div",
      { class: "not-placed" },
      h("span", {}, Object.keys(row.unplaceable.reasons || {}).length ? "Not placed" : `Not placed: ${row.unplaceable.summary}`),
      Object.keys(row.unplaceable.reasons || {}).length
        ? h(
            "details",
            { open: Object.keys(row.unplaceable.reasons).length <= OPEN_REASONS },
            h("summary", {}, "why, per machine"),
            reasonsList(row.unplaceable.reasons, cluster),
          )
        : null,
    );
  }
  if (row.copies.length === 0) return h("span", { class: "muted" }, "not scheduled");
  return h(
    "ul",
    { class: "copies" },
    row.copies.map((c) =>
      h("li", {}, h("strong", {}, cluster.machineName(c.machine)), " ", stateLabel(c.state)),
    ),
  );
}

function rowElement(row, cluster) {
  const health = row.copies.find((c) => c.state && c.state.health === row.health);
  return h(
    "tr",
    { class: row.unplaceable ? "unplaceable" : "", dataset: { unit: row.name } },
    h("th", { scope: "row" }, unitLink(row.name)),
    h("td", { class: "narrow-hide", dataset: { label: "Desired" } }, row.desired),
    h("td", { dataset: { label: "Status" } }, statusBadge(row)),
    h("td", { dataset: { label: "Machines" } }, where(row, cluster)),
    h("td", { dataset: { label: "Health" } }, healthBadge(row.health, health && health.state.healthMessage)),
    h("td", { class: "narrow-hide mono", dataset: { label: "Hash" } }, shortHash(row.unit && row.unit.hash)),
  );
}

function readQuery(params) {
  return {
    q: params.get("q") || "",
    status: params.get("status") || "",
    machine: params.get("machine") || "",
    sort: params.get("sort") || "name",
    desc: params.get("desc") === "1",
    page: Math.max(1, Number(params.get("page")) || 1),
  };
}

function writeQuery(query) {
  const params = new URLSearchParams();
  if (query.q) params.set("q", query.q);
  if (query.status) params.set("status", query.status);
  if (query.machine) params.set("machine", query.machine);
  if (query.sort !== "name") params.set("sort", query.sort);
  if (query.desc) params.set("desc", "1");
  if (query.page > 1) params.set("page", String(query.page));
  const text = params.toString();
  history.replaceState(null, "", `#/units${text ? `?${text}` : ""}`);
}

/** The rows `query` selects, sorted (pure: the benchmark measures it). */
export function select(cluster, query) {
  const needle = query.q.trim().toLowerCase();
  let rows = cluster.index.rows.filter(
    (row) =>
      (!needle || row.name.toLowerCase().includes(needle)) &&
      (!query.status ||
        row.status === query.status ||
        (query.status === "unhealthy" && row.health === "unhealthy")) &&
      (!query.machine || row.copies.some((c) => c.machine === query.machine)),
  );
  if (query.sort !== "name" || query.desc) {
    const keyed = rows.map((row) => [sortKey(row, query.sort, cluster), row.name, row]);
    keyed.sort((a, b) => a[0].localeCompare(b[0]) || a[1].localeCompare(b[1]));
    rows = keyed.map((k) => k[2]);
    if (query.desc) rows.reverse();
  }
  return rows;
}

export function unitsView(main, params) {
  const query = readQuery(params);
  const search = h("input", { id: "unit-filter", type: "search", value: query.q, autocomplete: "off" });
  const status = h(
    "select",
    { id: "unit-status" },
    h("option", { value: "" }, "any"),
    STATUSES.map((s) => h("option", { value: s, selected: s === query.status }, s)),
  );
  const machine = h("select", { id: "unit-machine" });
  const sort = h(
    "select",
    { id: "unit-sort" },
    COLUMNS.flatMap((c) => [
      h("option", { value: `${c.key}:`, selected: query.sort === c.key && !query.desc }, `${c.label} ▲`),
      h("option", { value: `${c.key}:1`, selected: query.sort === c.key && query.desc }, `${c.label} ▼`),
    ]),
  );
  const count = h("p", { id: "unit-count", class: "count", role: "status" });
  const head = h("tr", {});
  const body = h("tbody", {});
  const prev = h("button", { type: "button", class: "small" }, "Previous page");
  const next = h("button", { type: "button", class: "small" }, "Next page");
  const pageText = h("span", { class: "page" });
  let current = null;
  let machinesSeen = "";

  const render = () => {
    writeQuery(query);
    if (current) view.update(current);
  };
  const changed = (field, value) => {
    query[field] = value;
    query.page = 1;
    render();
  };
  search.addEventListener("input", () => changed("q", search.value));
  status.addEventListener("change", () => changed("status", status.value));
  machine.addEventListener("change", () => changed("machine", machine.value));
  sort.addEventListener("change", () => {
    const [key, desc] = sort.value.split(":");
    query.sort = key;
    query.desc = desc === "1";
    render();
  });
  prev.addEventListener("click", () => {
    query.page -= 1;
    render();
  });
  next.addEventListener("click", () => {
    query.page += 1;
    render();
  });
  for (const column of COLUMNS) {
    const button = h("button", { type: "button", class: "sort", dataset: { sort: column.key } }, column.label);
    button.addEventListener("click", () => {
      query.desc = query.sort === column.key ? !query.desc : false;
      query.sort = column.key;
      render();
    });
    head.append(h("th", { scope: "col", class: column.class, dataset: { col: column.key } }, button));
  }

  fill(
    main,
    h("h1", {}, "Units"),
    h(
      "form",
      { class: "filters", role: "search", onsubmit: (e) => e.preventDefault() },
      h("div", {}, h("label", { for: "unit-filter" }, "Name contains"), search),
      h("div", {}, h("label", { for: "unit-status" }, "Status"), status),
      h("div", {}, h("label", { for: "unit-machine" }, "Machine"), machine),
      h("div", {}, h("label", { for: "unit-sort" }, "Sort by"), sort),
    ),
    count,
    h(
      "div",
      { class: "table-wrap" },
      h("table", { class: "units" }, h("caption", { class: "sr-only" }, "Units"), h("thead", {}, head), body),
    ),
    h("nav", { class: "pager", "aria-label": "Pages of units" }, prev, pageText, next),
  );

  const view = {
    title: "Units",
    update(cluster) {
      current = cluster;
      const ids = cluster.sortedMachines().map((m) => m.id);
      if (ids.join() !== machinesSeen) {
        machinesSeen = ids.join();
        fill(
          machine,
          h("option", { value: "" }, "any"),
          ids.map((id) => h("option", { value: id, selected: id === query.machine }, cluster.machineName(id))),
        );
      }
      const rows = select(cluster, query);
      const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
      query.page = Math.min(query.page, pages);
      const start = (query.page - 1) * PAGE_SIZE;
      const shown = rows.slice(start, start + PAGE_SIZE);
      const total = cluster.units.size;
      count.textContent =
        rows.length === 0
          ? `No unit matches (of ${fmtCount(total)}).`
          : `Showing ${fmtCount(start + 1)}–${fmtCount(start + shown.length)} of ${fmtCount(rows.length)}` +
            (rows.length === total ? " units." : ` matching units (${fmtCount(total)} in all).`);
      sort.value = `${query.sort}:${query.desc ? "1" : ""}`;
      for (const th of head.children) {
        const key = th.dataset.col;
        if (key === query.sort) th.setAttribute("aria-sort", query.desc ? "descending" : "ascending");
        else th.removeAttribute("aria-sort");
      }
      keepingFocus(body, () => body.replaceChildren(...shown.map((row) => rowElement(row, cluster))));
      pageText.textContent = `Page ${query.page} of ${pages}`;
      prev.disabled = query.page <= 1;
      next.disabled = query.page >= pages;
    },
    unmount() {},
  };
  return view;
}
