// The PixEcom API as the dashboard uses it: login, logout, and authenticated reads with
// transparent, single-flight token refresh.
//
// Tokens: the API answers logins with a short-lived access token and a rotating refresh
// token in the JSON body (no cookies), so the page must hold both. They live in
// sessionStorage: it survives a reload of the tab, is not shared with other tabs or
// windows, and is gone when the tab closes (localStorage would keep a 30-day refresh
// token on disk). Script injection is what could read it; the strict Content Security
// Policy (scripts only from this app, nothing inline) and rendering every value with
// textContent, never innerHTML, are the defences.
//
// Refresh tokens rotate and a reused one revokes the whole login (reuse detection), so
// two refreshes must never run at once with the same token: every caller that meets a 401
// shares one in-flight refresh (single-flight), across tabs too (Web Locks), and a tab
// that sees another tab of the same login rotate adopts the new tokens (BroadcastChannel).

const STORAGE_KEY = "pixecom.dashboard.session";
// Refresh this long before the access token expires rather than send a doomed request.
const EXPIRY_MARGIN_MS = 5000;

/** The login has ended (logged out, revoked, refresh refused): show the login page. */
export class SessionEnded extends Error {
  constructor(message = "Your session has ended. Please log in again.") {
    super(message);
    this.name = "SessionEnded";
  }
}

/**
 * The API answered an error: `status`, and the error body's `code`, `message` and
 * `details` (a 422's field problems: `[{location: ["body", "rate"], message, type}]`).
 */
export class ApiError extends Error {
  constructor(status, code, message, details = []) {
    super(message || `The server answered ${status}.`);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

let session = readSession();
let refreshing = null;
const endListeners = new Set();
const channel = "BroadcastChannel" in globalThis ? new BroadcastChannel("pixecom-session") : null;

if (channel) {
  channel.addEventListener("message", (event) => {
    const data = event.data || {};
    if (!session || data.previous !== session.refresh) return;
    if (data.type === "rotated") storeSession(data.tokens);
    if (data.type === "ended") endSession(false);
  });
}

function readSession() {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    const value = raw ? JSON.parse(raw) : null;
    return value && typeof value.access === "string" && typeof value.refresh === "string"
      ? value
      : null;
  } catch {
    return null;
  }
}

function storeSession(tokens) {
  session = {
    access: tokens.access_token ?? tokens.access,
    refresh: tokens.refresh_token ?? tokens.refresh,
    accessExpiresAt: Date.parse(tokens.access_expires_at ?? tokens.accessExpiresAt) || 0,
  };
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(session));
}

function endSession(broadcast) {
  const previous = session?.refresh;
  session = null;
  sessionStorage.removeItem(STORAGE_KEY);
  if (broadcast && channel && previous) channel.postMessage({ type: "ended", previous });
  for (const listener of endListeners) listener();
}

/** Call `listener` whenever the session ends (logout here or elsewhere, revocation). */
export function onSessionEnded(listener) {
  endListeners.add(listener);
}

/** Whether a login is held (it may still turn out to be revoked). */
export function hasSession() {
  return session !== null;
}

async function errorOf(response) {
  let code = "error";
  let message = "";
  let details = [];
  try {
    const body = await response.json();
    code = body?.error?.code ?? code;
    message = body?.error?.message ?? "";
    details = Array.isArray(body?.error?.details) ? body.error.details : [];
  } catch {
    // not JSON: keep the status
  }
  return new ApiError(response.status, code, message, details);
}

async function postJson(path, body) {
  return fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body),
    credentials: "omit",
    cache: "no-store",
  });
}

/**
 * Solve a proof-of-work challenge from GET /auth/challenge (ALTCHA format, docs/api.md
 * "Login protection"): the number whose SHA-256 after the salt is the challenge.
 */
async function solveChallenge() {
  const response = await fetch("/auth/challenge", { credentials: "omit", cache: "no-store" });
  if (!response.ok) throw await errorOf(response);
  const { algorithm, challenge, maxnumber, salt, signature } = await response.json();
  const text = new TextEncoder();
  const hexOf = (digest) =>
    Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("");
  // Digests in batches: one await per hash would spend most of the time waiting.
  for (let first = 0; first <= maxnumber; first += 1000) {
    const numbers = Array.from({ length: Math.min(1000, maxnumber + 1 - first) }, (_, i) => first + i);
    const digests = await Promise.all(
      numbers.map((n) => crypto.subtle.digest("SHA-256", text.encode(salt + n))),
    );
    const found = digests.findIndex((digest) => hexOf(digest) === challenge);
    if (found >= 0) {
      const number = numbers[found];
      return btoa(JSON.stringify({ algorithm, challenge, number, salt, signature }));
    }
  }
  throw new ApiError(401, "invalid_challenge", "The login challenge could not be solved.");
}

