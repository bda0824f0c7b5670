// DOM helpers: elements built from data never go through innerHTML (no markup injection).

/** h("a", {href: "#/", class: "x", onclick: fn}, "text", child, [more]) -> Element */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Replace every child of `el` with `children`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function fmtCpu(millis) {
  if (!millis) return "0";
  return millis % 1000 === 0 ? String(millis / 1000) : (millis / 1000).toFixed(2).replace(/0$/, "");
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

export function fmtBytes(bytes) {
  let value = bytes || 0;
  let i = 0;
  while (value >= 1024 && i < UNITS.length - 1) {
    value /= 1024;
    i += 1;
  }
  return `${value >= 10 || i === 0 ? Math.round(value) : value.toFixed(1)} ${UNITS[i]}`;
}

export function fmtCount(n) {
  return Number(n).toLocaleString("en");
}

export function shortHash(hash) {
  return (hash || "").slice(0, 7);
}

export function clock(date) {
  return date.toTimeString().slice(0, 8);
}

/** A meter: "label: used of total [unit]" as text and a bar (role=meter for assistive technology). */
export function meter(label, used, total, format, unit = "") {
  const ratio = total > 0 ? Math.min(used / total, 1) : 0;
  const text = `${format(used)} of ${format(total)}${unit}`;
  const bar = h("span", { class: "bar-fill" });
  bar.style.width = `${(ratio * 100).toFixed(1)}%`;
  const level = ratio >= 0.9 ? "high" : ratio >= 0.7 ? "mid" : "low";
  return h(
    "div",
    { class: "meter" },
    h("span", { class: "meter-label" }, label),
    h(
      "span",
      {
        class: `bar ${level}`,
        role: "meter",
        "aria-label": `${label} allocated`,
        "aria-valuemin": 0,
        "aria-valuemax": total,
        "aria-valuenow": Math.min(used, total),
        "aria-valuetext": text,
      },
      bar,
    ),
    h("span", { class: "meter-text" }, text),
  );
}

/** A short status word with a colour class and the word itself (never colour alone). */
export function badge(text, kind, title) {
  return h("span", { class: `badge ${kind || ""}`, title }, text);
}

let toastSeq = 0;

/** A message in the live region; errors stay until dismissed, others fade. */
export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  const id = `toast-${(toastSeq += 1)}`;
  const close = h("button", { type: "button", class: "quiet small", "aria-label": "Dismiss" }, "×");
  const item = h("div", { class: `toast ${kind}`, id }, h("span", {}, message), close);
  close.addEventListener("click", () => item.remove());
  box.append(item);
  if (kind !== "error") setTimeout(() => item.remove(), 6000);
  return item;
}
