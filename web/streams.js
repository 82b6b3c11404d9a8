// The streams table of the dashboard. Rows are keyed by stream id and updated in place, so
// a live feed (a snapshot every second or two) never steals the keyboard focus or closes
// an open row menu.

import { withToken } from "./api.js";
import { bitrate, bytes, h } from "./format.js";

const SNAPSHOT_EVERY_MS = 5000;
const SNAPSHOT_AFTER_MS = 2000; // give a new publisher time to send its first keyframe

export function publisherState(stream) {
  const sessions = stream.publish?.sessions ?? [];
  return sessions.length ? sessions.map((s) => s.state ?? "?").join(", ") : "none";
}

export function subscriberCount(stream) {
  return (stream.subscribe?.sessions ?? []).length;
}

function hasVideo(stream) {
  return (stream.codecs ?? []).some((c) => c.kind === "video");
}

function codecChips(stream) {
  const chips = (stream.codecs ?? []).map((c) =>
    h("span", { className: "chip", title: c.fmtp || "" }, c.codec ?? "?"));
  return chips.length ? h("span", { className: "chips" }, chips) : "—";
}

function stateBadge(stream) {
  const state = publisherState(stream);
  const first = state.split(",")[0].trim().replace(/[^a-z]/gi, "");
  return h("span", { className: `badge state-${first}` }, state);
}

function trafficCell(stream) {
  const stats = stream.stats ?? {};
  const inbound = stats.publish ?? {};
  const outbound = stats.subscribe ?? {};
  return h("span", { className: "traffic" },
    h("span", { title: `received ${bytes(inbound.bytes)} in total` },
      h("span", { className: "dir", "aria-label": "in" }, "↓"), ` ${bitrate(inbound.bitrate)}`),
    h("span", { title: `sent ${bytes(outbound.bytes)} in total` },
      h("span", { className: "dir", "aria-label": "out" }, "↑"), ` ${bitrate(outbound.bitrate)}`));
}

function recordingBadge(state) {
  if (state === true) return h("span", { className: "badge rec" }, "Recording");
  if (state === false) return h("span", { className: "badge" }, "Off");
  return h("span", { className: "muted" }, "—");
}

/** Replaces the children of `el` only when what it shows changed (keeps focus and hover). */
function show(el, content, key) {
  if (el.dataset.key === key) return;
  el.dataset.key = key;
  el.replaceChildren(content);
}

/**
 * `table` has a <thead> row and a <tbody>; `options.columns` says which optional columns
 * the server allows (thumb: snapshots, recording, nodes: liveman) and which row actions
 * (`cascade`, `token`). `onAction(name, streamId, button)` runs a row action.
 */
export class StreamsTable {
  constructor(table, { onAction, columns = {} }) {
    this.table = table;
    this.body = table.tBodies[0];
    this.onAction = onAction;
    this.columns = { thumb: false, recording: true, nodes: false, cascade: false, token: false,
      ...columns };
    this.rows = new Map(); // id -> {row, cells, stream, since}
    this.recording = new Map(); // id -> true | false | null
    this.nodes = new Map(); // id -> [alias]
    this.streams = [];
    this.emptyText = "No streams yet. Publish one below, or create one.";
    this.buildHead();
    this.renderEmpty();
    // An open row menu closes when the user clicks elsewhere.
    document.addEventListener("click", (event) => {
      for (const menu of this.body.querySelectorAll("details.menu[open]")) {
        if (!menu.contains(event.target)) menu.open = false;
      }
    });
  }

  /** What the table says while it has no rows (e.g. why it cannot list any). */
  setEmptyText(text) {
    this.emptyText = text;
    if (this.emptyRow) this.emptyRow.cells[0].textContent = text;
  }

  setColumns(columns) {
    Object.assign(this.columns, columns);
    this.buildHead();
    for (const [, entry] of this.rows) entry.row.remove();
    this.rows.clear();
    this.render(this.streams);
  }

  buildHead() {
    const head = this.table.tHead.rows[0];
    const titles = [];
    if (this.columns.thumb) titles.push(["", "Snapshot"]);
    titles.push(["Stream"], ["Publisher"], ["Viewers"], ["Codecs"], ["In / Out"]);
    if (this.columns.recording) titles.push(["Recording"]);
    if (this.columns.nodes) titles.push(["Nodes"]);
    titles.push(["", "Actions"]);
    head.replaceChildren(...titles.map(([text, label]) => {
      const th = h("th", { scope: "col" }, text);
      if (label) th.append(h("span", { className: "visually-hidden" }, label));
      return th;
    }));
  }

  get columnCount() {
    return this.table.tHead.rows[0].cells.length;
  }

  stream(id) {
    return this.rows.get(id)?.stream ?? null;
  }

  ids() {
    return [...this.rows.keys()];
  }

  setRecording(id, state) {
    this.recording.set(id, state);
    const entry = this.rows.get(id);
    if (entry) this.updateRow(entry, entry.stream);
  }

  setNodes(id, aliases) {
    this.nodes.set(id, aliases);
    const entry = this.rows.get(id);
    if (entry) this.updateRow(entry, entry.stream);
  }

  renderEmpty() {
    if (this.rows.size) {
      this.emptyRow?.remove();
      this.emptyRow = null;
      return;
    }
    if (!this.emptyRow) {
      this.emptyRow = h("tr", {},
        h("td", { className: "empty", colSpan: this.columnCount }, this.emptyText));
    }
    this.emptyRow.cells[0].colSpan = this.columnCount;
    if (!this.emptyRow.isConnected) this.body.replaceChildren(this.emptyRow);
  }

