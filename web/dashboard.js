// The dashboard: the live streams table and its row actions (preview, sessions and kick,
// record, snapshot, cascade, destroy), stream creation, and the sign-in prompt.

import { api, hasFeature, HttpError, token, withToken } from "./api.js";
import { AuthDialog } from "./auth.js";
import { NodesPanel, TokenDialog } from "./cluster.js";
import { StreamFeed } from "./feed.js";
import { ago, bitrate, bytes, h } from "./format.js";
import { describeDecoding, emptyInbound, renderStats } from "./stats.js";
import { snapshotUrl, StreamsTable } from "./streams.js";
import { confirmAction, notify, openModal, setupDialog } from "./ui.js";
import { presentedFrames, WhepViewer } from "./viewer.js";

const $ = (id) => document.getElementById(id);
const RECORD_POLL_MS = 3000;
const NODES_POLL_MS = 3000;

function reasonOf(err) {
  if (err instanceof HttpError) {
    if (err.status === 403) return `not allowed with this token (${err.reason || "HTTP 403"})`;
    return err.message;
  }
  return err.message ?? String(err);
}

/** WHEP in a dialog, with decode statistics. */
class PreviewDialog {
  constructor(dialog) {
    this.dialog = setupDialog(dialog, () => this.stop());
    this.video = dialog.querySelector("video");
    this.statsEl = dialog.querySelector(".stats");
    this.status = dialog.querySelector(".status");
    this.title = dialog.querySelector("h2");
    this.viewer = new WhepViewer(this.video, {
      onState: (state) => {
        if (state === "failed") this.setStatus("Connection failed (ICE/DTLS)", "error");
      },
    });
    this.timer = null;
    this.stream = "";
    renderStats(this.statsEl, describeDecoding(emptyInbound()));
  }

  setStatus(text, kind) {
    this.status.textContent = text;
    this.status.dataset.kind = kind;
  }

  async open(stream) {
    this.stream = stream;
    this.title.textContent = `Preview: ${stream}`;
    openModal(this.dialog);
    this.setStatus("Connecting…", "info");
    renderStats(this.statsEl, describeDecoding(emptyInbound()));
    try {
      await this.viewer.start(stream, token.get());
    } catch (err) {
      if (this.stream === stream && this.dialog.open) {
        this.setStatus(`Preview failed: ${reasonOf(err)}`, "error");
      }
      return;
    }
    let lastFrames = 0;
    clearInterval(this.timer);
    const tick = async () => {
      const summary = await this.viewer.sample().catch(() => null);
      if (!summary) return;
      renderStats(this.statsEl, describeDecoding(summary));
      const frames = presentedFrames(this.video);
      if (frames > lastFrames) this.setStatus(`Playing ${stream}`, "ok");
      else if (this.viewer.state === "connected") {
        this.setStatus("Connected, waiting for video from the publisher…", "warn");
      }
      lastFrames = frames;
    };
    this.timer = setInterval(tick, 1000);
    tick();
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.stream = "";
    this.viewer.stop();
  }
}

/** The sessions of one stream (publisher, viewers, cascades), live, with Kick buttons. */
class SessionsDialog {
  constructor(dialog, onKicked) {
    this.dialog = setupDialog(dialog, () => { this.stream = ""; });
    this.body = dialog.querySelector("tbody");
    this.title = dialog.querySelector("h2");
    this.status = dialog.querySelector(".status");
    this.onKicked = onKicked;
    this.stream = "";
    this.rows = new Map();
  }

  open(id, stream) {
    this.stream = id;
    this.title.textContent = `Sessions of ${id}`;
    this.status.textContent = "";
    this.body.replaceChildren();
    this.rows.clear();
    this.render(stream);
    openModal(this.dialog);
  }

