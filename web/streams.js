// The "Streams" panel: polls GET /api/streams/ and renders a table.

const API = "/api/streams/";

function publisherState(stream) {
  const sessions = stream.publish?.sessions ?? [];
  return sessions.length ? sessions.map((s) => s.state ?? "?").join(", ") : "none";
}

function subscriberCount(stream) {
  return (stream.subscribe?.sessions ?? []).length;
}

function codecNames(stream) {
  return (stream.codecs ?? []).map((c) => ({ name: c.codec ?? "?", title: c.fmtp ?? "" }));
}

function cell(row, content, className = "") {
  const td = row.insertCell();
  if (className) td.className = className;
  if (content instanceof Node) td.append(content);
  else td.textContent = String(content);
  return td;
}

function codecChips(stream) {
  const wrap = document.createElement("span");
  wrap.className = "chips";
  for (const { name, title } of codecNames(stream)) {
    const chip = document.createElement("span");
    chip.className = "chip";
    chip.textContent = name;
    if (title) chip.title = title;
    wrap.append(chip);
  }
  if (!wrap.children.length) wrap.textContent = "—";
  return wrap;
}

function stateBadge(stream) {
  const state = publisherState(stream);
  const badge = document.createElement("span");
  badge.className = `badge state-${state.split(",")[0].trim().replace(/[^a-z]/gi, "")}`;
  badge.textContent = state;
  return badge;
}

/**
 * Keeps `table` (with a <tbody>) in sync with the server's stream list.
 * `onPlay(streamId)` is called by each row's Play button.
 */
export class StreamsTable {
  constructor(table, statusEl, onPlay) {
    this.body = table.tBodies[0];
    this.statusEl = statusEl;
    this.onPlay = onPlay;
    this.timer = null;
  }

  start(intervalMs = 2000) {
    this.refresh();
    this.timer = setInterval(() => this.refresh(), intervalMs);
  }

  async refresh() {
    try {
      // With auth on, the list needs a token: the page's ?token= is used for it too.
      const token = new URLSearchParams(location.search).get("token");
      const headers = token ? { Authorization: `Bearer ${token}` } : {};
      const response = await fetch(API, { cache: "no-store", headers });
      if (!response.ok) throw new Error(`HTTP ${response.status} ${response.statusText}`);
      const streams = await response.json();
      this.render(Array.isArray(streams) ? streams : []);
      this.statusEl.textContent = `Updated ${new Date().toLocaleTimeString()}`;
      this.statusEl.classList.remove("error");
    } catch (err) {
      this.statusEl.textContent = `Stream list unavailable: ${err.message}`;
      this.statusEl.classList.add("error");
    }
  }

  render(streams) {
    const rows = streams
      .slice()
      .sort((a, b) => String(a.id).localeCompare(String(b.id)))
      .map((stream) => this.renderRow(stream));
    if (!rows.length) {
      const empty = document.createElement("tr");
      const td = cell(empty, "No streams yet. Publish one above.", "empty");
      td.colSpan = 5;
      rows.push(empty);
    }
    this.body.replaceChildren(...rows);
  }

  renderRow(stream) {
    const row = document.createElement("tr");
    row.dataset.stream = stream.id;
    cell(row, stream.id, "stream-id");
    cell(row, stateBadge(stream), "publisher");
    cell(row, subscriberCount(stream), "subscribers");
    cell(row, codecChips(stream), "codecs");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "small";
    button.textContent = "Play";
    button.addEventListener("click", () => this.onPlay(stream.id));
    cell(row, button, "actions");
    return row;
  }
}
