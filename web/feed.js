// The live stream list: `GET /api/sse/streams` read with fetch() (so the token travels in
// the Authorization header, and an HTTP error is seen as one), falling back to polling
// `GET /api/streams/` where the SSE feed is refused (a token without admin) or missing.

import { api, authHeaders, HttpError, token } from "./api.js";
import { readReason } from "./whip.js";

const SSE_PATH = "/api/sse/streams";
const LIST_PATH = "/api/streams/";

/** Splits an SSE byte stream into the `data` of each message (WHATWG event stream). */
export class SseParser {
  constructor(onData) {
    this.onData = onData;
    this.buffer = "";
  }

  push(chunk) {
    this.buffer += chunk.replace(/\r\n?/g, "\n");
    let end;
    while ((end = this.buffer.indexOf("\n\n")) >= 0) {
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      const data = block
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, ""));
      if (data.length) this.onData(data.join("\n"));
    }
  }
}

/**
 * Calls `onData(streams)` with every new snapshot and `onState({mode, text, kind})` when the
 * link changes: mode "sse" (live), "poll" (every `pollMs`), "retry", "error" or "auth".
 */
export class StreamFeed {
  constructor({ onData, onState, pollMs = 2000 }) {
    this.onData = onData;
    this.onState = onState;
    this.pollMs = pollMs;
    this.controller = null;
    this.timer = null;
    this.running = false;
    this.failures = 0;
  }

  start() {
    this.stop();
    this.running = true;
    this.failures = 0;
    this.connect();
  }

  stop() {
    this.running = false;
    this.controller?.abort();
    this.controller = null;
    clearTimeout(this.timer);
    this.timer = null;
  }

  /** One `GET /api/streams/` now (also what polling does). */
  async refresh() {
    const streams = await api(LIST_PATH);
    this.onData(Array.isArray(streams) ? streams : []);
    return streams;
  }

  async connect() {
    const controller = new AbortController();
    this.controller = controller;
    try {
      const response = await fetch(SSE_PATH, {
        headers: { Accept: "text/event-stream", ...authHeaders() },
        signal: controller.signal,
        cache: "no-store",
      });
      if (!response.ok) {
        throw new HttpError(response.status, response.statusText, await readReason(response));
      }
      this.failures = 0;
      this.onState({ mode: "sse", text: "Live", kind: "ok" });
      const parser = new SseParser((data) => {
        try {
          const streams = JSON.parse(data);
          if (Array.isArray(streams)) this.onData(streams);
        } catch {
          // A message that is not a snapshot: ignore it.
        }
      });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.push(value);
      }
      throw new Error("the server closed the feed");
    } catch (err) {
      if (!this.running || controller.signal.aborted) return;
      if (err instanceof HttpError && err.status === 401) {
        this.running = false;
        this.onState({ mode: "auth", text: "Token required", kind: "error" });
        token.refused(err.reason);
        return;
      }
      if (err instanceof HttpError && err.status !== 0 && err.status < 500) {
        // 403 (a token without admin), 404/405 (no SSE here): poll the list instead.
        this.poll();
        return;
      }
      this.failures += 1;
      const delay = Math.min(10_000, 1000 * 2 ** Math.min(this.failures, 4));
      this.onState({
        mode: "retry",
        text: `Reconnecting in ${Math.round(delay / 1000)} s (${err.message})`,
        kind: "warn",
      });
      this.timer = setTimeout(() => this.running && this.connect(), delay);
    }
  }

  async poll() {
    if (!this.running) return;
    try {
      await this.refresh();
      this.onState({ mode: "poll", text: `Updated ${new Date().toLocaleTimeString()}`, kind: "ok" });
    } catch (err) {
      if (err instanceof HttpError && err.status === 401) {
        this.running = false;
        this.onState({ mode: "auth", text: "Token required", kind: "error" });
        return;
      }
      this.onState({ mode: "error", text: `Stream list unavailable: ${err.message}`, kind: "error" });
    }
    if (this.running) this.timer = setTimeout(() => this.poll(), this.pollMs);
  }
}