  /** Shows `streams` (the full list): adds, updates and removes rows, sorted by id. */
  render(streams) {
    this.streams = Array.isArray(streams) ? streams : [];
    const seen = new Set();
    const sorted = this.streams.slice().sort((a, b) => String(a.id).localeCompare(String(b.id)));
    let previous = null;
    for (const stream of sorted) {
      seen.add(stream.id);
      let entry = this.rows.get(stream.id);
      if (!entry) {
        entry = this.createRow(stream);
        this.rows.set(stream.id, entry);
      }
      this.updateRow(entry, stream);
      const expected = previous ? previous.nextSibling : this.body.firstChild;
      if (expected !== entry.row) this.body.insertBefore(entry.row, expected);
      previous = entry.row;
    }
    for (const [id, entry] of this.rows) {
      if (!seen.has(id)) {
        entry.row.remove();
        this.rows.delete(id);
      }
    }
    this.renderEmpty();
  }

  createRow(stream) {
    const id = stream.id;
    const row = h("tr", { dataset: { stream: id } });
    const cells = {};
    const add = (name, className) => {
      cells[name] = row.insertCell();
      cells[name].className = className;
    };
    if (this.columns.thumb) add("thumb", "thumb");
    add("id", "stream-id");
    add("publisher", "publisher");
    add("subscribers", "subscribers");
    add("codecs", "codecs");
    add("traffic", "traffic");
    if (this.columns.recording) add("recording", "recording");
    if (this.columns.nodes) add("nodes", "nodes");
    add("actions", "actions");
    cells.id.textContent = id;

    const act = (name) => (event) => this.onAction(name, id, event.currentTarget);
    const button = (name, text, label) =>
      h("button", { type: "button", className: "small", onclick: act(name),
        "aria-label": `${label} ${id}` }, text);
    const record = button("record", "Record", "Record");
    record.classList.add("record");
    const menuItems = [];
    if (this.columns.cascade) menuItems.push(button("cascade", "Cascade…", "Cascade"));
    if (this.columns.token) menuItems.push(button("token", "Create token…", "Create a token for"));
    if (this.columns.thumb) menuItems.push(button("snapshot", "Open snapshot", "Open the snapshot of"));
    menuItems.push(button("player", "Open player page", "Open the player page for"));
    const destroy = button("destroy", "Destroy…", "Destroy");
    destroy.classList.add("danger");
    menuItems.push(destroy);
    const menu = h("details", { className: "menu" },
      h("summary", { className: "small-button", "aria-label": `More actions for ${id}` }, "More"),
      h("div", { className: "menu-items", role: "group", "aria-label": `More actions for ${id}` },
        menuItems));
    menu.addEventListener("click", (event) => {
      if (event.target.closest(".menu-items button")) menu.open = false;
    });
    menu.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && menu.open) {
        menu.open = false;
        menu.querySelector("summary").focus();
      }
    });
    cells.actions.append(h("div", { className: "row-actions" },
      // The first button plays the stream in the Play panel below (tests rely on it).
      button("play", "Play", "Play"),
      button("preview", "Preview", "Preview"),
      button("sessions", "Sessions", "Sessions of"),
      record,
      menu));
    if (this.columns.thumb) {
      const img = h("img", { alt: `Snapshot of ${id}`, width: 64, height: 36, hidden: true,
        decoding: "async" });
      img.addEventListener("load", () => { img.hidden = false; });
      img.addEventListener("error", () => { img.hidden = true; });
      cells.thumb.append(h("div", { className: "thumb-box" }, img));
    }
    return { row, cells, record, stream, since: 0, snapshotAt: 0 };
  }

  updateRow(entry, stream) {
    entry.stream = stream;
    const { cells } = entry;
    const state = publisherState(stream);
    show(cells.publisher, stateBadge(stream), state);
    const count = String(subscriberCount(stream));
    if (cells.subscribers.textContent !== count) cells.subscribers.textContent = count;
    show(cells.codecs, codecChips(stream),
      (stream.codecs ?? []).map((c) => `${c.codec}/${c.fmtp}`).join("|"));
    const stats = stream.stats ?? {};
    show(cells.traffic, trafficCell(stream),
      `${stats.publish?.bitrate}/${stats.subscribe?.bitrate}/${stats.publish?.bytes}/${stats.subscribe?.bytes}`);
    if (cells.recording) {
      const rec = this.recording.get(stream.id);
      show(cells.recording, recordingBadge(rec), String(rec));
      entry.record.textContent = rec ? "Stop rec" : "Record";
      entry.record.setAttribute("aria-label", `${rec ? "Stop recording" : "Record"} ${stream.id}`);
      entry.record.setAttribute("aria-pressed", rec ? "true" : "false");
      entry.record.disabled = rec === null && this.recording.has(stream.id);
    }
    if (cells.nodes) {
      const aliases = this.nodes.get(stream.id) ?? [];
      show(cells.nodes, aliases.length
        ? h("span", { className: "chips" }, aliases.map((a) => h("span", { className: "chip node" }, a)))
        : "—", aliases.join(","));
    }
    if (cells.thumb) this.updateThumb(entry, stream, state);
  }

  updateThumb(entry, stream, state) {
    const img = entry.cells.thumb.querySelector("img");
    const live = state.startsWith("connected") && hasVideo(stream);
    const now = Date.now();
    if (!live) {
      entry.since = 0;
      img.hidden = true;
      return;
    }
    entry.since ||= now;
    if (now - entry.since < SNAPSHOT_AFTER_MS || now - entry.snapshotAt < SNAPSHOT_EVERY_MS) return;
    entry.snapshotAt = now;
    const url = new URL(withToken(snapshotUrl(stream.id)), window.location.href);
    url.searchParams.set("t", String(now));
    img.src = url.pathname + url.search;
  }
}

export function snapshotUrl(id) {
  return `/api/streams/${encodeURIComponent(id)}/snapshot.jpg`;
}