/**
 * Log in; throws ApiError (401 wrong credentials, 429 throttled or locked). When the
 * account is under attack and this address never logged in to it, the server first asks
 * for a proof of work (401 challenge_required): solve one and send the login again.
 */
export async function logIn(email, password) {
  let response = await postJson("/auth/login", { email, password });
  if (response.status === 401 && (await errorOf(response.clone())).code === "challenge_required") {
    response = await postJson("/auth/login", { email, password, altcha: await solveChallenge() });
  }
  if (!response.ok) throw await errorOf(response);
  storeSession(await response.json());
}

/** End the login on the server (best effort) and forget the tokens here. */
export async function logOut() {
  const current = session;
  endSession(true);
  if (current) {
    try {
      await postJson("/auth/logout", { refresh_token: current.refresh });
    } catch {
      // offline: the tokens are forgotten here; the access token expires on its own
    }
  }
}

async function rotate(usedRefresh) {
  // Another caller (or tab) already rotated past the token we saw: nothing to do.
  if (!session || session.refresh !== usedRefresh) return;
  const response = await postJson("/auth/refresh", { refresh_token: usedRefresh });
  if (response.status === 401 || response.status === 422) {
    // Refused for good (revoked, reused, expired): back to the login page.
    endSession(true);
    throw new SessionEnded();
  }
  if (!response.ok) throw await errorOf(response); // e.g. 503: keep the login, retry later
  storeSession(await response.json());
  if (channel) channel.postMessage({ type: "rotated", previous: usedRefresh, tokens: session });
}

/** Exchange the refresh token once, however many callers ask at the same time. */
function refreshOnce() {
  if (!session) return Promise.reject(new SessionEnded());
  if (!refreshing) {
    const used = session.refresh;
    const run = () => rotate(used);
    const locked = navigator.locks ? navigator.locks.request("pixecom-refresh", run) : run();
    refreshing = Promise.resolve(locked).finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

function send(path, method, body, credentials, extraHeaders) {
  const headers = { ...extraHeaders, Accept: "application/json", Authorization: `Bearer ${session.access}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  return fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials,
    cache: "no-store",
  });
}

/**
 * An authenticated request; answers the parsed JSON body.
 *
 * An expired access token is refreshed first; a 401 is answered by one refresh and one
 * retry. When the refresh is refused (logged out elsewhere, token reuse, expiry) the
 * session ends and SessionEnded is thrown.
 *
 * No cookie is sent or kept (`credentials: "omit"`), except where a caller asks for
 * "same-origin": starting an ad-network connection, whose answer binds the consent flow to
 * this browser with a cookie only the API's callback receives.
 *
 * `headers` are sent besides the login's (e.g. a refund's Idempotency-Key); the retry
 * after a refresh sends them again unchanged.
 */
export async function request(path, { method = "GET", body, credentials = "omit", headers = {} } = {}) {
  if (!session) throw new SessionEnded();
  if (session.accessExpiresAt && session.accessExpiresAt - EXPIRY_MARGIN_MS < Date.now()) {
    await refreshOnce();
  }
  const sentWith = session.access;
  let response = await send(path, method, body, credentials, headers);
  if (response.status === 401) {
    if (!session) throw new SessionEnded();
    if (session.access === sentWith) await refreshOnce();
    if (!session) throw new SessionEnded();
    response = await send(path, method, body, credentials, headers);
    if (response.status === 401) {
      endSession(true);
      throw new SessionEnded();
    }
  }
  if (!response.ok) throw await errorOf(response);
  if (response.status === 204) return null;
  return response.json();
}

/** GET `path` with query `params` (arrays repeat the parameter; null/undefined dropped). */
export function get(path, params = {}) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value === null || value === undefined) continue;
    for (const item of Array.isArray(value) ? value : [value]) query.append(name, String(item));
  }
  const text = query.toString();
  return request(text ? `${path}?${text}` : path);
}

/**
 * Every item of a cursor-paginated list, following `next_cursor` for at most
 * `maxPages` pages of `limit` items; `truncated` says whether more remained. `extras`
 * holds what the first page answered beside the list (e.g. the stats lists'
 * `unattributed`, the same on every page of a range).
 */
export async function getAll(path, params = {}, { limit = 200, maxPages = 10 } = {}) {
  const items = [];
  let cursor = null;
  let extras = null;
  for (let page = 0; page < maxPages; page += 1) {
    const answer = await get(path, { ...params, limit, cursor });
    if (extras === null) {
      const { items: _items, next_cursor: _next, limit: _limit, ...rest } = answer;
      extras = rest;
    }
    items.push(...answer.items);
    cursor = answer.next_cursor;
    if (!cursor) return { items, truncated: false, extras };
  }
  return { items, truncated: true, extras };
}
