// The HTTP API as the pages use it: the bearer token (URL, then localStorage), JSON
// requests with readable errors, and the server's /api/info.

import { HttpError, readReason } from "./whip.js";

const TOKEN_KEY = "live777.token";

/** `?token=` of the page, if any (a link may carry one: players, shared dashboards). */
export function urlToken() {
  return new URLSearchParams(window.location.search).get("token") ?? "";
}

function readStored() {
  try {
    return window.localStorage.getItem(TOKEN_KEY) ?? "";
  } catch {
    return ""; // storage disabled (privacy mode, sandboxed iframe)
  }
}

/**
 * The token the page sends: `?token=` wins, then the one saved in localStorage.
 * `unauthorized` is dispatched when the server answers 401, so a page can ask for one.
 */
class TokenStore extends EventTarget {
  constructor() {
    super();
    this.fromUrl = urlToken();
    this.value = this.fromUrl || readStored();
  }

  get() {
    return this.value;
  }

  /** Keeps `token` for this page and the next visits (an empty token signs out). */
  set(token) {
    this.value = token.trim();
    this.fromUrl = "";
    try {
      if (this.value) window.localStorage.setItem(TOKEN_KEY, this.value);
      else window.localStorage.removeItem(TOKEN_KEY);
    } catch {
      // Not persisted; it still works for this page.
    }
    this.dispatchEvent(new Event("change"));
  }

  refused(reason) {
    this.dispatchEvent(new CustomEvent("unauthorized", { detail: reason }));
  }
}

export const token = new TokenStore();

export function authHeaders(value = token.get()) {
  return value ? { Authorization: `Bearer ${value}` } : {};
}

/** `url` with `?token=` added, for what cannot send headers (links, <img>, downloads). */
export function withToken(url, value = token.get()) {
  if (!value) return url;
  const full = new URL(url, window.location.href);
  full.searchParams.set("token", value);
  return full.pathname + full.search;
}

/**
 * One API request. `body` is sent as JSON when it is not a string. Resolves to the parsed
 * JSON (or text, or null for an empty body); rejects with an HttpError saying what the
 * server said. A 401 also tells the token store, so the page can ask for a token.
 */
export async function api(path, { method = "GET", body, signal, tokenValue } = {}) {
  const headers = { ...authHeaders(tokenValue ?? token.get()) };
  let payload;
  if (body !== undefined) {
    payload = typeof body === "string" ? body : JSON.stringify(body);
    headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload, signal, cache: "no-store" });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new HttpError(0, "", "the server cannot be reached");
  }
  if (!response.ok) {
    const error = new HttpError(response.status, response.statusText, await readReason(response));
    if (response.status === 401 && tokenValue === undefined) token.refused(error.reason);
    throw error;
  }
  const text = await response.text();
  if (!text) return null;
  const type = response.headers.get("Content-Type") ?? "";
  return type.includes("json") ? JSON.parse(text) : text;
}

let infoPromise = null;

/**
 * `GET /api/info` (no auth): `{version, features, …}`; `features` has "cluster" on liveman.
 * An old or foreign server without it is treated as a plain node.
 */
export function serverInfo() {
  infoPromise ??= api("/api/info").catch(() => ({ version: "", features: [] }));
  return infoPromise;
}

export function hasFeature(info, name) {
  return Array.isArray(info?.features) && info.features.includes(name);
}

export { HttpError };
