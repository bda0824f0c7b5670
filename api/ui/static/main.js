// The dashboard: sign in if needed, load the cluster, keep it live, show the page the URL
// names (#/ cluster, #/units, #/unit/NAME, #/events).

import { currentSession, onSignedOut, signOut, useSession } from "./api.js";
import { useRole } from "./actions.js";
import { fill, h, toast } from "./dom.js";
import { Live } from "./live.js";
import { askToken } from "./login.js";
import { Cluster } from "./model.js";
import { machinesView } from "./view-machines.js";
import { eventsView } from "./view-events.js";
import { unitView } from "./view-unit.js";
import { unitsView } from "./view-units.js";

const main = document.getElementById("view");
const liveText = document.getElementById("live");
const callerText = document.getElementById("caller");
const signOutButton = document.getElementById("signout");
const cluster = new Cluster();
let live = null;
let view = null;
let booting = false;

function setLive(text, kind) {
  liveText.textContent = text;
  liveText.className = `live ${kind}`;
}

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query] = raw.split("?", 2);
  return { path, params: new URLSearchParams(query || "") };
}

function route(focus) {
  if (view) view.unmount();
  const { path, params } = parseHash();
  let page = "machines";
  if (path === "/units") {
    page = "units";
    view = unitsView(main, params);
  } else if (path.startsWith("/unit/")) {
    page = "units";
    view = unitView(main, decodeURIComponent(path.slice("/unit/".length)));
  } else if (path === "/events") {
    page = "events";
    view = eventsView(main, live);
  } else {
    view = machinesView(main);
  }
  for (const link of document.querySelectorAll("nav a[data-page]")) {
    if (link.dataset.page === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${view.title} · fleetd`;
  view.update(cluster);
  if (focus) main.focus({ preventScroll: true });
}

cluster.subscribe(() => {
  if (view) view.update(cluster);
});

async function connect(why) {
  if (live) live.stop();
  live = null;
  if (view) view.unmount();
  view = null;
  let session = await currentSession();
  const asked = !session;
  if (!session) {
    setLive("signed out", "offline");
    signOutButton.hidden = true;
    callerText.textContent = "";
    session = await askToken(main, why);
  }
  useSession(session);
  useRole(session.role);
  callerText.textContent = `${session.name} (${session.role})`;
  signOutButton.hidden = !session.token;
  fill(main, h("p", { class: "loading" }, "Loading the cluster…"));
  setLive("connecting", "pending");
  live = new Live(cluster, setLive);
  await live.start();
  route(asked); // after signing in, focus moves from the form to the page
}

async function start(why) {
  if (booting) return; // a 401 while starting is handled by the loop below
  booting = true;
  try {
    let reason = why;
    for (;;) {
      try {
        await connect(reason);
        return;
      } catch (err) {
        if (err.status !== 401) throw err;
        reason = `Your session ended: ${err.message}`;
      }
    }
  } catch (err) {
    setLive("offline", "offline");
    fill(
      main,
      h("h1", {}, "fleetd did not answer"),
      h("p", { class: "error", role: "alert" }, err.message),
      h("button", { type: "button", class: "primary", onclick: () => start() }, "Try again"),
    );
  } finally {
    booting = false;
  }
}

onSignedOut((err) => {
  if (booting) return;
  toast(`Signed out: ${err.message}`, "error");
  start(`Your session ended: ${err.message}`);
});

signOutButton.addEventListener("click", async () => {
  try {
    await signOut();
  } catch (err) {
    toast(`Sign-out failed: ${err.message}`, "error");
    return;
  }
  start("Signed out.");
});

window.addEventListener("hashchange", () => {
  if (live && !booting) route(true);
});

start();
