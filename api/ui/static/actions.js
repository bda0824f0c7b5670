// What the page can change: each action needs a role (the token's, as the API's route table
// has it), is confirmed in a dialog before it acts, and reports what it did.

import { call, machinePath, unitPath } from "./api.js";
import { h, toast } from "./dom.js";

const RANK = { read: 1, operate: 2, admin: 3 };
const STOP_WAIT = 60000;
// systemd ActiveStates of a unit that does not run (as fleetctl restart has them).
const STOPPED = new Set(["inactive", "failed"]);

function desired(state) {
  return (target) => call("PUT", unitPath(target.name), { desiredState: state });
}

function machineFlag(verb) {
  return (target) => call("POST", `${machinePath(target.id)}/${verb}`);
}

function rolloutControl(verb) {
  return (target) => call("POST", `/fleet/v1/rollouts/${encodeURIComponent(target.name)}/${verb}`);
}

function stoppedEverywhere(cluster, name) {
  const states = cluster.states.get(name);
  if (!states) return true;
  return [...states.values()].every((s) => STOPPED.has(s.systemdActiveState));
}

function waitStopped(cluster, name) {
  return new Promise((resolve, reject) => {
    if (stoppedEverywhere(cluster, name)) {
      resolve();
      return;
    }
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`${name} did not stop within ${STOP_WAIT / 1000}s`));
    }, STOP_WAIT);
    const unsubscribe = cluster.subscribe(() => {
      if (stoppedEverywhere(cluster, name)) {
        clearTimeout(timer);
        unsubscribe();
        resolve();
      }
    });
  });
}

// As fleetctl restart: stop, wait until systemd no longer runs it anywhere, start.
async function restart(target) {
  await call("PUT", unitPath(target.name), { desiredState: "loaded" });
  await waitStopped(target.cluster, target.name);
  await call("PUT", unitPath(target.name), { desiredState: "launched" });
}

export const ACTIONS = {
  start: {
    role: "operate",
    label: "Start",
    question: (t) => `Start ${t.label}? Its desired state becomes launched.`,
    done: (t) => `Start of ${t.label} requested`,
    perform: desired("launched"),
  },
  stop: {
    role: "operate",
    label: "Stop",
    question: (t) => `Stop ${t.label}? Its desired state becomes loaded.`,
    done: (t) => `Stop of ${t.label} requested`,
    perform: desired("loaded"),
  },
  restart: {
    role: "operate",
    label: "Restart",
    question: (t) => `Restart ${t.label}? It is stopped, and started again once it stopped.`,
    done: (t) => `${t.label} restarted`,
    perform: restart,
  },
  destroy: {
    role: "admin",
    label: "Destroy",
    danger: true,
    question: (t) => `Destroy ${t.label}? It stops and its file is removed from the cluster.`,
    done: (t) => `${t.label} destroyed`,
    perform: (t) => call("DELETE", unitPath(t.name)),
  },
  cordon: {
    role: "operate",
    label: "Cordon",
    question: (t) => `Cordon ${t.label}? No new units are placed on it; its units stay.`,
    done: (t) => `${t.label} cordoned`,
    perform: machineFlag("cordon"),
  },
  uncordon: {
    role: "operate",
    label: "Uncordon",
    question: (t) => `Uncordon ${t.label}? New units may be placed on it again.`,
    done: (t) => `${t.label} uncordoned`,
    perform: machineFlag("uncordon"),
  },
  drain: {
    role: "operate",
    label: "Drain",
    danger: true,
    question: (t) => `Drain ${t.label}? It is cordoned and its units move to other machines.`,
    done: (t) => `${t.label} is draining`,
    perform: machineFlag("drain"),
  },
  reboot: {
    role: "operate",
    label: "Request reboot",
    danger: true,
    question: (t) =>
      `Ask for a reboot of ${t.label}? When a slot of the cluster's reboot semaphore is free, it is drained and rebooted, and the units are spread again.`,
    done: (t) => `Reboot of ${t.label} requested`,
    perform: (t) => call("POST", `${machinePath(t.id)}/reboot-request`),
  },
  cancelMaintenance: {
    role: "operate",
    label: "Cancel maintenance",
    danger: true,
    question: (t) =>
      `Cancel ${t.label}? No machine starts any more; a draining one is uncordoned; one being acted on finishes first; the units are spread again.`,
    done: (t) => `${t.label} is being cancelled`,
    perform: () => call("POST", "/fleet/v1/maintenance/cancel"),
  },
  pause: {
    role: "operate",
    label: "Pause",
    question: (t) => `Pause ${t.label}? No new target is started; those in flight are followed.`,
    done: (t) => `${t.label} paused`,
    perform: rolloutControl("pause"),
  },
  resume: {
    role: "operate",
    label: "Resume",
    question: (t) => `Resume ${t.label}?`,
    done: (t) => `${t.label} resumed`,
    perform: rolloutControl("resume"),
  },
  promote: {
    role: "operate",
    label: "Promote",
    question: (t) => `Promote ${t.label}? The canaries are good: every target is updated.`,
    done: (t) => `${t.label} promoted`,
    perform: rolloutControl("promote"),
  },
  abort: {
    role: "operate",
    label: "Abort",
    danger: true,
    question: (t) => `Abort ${t.label}? Every target keeps the file it has now.`,
    done: (t) => `${t.label} aborted`,
    perform: rolloutControl("abort"),
  },
};

let role = "read";

export function useRole(name) {
  role = name;
}

export function allowed(action) {
  return (RANK[role] || 0) >= RANK[ACTIONS[action].role];
}

/** Ask before acting; resolves true when confirmed. */
export function confirmAction(question, label, danger) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = `${label}?`;
  document.getElementById("confirm-text").textContent = question;
  const ok = document.getElementById("confirm-ok");
  ok.textContent = label;
  ok.className = danger ? "danger" : "primary";
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}

async function run(action, target, button) {
  const spec = ACTIONS[action];
  if (!(await confirmAction(spec.question(target), spec.label, spec.danger))) return;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    await spec.perform(target);
    toast(spec.done(target), "ok");
  } catch (err) {
    toast(`${spec.label} ${target.label} failed: ${err.message}`, "error");
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

/** The button of one action on one target (a unit or a machine); disabled, saying which
 * role it needs, when the session's role is too low. */
export function actionButton(action, target) {
  const spec = ACTIONS[action];
  const ok = allowed(action);
  const button = h(
    "button",
    {
      type: "button",
      class: `small ${spec.danger ? "danger" : ""}`,
      disabled: !ok,
      title: ok ? `${spec.label} ${target.label}` : `${spec.label} needs the ${spec.role} role`,
      "aria-label": `${spec.label} ${target.label}`,
      dataset: { action, key: `${action}:${target.id || target.name}` },
    },
    spec.label,
  );
  button.addEventListener("click", () => run(action, target, button));
  return button;
}
