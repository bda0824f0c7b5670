// Keeps the model live: GET /fleet/v1/cluster once, then /fleet/v1/events?since=<revision>
// read as a stream (fetch, so that a 401 is seen and the request can be aborted).  A lost
// stream is resumed from the last revision seen; a "resync" (the registry compacted its
// history past that point) reads the whole cluster again.

import { call, getJSON, machinePath } from "./api.js";

const KEEP_EVENTS = 200;
const SILENCE_LIMIT = 45000; // the server sends a keep-alive every 15 s
const RETRY_FIRST = 500;
const RETRY_MAX = 10000;

class Resync extends Error {}

function parseBlock(block) {
  const event = { event: "", data: "", id: "" };
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const cut = line.indexOf(":");
    const field = cut < 0 ? line : line.slice(0, cut);
    const value = cut < 0 ? "" : line.slice(cut + 1).replace(/^ /, "");
    if (field === "event") event.event = value;
    else if (field === "data") event.data += event.data ? `\n${value}` : value;
    else if (field === "id") event.id = value;
  }
  return event;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class Live {
  constructor(cluster, onStatus) {
    this.cluster = cluster;
    this.onStatus = onStatus;
    this.since = 0;
    this.stopped = false;
    this.controller = null;
    this.events = []; // the last KEEP_EVENTS events, newest first
    this.eventCount = 0;
    this.stale = new Set();
    this.staleTimer = null;
  }

  async start() {
    await this.reload();
    this.run();
  }

  stop() {
    this.stopped = true;
    if (this.controller) this.controller.abort();
  }

  async reload() {
    const view = await getJSON("/fleet/v1/cluster");
    this.cluster.load(view);
    this.since = view.revision;
  }

  async run() {
    let delay = RETRY_FIRST;
    while (!this.stopped) {
      try {
        await this.follow();
        delay = RETRY_FIRST;
      } catch (err) {
        if (this.stopped) return;
        if (err.status === 401) {
          this.onStatus("signed out", "offline");
          return;
        }
        if (err instanceof Resync) {
          this.onStatus("reloading", "pending");
          try {
            await this.reload();
            continue;
          } catch (reloadError) {
            this.onStatus(`reconnecting: ${reloadError.message}`, "offline");
          }
        } else {
          this.onStatus(`reconnecting: ${err.message}`, "offline");
        }
      }
      if (this.stopped) return;
      await sleep(delay);
      delay = Math.min(delay * 2, RETRY_MAX);
    }
  }

  async follow() {
    const controller = new AbortController();
    this.controller = controller;
    let silence = null;
    const quiet = () => {
      clearTimeout(silence);
      silence = setTimeout(() => controller.abort(), SILENCE_LIMIT);
    };
    quiet();
    try {
      const response = await call("GET", `/fleet/v1/events?since=${this.since}`, undefined, {
        signal: controller.signal,
      });
      this.onStatus("live", "live");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) throw new Error("the event stream ended");
        quiet();
        buffer += value.replace(/\r\n?/g, "\n");
        let cut = buffer.indexOf("\n\n");
        while (cut >= 0) {
          this.handle(parseBlock(buffer.slice(0, cut)));
          buffer = buffer.slice(cut + 2);
          cut = buffer.indexOf("\n\n");
        }
      }
    } catch (err) {
      if (err.name === "AbortError" && !this.stopped) throw new Error("no word from fleetd");
      throw err;
    } finally {
      clearTimeout(silence);
      controller.abort(); // closes the connection whatever ended the read
    }
  }

  handle(event) {
    if (!event.event) return;
    if (event.event === "resync") throw new Resync("history compacted");
    const data = JSON.parse(event.data || "{}");
    if (event.event === "error") throw new Error(data.reason || "the event stream failed");
    const revision = Number(event.id) || 0;
    // Resume at the revision before: a revision whose events were not all read is sent
    // again whole (applying an event twice changes nothing).
    if (revision > 0) this.since = Math.max(this.since, revision - 1);
    this.events.unshift({ kind: event.event, data, revision, at: new Date() });
    if (this.events.length > KEEP_EVENTS) this.events.length = KEEP_EVENTS;
    this.eventCount += 1;
    const refresh = this.cluster.apply(event.event, data);
    if (refresh) this.refreshMachine(refresh);
  }

  // A machine event carries its address and systemd link; the rest of its record
  // (hostname, metadata with overrides, capacity) is read again, once per burst.
  refreshMachine(id) {
    this.stale.add(id);
    if (this.staleTimer !== null) return;
    this.staleTimer = setTimeout(async () => {
      this.staleTimer = null;
      const ids = [...this.stale];
      this.stale.clear();
      for (const machine of ids) {
        try {
          this.cluster.updateMachine(await getJSON(machinePath(machine)));
        } catch {
          // gone meanwhile (its delete event follows) or fleetd busy: the next event retries
        }
      }
    }, 300);
  }
}