  /** Updates the list from the latest stream snapshot (null: the stream is gone). */
  render(stream) {
    if (!this.stream) return;
    if (!stream) {
      this.body.replaceChildren(h("tr", {}, h("td", { colSpan: 7, className: "empty" },
        "The stream no longer exists.")));
      this.rows.clear();
      return;
    }
    const sessions = [
      ...(stream.publish?.sessions ?? []).map((s) => ({ ...s, role: "publisher" })),
      ...(stream.subscribe?.sessions ?? []).map((s) => ({ ...s, role: "viewer" })),
    ];
    const seen = new Set();
    sessions.forEach((session, index) => {
      const key = session.id || `${session.role}-${index}`;
      seen.add(key);
      let entry = this.rows.get(key);
      if (!entry) {
        entry = this.createRow(session);
        this.rows.set(key, entry);
        this.body.append(entry.row);
      }
      this.updateRow(entry, session);
    });
    for (const [key, entry] of this.rows) {
      if (!seen.has(key)) {
        entry.row.remove();
        this.rows.delete(key);
      }
    }
    const empty = this.body.querySelector("td.empty");
    if (!sessions.length && !empty) {
      this.body.append(h("tr", {}, h("td", { colSpan: 7, className: "empty" }, "No sessions.")));
    } else if (sessions.length && empty) empty.parentElement.remove();
  }

  createRow(session) {
    const row = h("tr", { dataset: { session: session.id, role: session.role } });
    const cells = ["role", "session-id", "state", "created", "bytes", "rate", "actions"]
      .map((name) => h("td", { className: name }));
    row.append(...cells);
    const role = session.cascade
      ? `${session.role} (cascade ${session.cascade.sourceUrl ? "pull" : "push"})` : session.role;
    cells[0].textContent = role;
    cells[1].textContent = session.id ? session.id.slice(0, 8) : "hidden";
    cells[1].title = session.id || "Session ids are shown to admins only";
    const kick = h("button", { type: "button", className: "small danger",
      disabled: !session.id, "aria-label": `Kick ${session.role} ${session.id.slice(0, 8)}`,
      onclick: () => this.kick(session, kick) }, "Kick");
    cells[6].append(kick);
    return { row, cells };
  }

  updateRow({ cells }, session) {
    const state = session.state ?? "?";
    if (cells[2].dataset.key !== state) {
      cells[2].dataset.key = state;
      cells[2].replaceChildren(h("span", { className: `badge state-${state}` }, state));
    }
    cells[3].textContent = session.createdAt ? ago(session.createdAt) : "—";
    cells[4].textContent = bytes(session.stats?.bytes);
    cells[5].textContent = bitrate(session.stats?.bitrate);
  }

  async kick(session, button) {
    const stream = this.stream;
    button.disabled = true;
    try {
      await api(`/session/${encodeURIComponent(stream)}/${encodeURIComponent(session.id)}`,
        { method: "DELETE" });
      this.status.textContent = `Kicked the ${session.role} ${session.id.slice(0, 8)}.`;
      this.status.dataset.kind = "ok";
      this.onKicked(stream);
    } catch (err) {
      button.disabled = false;
      this.status.textContent = `Kick failed: ${reasonOf(err)}`;
      this.status.dataset.kind = "error";
    }
  }
}

/** Pull a stream from another node, or push it to one (POST /api/cascade/{stream}). */
class CascadeDialog {
  constructor(dialog, onDone) {
    this.dialog = setupDialog(dialog);
    this.form = dialog.querySelector("form");
    this.error = dialog.querySelector(".status");
    this.onDone = onDone;
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
  }

  open(stream) {
    this.stream = stream;
    this.dialog.querySelector("h2").textContent = `Cascade ${stream}`;
    this.error.hidden = true;
    openModal(this.dialog);
    this.form.elements.url.focus();
  }

  async submit() {
    const { direction, url, remoteToken } = this.form.elements;
    const body = { [direction.value === "pull" ? "sourceUrl" : "targetUrl"]: url.value.trim() };
    if (remoteToken.value.trim()) body.token = remoteToken.value.trim();
    try {
      await api(`/api/cascade/${encodeURIComponent(this.stream)}`, { method: "POST", body });
      this.dialog.close();
      notify(`Cascade ${direction.value} of ${this.stream} started.`, "ok");
      this.onDone();
    } catch (err) {
      this.error.hidden = false;
      this.error.textContent = `Cascade failed: ${reasonOf(err)}`;
      this.error.dataset.kind = "error";
    }
  }
}

