// The recordings page: streams with recordings (GET /api/playback), a stream's recordings
// (GET /api/playback/{stream}: a node's index on liveion, the database on liveman), and
// playback of one with dash.js (npm `dashjs`, served from node_modules at /vendor/dashjs/).

import { api, hasFeature, HttpError, serverInfo, token, withToken } from "./api.js";
import { AuthDialog } from "./auth.js";
import { duration, h, when } from "./format.js";
import { renderStats } from "./stats.js";
import { notify, renderServerBadge, setupAuthButton } from "./ui.js";

const $ = (id) => document.getElementById(id);
const DASHJS_URL = "/vendor/dashjs/modern/esm/dash.all.min.js";
const REFRESH_MS = 5000;

const params = new URLSearchParams(window.location.search);

function setStatus(el, text, kind = "info") {
  el.textContent = text;
  el.dataset.kind = kind;
}

function objectUrl(path) {
  return `/api/record/object/${path.split("/").map(encodeURIComponent).join("/")}`;
}

/** When a recording started, in ms: `start_ts` (µs, liveman) or a numeric record id (s). */
function startedAt(entry) {
  const ts = Number(entry.start_ts);
  if (ts > 1e14) return ts / 1000;
  if (ts > 1e11) return ts;
  if (ts > 0) return ts * 1000;
  const id = String(entry.record ?? "");
  if (/^\d{9,11}$/.test(id)) return Number(id) * 1000;
  if (/^\d{12,14}$/.test(id)) return Number(id);
  return 0;
}

function statusBadge(status) {
  const text = status || "Active";
  return h("span", { className: `badge status-${text.toLowerCase()}` }, text);
}

let dashjsPromise = null;

/** dash.js as an ES module; rejects with a clear reason when it is not installed. */
function loadDashjs() {
  dashjsPromise ??= import(DASHJS_URL).catch(() => {
    dashjsPromise = null;
    throw new Error("dash.js is not installed on this server: run `npm ci` in the checkout "
      + "(it serves node_modules/dashjs). The manifests can still be downloaded.");
  });
  return dashjsPromise;
}

/** dash.js on the page's <video>, with the token on every request it makes. */
class DashPlayer {
  constructor(video, statusEl, statsEl) {
    this.video = video;
    this.statusEl = statusEl;
    this.statsEl = statsEl;
    this.player = null;
    this.errors = [];
    this.current = null;
    this.timer = null;
    for (const name of ["playing", "pause", "ended", "waiting", "seeked"]) {
      video.addEventListener(name, () => this.onVideo(name));
    }
    video.addEventListener("error", () => {
      const err = video.error;
      if (this.player) this.fail(`The browser cannot play this recording: ${err?.message || `code ${err?.code}`}`);
    });
    this.renderStats();
  }

  async play(entry, stream) {
    this.stop();
    this.errors = [];
    this.current = { ...entry, stream };
    setStatus(this.statusEl, `Loading ${stream} / ${entry.record}…`, "info");
    let dashjs;
    try {
      dashjs = await loadDashjs();
    } catch (err) {
      this.fail(err.message);
      return;
    }
    if (this.current?.record !== entry.record) return; // another one was chosen meanwhile
    const player = dashjs.MediaPlayer().create();
    this.player = player;
    player.updateSettings({ debug: { logLevel: dashjs.Debug.LOG_LEVEL_NONE } });
    const tokenValue = token.get();
    if (tokenValue && typeof player.addRequestInterceptor === "function") {
      player.addRequestInterceptor(async (request) => {
        request.headers = { ...(request.headers ?? {}), Authorization: `Bearer ${tokenValue}` };
        return request;
      });
    }
    const events = dashjs.MediaPlayer.events;
    player.on(events.ERROR, (event) => {
      const error = event.error ?? event;
      this.fail(`Playback failed: ${error.message ?? error.code ?? "dash.js error"}`);
    });
    player.on(events.STREAM_INITIALIZED, () => this.renderStats());
    player.initialize(this.video, objectUrl(entry.mpd_path), true);
    clearInterval(this.timer);
    this.timer = setInterval(() => this.renderStats(), 1000);
  }

  fail(text) {
    this.errors.push(text);
    setStatus(this.statusEl, text, "error");
  }

  onVideo(name) {
    if (!this.current || this.errors.length) return;
    const label = `${this.current.stream} / ${this.current.record}`;
    if (name === "playing") setStatus(this.statusEl, `Playing ${label}`, "ok");
    else if (name === "ended") setStatus(this.statusEl, `Finished ${label}`, "ok");
    else if (name === "waiting") setStatus(this.statusEl, `Buffering ${label}…`, "info");
    else if (name === "pause" && !this.video.ended) setStatus(this.statusEl, `Paused ${label}`, "info");
    this.renderStats();
  }

