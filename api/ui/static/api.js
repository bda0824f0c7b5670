// The page's calls: the API under ./api (the session cookie stands for the token there),
// the session under ./session, ./login and ./logout.  Paths are relative to /ui/.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const CSRF_HEADER = "X-Fleetd-CSRF";
const WRITES = new Set(["PUT", "POST", "PATCH", "DELETE"]);
let csrf = "";
let signedOut = () => {};

/** Remember the session's CSRF token (every write carries it). */
export function useSession(session) {
  csrf = session ? session.csrf : "";
}

/** Call `handler` when a request finds the session gone (a 401). */
export function onSignedOut(handler) {
  signedOut = handler;
}

async function errorOf(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) message = body.error.message;
  } catch {
    // not fleet's error shape: the status line says enough
  }
  return new ApiError(response.status, message);
}

async function send(method, url, body, options = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (WRITES.has(method)) headers[CSRF_HEADER] = csrf;
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
      signal: options.signal,
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, `fleetd did not answer (${err.message})`);
  }
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401 && options.signIn !== false) signedOut(error);
    throw error;
  }
  return response;
}

/** A request to the API (`path` as under /fleet/v1 or /); answers the Response. */
export function call(method, path, body, options) {
  return send(method, `api${path}`, body, options);
}

export async function getJSON(path, options) {
  const response = await call("GET", path, undefined, options);
  return response.json();
}

export function unitPath(name) {
  return `/fleet/v1/units/${encodeURIComponent(name)}`;
}

export function machinePath(id) {
  return `/fleet/v1/machines/${encodeURIComponent(id)}`;
}

/** The session now, or null when the page must sign in first. */
export async function currentSession() {
  try {
    const response = await send("GET", "session", undefined, { signIn: false });
    return await response.json();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return null;
    throw err;
  }
}

export async function signIn(token) {
  const response = await send("POST", "login", { token }, { signIn: false });
  return response.json();
}

export async function signOut() {
  await send("POST", "logout", undefined, { signIn: false });
}