export class Dashboard {
  constructor({ onPlay }) {
    this.onPlay = onPlay;
    this.info = { features: [] };
    this.recorder = true;
    this.cluster = false;
    this.table = new StreamsTable($("streams-table"), {
      onAction: (name, id, button) => this.action(name, id, button),
    });
    this.statusEl = $("streams-status");
    this.feed = new StreamFeed({
      onData: (streams) => this.onStreams(streams),
      onState: (state) => this.onFeedState(state),
    });
    this.preview = new PreviewDialog($("preview-dialog"));
    this.sessions = new SessionsDialog($("sessions-dialog"), () => this.refresh());
    this.cascade = new CascadeDialog($("cascade-dialog"), () => this.refresh());
    this.recordTimer = null;
    this.nodesTimer = null;
    this.nodesPanel = null;
    this.tokenDialog = null;
    this.knownIds = "";
    $("create-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.create($("create-stream").value);
    });
  }

  /** Reads /api/info, shapes the page for this server, and starts the live list. */
  async start(info) {
    this.info = info;
    this.cluster = hasFeature(info, "cluster");
    this.recorder = hasFeature(info, "recorder");
    this.table.setColumns({
      thumb: hasFeature(info, "snapshot"),
      recording: this.recorder,
      nodes: this.cluster,
      cascade: !this.cluster && hasFeature(info, "cascade"),
      token: this.cluster,
    });
    this.auth = new AuthDialog($("auth-dialog"), info, (candidate) =>
      api("/api/streams/", { tokenValue: candidate }));
    token.addEventListener("unauthorized", (event) => {
      this.feed.stop();
      this.onFeedState({ mode: "auth", text: "Token required", kind: "error" });
      this.auth.show(token.get()
        ? `The server refused the token${event.detail ? ` (${event.detail})` : ""}. Enter another one.`
        : "This server needs a token to show its streams.");
    });
    token.addEventListener("change", () => this.restart());
    if (this.cluster) {
      this.nodesPanel = new NodesPanel($("nodes-panel"));
      this.tokenDialog = new TokenDialog($("mint-dialog"));
      $("mint-button").addEventListener("click", () => this.tokenDialog.open("*"));
    }
    $("nodes-panel").hidden = !this.cluster;
    $("mint-button").hidden = !this.cluster;
    if (hasFeature(info, "auth") && !token.get()) {
      // Known to need a token: ask before sending a request that can only fail.
      this.onFeedState({ mode: "auth", text: "Token required", kind: "error" });
      this.auth.show("This server needs a token to show its streams.");
      return;
    }
    this.restart();
  }

  restart() {
    this.feed.start();
    this.nodesPanel?.start();
    clearInterval(this.recordTimer);
    if (this.recorder) {
      this.recordTimer = setInterval(() => this.pollRecording(), RECORD_POLL_MS);
    }
    clearInterval(this.nodesTimer);
    if (this.cluster) this.nodesTimer = setInterval(() => this.pollNodes(), NODES_POLL_MS);
  }

  setStatus(text, kind) {
    this.statusEl.textContent = text;
    this.statusEl.dataset.kind = kind;
    this.statusEl.classList.toggle("error", kind === "error");
  }

  onFeedState({ mode, text, kind }) {
    this.setStatus(text, kind);
    this.table.setEmptyText(mode === "auth" ? "Sign in to see the streams."
      : mode === "error" ? "The stream list is unavailable."
        : "No streams yet. Publish one below, or create one.");
  }

  onStreams(streams) {
    this.table.render(streams);
    const count = streams.length;
    $("streams-count").textContent = count ? String(count) : "";
    const byId = new Map(streams.map((s) => [s.id, s]));
    if (this.sessions.stream) this.sessions.render(byId.get(this.sessions.stream) ?? null);
    const ids = streams.map((s) => s.id).sort().join("\n");
    if (ids !== this.knownIds) {
      // New streams: their recording state and nodes now, not at the next tick.
      this.knownIds = ids;
      if (this.recorder) this.pollRecording();
      if (this.cluster) this.pollNodes();
    }
  }

  /** `GET /api/streams/` once (what `liveion.refreshStreams()` does). */
  async refresh() {
    try {
      await this.feed.refresh();
      if (this.statusEl.dataset.kind !== "ok") {
        this.setStatus(`Updated ${new Date().toLocaleTimeString()}`, "ok");
      }
    } catch (err) {
      this.setStatus(`Stream list unavailable: ${reasonOf(err)}`, "error");
    }
  }

  async pollRecording() {
    const ids = this.table.ids().slice(0, 100);
    await Promise.all(ids.map(async (id) => {
      try {
        const answer = await api(`/api/record/${encodeURIComponent(id)}`);
        this.table.setRecording(id, Boolean(answer?.recording));
      } catch (err) {
        if (err instanceof HttpError && err.status === 503) {
          // The recorder is not running on this server: stop asking.
          this.recorder = false;
          clearInterval(this.recordTimer);
        }
        this.table.setRecording(id, null);
      }
    }));
  }

  async pollNodes() {
    const ids = this.table.ids().slice(0, 100);
    await Promise.all(ids.map(async (id) => {
      try {
        const held = await api(`/api/streams/${encodeURIComponent(id)}`);
        this.table.setNodes(id, Object.keys(held ?? {}).sort());
      } catch {
        this.table.setNodes(id, []);
      }
    }));
  }

  async action(name, id, button) {
    switch (name) {
      case "play":
        this.onPlay(id);
        break;
      case "preview":
        this.preview.open(id);
        break;
      case "sessions":
        this.sessions.open(id, this.table.stream(id));
        break;
      case "record":
        await this.toggleRecording(id, button);
        break;
      case "snapshot":
        window.open(withToken(snapshotUrl(id)), "_blank", "noopener");
        break;
      case "player":
        window.open(withToken(`player.html?id=${encodeURIComponent(id)}`), "_blank", "noopener");
        break;
      case "cascade":
        this.cascade.open(id);
        break;
      case "token":
        this.tokenDialog?.open(id);
        break;
      case "destroy":
        await this.destroy(id);
        break;
      default:
        break;
    }
  }

  async toggleRecording(id, button) {
    const path = `/api/record/${encodeURIComponent(id)}`;
    const recording = this.table.recording.get(id) === true;
    if (recording && !(await confirmAction(
      `Stop recording ${id}? The recording is finished and can be played back.`, "Stop recording"))) {
      return;
    }
    button.disabled = true;
    try {
      if (recording) {
        await api(path, { method: "DELETE" });
        this.table.setRecording(id, false);
        notify(`Recording of ${id} stopped.`, "ok",
          { href: `recordings.html?stream=${encodeURIComponent(id)}`, text: "Play it" });
      } else {
        await api(path, { method: "POST" });
        this.table.setRecording(id, true);
        notify(`Recording ${id}.`, "ok",
          { href: `recordings.html?stream=${encodeURIComponent(id)}`, text: "Play now" });
      }
    } catch (err) {
      notify(`${recording ? "Stopping" : "Starting"} the recording of ${id} failed: ${reasonOf(err)}`,
        "error");
    } finally {
      button.disabled = false;
      this.pollRecording();
    }
  }

  async create(name) {
    const id = name.trim();
    if (!id) {
      notify("Enter a stream name to create.", "warn");
      $("create-stream").focus();
      return;
    }
    try {
      await api(`/api/streams/${encodeURIComponent(id)}`, { method: "POST" });
      $("create-stream").value = "";
      notify(`Stream ${id} created.`, "ok");
      await this.refresh();
    } catch (err) {
      notify(`Creating ${id} failed: ${err instanceof HttpError && err.status === 409
        ? "it already exists" : reasonOf(err)}`, "error");
    }
  }

  async destroy(id) {
    if (!(await confirmAction(
      `Destroy ${id}? Its publisher and every viewer are disconnected.`, "Destroy", true))) return;
    try {
      await api(`/api/streams/${encodeURIComponent(id)}`, { method: "DELETE" });
      notify(`Stream ${id} destroyed.`, "ok");
      await this.refresh();
    } catch (err) {
      notify(`Destroying ${id} failed: ${reasonOf(err)}`, "error");
    }
  }
}