  tracks() {
    if (!this.player) return "—";
    const kinds = ["video", "audio"].filter((kind) => {
      try {
        return (this.player.getTracksFor(kind) ?? []).length > 0;
      } catch {
        return false;
      }
    });
    return kinds.length ? kinds.join(" + ") : "—";
  }

  renderStats() {
    const v = this.video;
    const quality = v.getVideoPlaybackQuality?.();
    const total = Number.isFinite(v.duration) ? duration(v.duration * 1000) : "—";
    renderStats(this.statsEl, [
      ["Position", `${duration(v.currentTime * 1000)} / ${total}`],
      ["Resolution", v.videoWidth ? `${v.videoWidth}×${v.videoHeight}` : "—"],
      ["Tracks", this.tracks()],
      ["Frames", String(quality?.totalVideoFrames ?? 0)],
      ["Dropped", String(quality?.droppedVideoFrames ?? 0)],
      ["Live", this.player ? (this.player.isDynamic?.() ? "yes (recording)" : "no") : "—"],
    ]);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    if (this.player) {
      this.player.reset();
      this.player = null;
    }
    this.current = null;
  }
}

class RecordingsPage {
  constructor() {
    this.info = { features: [] };
    this.stream = "";
    this.records = [];
    this.recordsKey = "";
    this.listKey = "";
    this.playing = "";
    this.timer = null;
    this.pageStatus = $("page-status");
    this.dash = new DashPlayer($("dash-video"), $("dash-status"), $("dash-stats"));
    $("reload").addEventListener("click", () => this.reload());
    $("find-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.select($("find-stream").value.trim());
    });
  }

  async start() {
    this.info = await serverInfo();
    renderServerBadge(this.info);
    this.cluster = hasFeature(this.info, "cluster");
    for (const el of document.querySelectorAll(".node-column")) el.hidden = !this.cluster;
    if (token.fromUrl) {
      for (const link of document.querySelectorAll("a[data-keep-token]")) {
        link.href = withToken(link.getAttribute("href"), token.fromUrl);
      }
    }
    this.auth = new AuthDialog($("auth-dialog"), this.info, async (candidate) => {
      try {
        await api("/api/playback", { tokenValue: candidate });
      } catch (err) {
        if (!(err instanceof HttpError && err.status === 403)) throw err;
      }
    });
    setupAuthButton($("auth-button"), () => this.auth.show("Enter a token for this server."));
    token.addEventListener("unauthorized", (event) => {
      setStatus(this.pageStatus, "A token is needed to list the recordings.", "error");
      this.auth.show(token.get()
        ? `The server refused the token${event.detail ? ` (${event.detail})` : ""}. Enter another one.`
        : "This server needs a token to list its recordings.");
    });
    token.addEventListener("change", () => this.reload());
    if (!hasFeature(this.info, "recorder")) {
      setStatus(this.pageStatus, "This server has no recorder, so there are no recordings to show.",
        "warn");
      return;
    }
    if (hasFeature(this.info, "auth") && !token.get()) {
      setStatus(this.pageStatus, "A token is needed to list the recordings.", "error");
      this.auth.show("This server needs a token to list its recordings.");
      return;
    }
    await this.reload();
    const wanted = params.get("stream");
    if (wanted) await this.select(wanted, params.get("record"));
    this.timer = setInterval(() => this.refreshRecords(), REFRESH_MS);
  }

  async reload() {
    try {
      const streams = await api("/api/playback");
      this.renderStreams(Array.isArray(streams) ? streams : []);
      setStatus(this.pageStatus, streams.length
        ? `${streams.length} stream${streams.length === 1 ? "" : "s"} with recordings.`
        : "No recordings yet. Start one from the dashboard (Record on a stream's row).",
      streams.length ? "ok" : "info");
      this.pageStatus.hidden = Boolean(streams.length);
      if (this.stream) await this.refreshRecords();
    } catch (err) {
      this.pageStatus.hidden = false;
      if (err instanceof HttpError && err.status === 403) {
        setStatus(this.pageStatus,
          "This token cannot list every stream: enter a stream name to see its recordings.", "warn");
        $("find-stream").focus();
      } else if (err instanceof HttpError && err.status === 503) {
        setStatus(this.pageStatus, `Recordings are unavailable: ${err.reason || "the recorder is not running"}.`,
          "error");
      } else if (!(err instanceof HttpError && err.status === 401)) {
        setStatus(this.pageStatus, `Recordings are unavailable: ${err.message}`, "error");
      }
    }
  }

  renderStreams(streams) {
    const key = streams.join("\n");
    if (key === this.listKey) {
      this.markCurrent();
      return;
    }
    this.listKey = key;
    const list = $("stream-list");
    list.replaceChildren(...streams.map((name) => h("li", {},
      h("button", { type: "button", dataset: { stream: name }, onclick: () => this.select(name) },
        name))));
    this.markCurrent();
  }

  markCurrent() {
    for (const button of $("stream-list").querySelectorAll("button")) {
      button.setAttribute("aria-current", button.dataset.stream === this.stream ? "true" : "false");
    }
  }

  async select(stream, record = null) {
    if (!stream) return;
    this.stream = stream;
    this.recordsKey = "";
    this.markCurrent();
    $("records-title").textContent = `Recordings of ${stream}`;
    const url = new URL(window.location.href);
    url.searchParams.set("stream", stream);
    url.searchParams.delete("record");
    window.history.replaceState(null, "", url.pathname + url.search);
    await this.refreshRecords();
    if (record) {
      const entry = this.records.find((r) => String(r.record) === record);
      if (entry) this.play(entry);
    }
  }

  async refreshRecords() {
    const stream = this.stream;
    if (!stream) return;
    try {
      const records = await api(`/api/playback/${encodeURIComponent(stream)}`);
      if (stream !== this.stream) return;
      this.renderRecords(Array.isArray(records) ? records : []);
      $("records-status").textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      if (stream !== this.stream) return;
      const text = err instanceof HttpError && err.status === 403
        ? `This token does not allow watching ${stream}.`
        : `Cannot list the recordings of ${stream}: ${err.message}`;
      this.renderRecords([], text);
    }
  }

  renderRecords(records, emptyText = "") {
    const sorted = records.slice().sort((a, b) => startedAt(b) - startedAt(a)
      || String(b.record).localeCompare(String(a.record)));
    const key = JSON.stringify(sorted) + emptyText + this.playing;
    if (key === this.recordsKey) return;
    this.recordsKey = key;
    this.records = sorted;
    const body = $("records-table").tBodies[0];
    if (!sorted.length) {
      body.replaceChildren(h("tr", {}, h("td", { className: "empty", colSpan: 6 },
        emptyText || `No recordings of ${this.stream}.`)));
      return;
    }
    body.replaceChildren(...sorted.map((entry) => {
      const started = startedAt(entry);
      const label = `${this.stream} ${entry.record}`;
      const download = h("a", { href: withToken(objectUrl(entry.mpd_path)), className: "small-link",
        download: "manifest.mpd", "aria-label": `Download the manifest of ${label}` }, "MPD");
      const play = h("button", { type: "button", className: "small primary",
        "aria-label": `Play ${label}`, onclick: () => this.play(entry) }, "Play");
      const nodeCell = h("td", { className: "node", hidden: !this.cluster }, entry.node ?? "—");
      const row = h("tr", { dataset: { record: entry.record, status: entry.status ?? "" },
        "aria-current": entry.record === this.playing ? "true" : "false" },
        h("td", { className: "started" }, started ? when(started) : "—"),
        h("td", { className: "record" }, h("code", {}, String(entry.record))),
        h("td", { className: "duration" },
          entry.duration_ms !== null && entry.duration_ms !== undefined
            ? duration(entry.duration_ms) : (entry.status === "Active" ? "recording…" : "—")),
        h("td", { className: "rec-status" }, statusBadge(entry.status)),
        nodeCell,
        h("td", { className: "actions" }, play, download));
      return row;
    }));
  }

  play(entry) {
    this.playing = entry.record;
    this.recordsKey = "";
    this.renderRecords(this.records);
    $("dash-title").textContent = `Player: ${this.stream} / ${entry.record}`;
    const link = $("dash-download");
    link.href = withToken(objectUrl(entry.mpd_path));
    link.hidden = false;
    if (entry.status === "Failed") {
      notify("This recording failed; what was saved may not play to the end.", "warn");
    }
    this.dash.play(entry, this.stream);
    $("dash-panel").scrollIntoView({ block: "nearest", behavior: "smooth" });
  }
}

const page = new RecordingsPage();
window.recordingsPage = {
  state: () => {
    const v = page.dash.video;
    return {
      stream: page.stream,
      records: page.records,
      playing: page.playing,
      ended: v.ended,
      currentTime: v.currentTime,
      duration: v.duration,
      frames: v.getVideoPlaybackQuality?.().totalVideoFrames ?? 0,
      errors: page.dash.errors.slice(),
      status: $("dash-status").textContent,
    };
  },
};
page.start().catch((err) => setStatus($("page-status"), `The page failed to start: ${err.message}`, "error"));
