// The dashboard page: the Publish and Play panels, the streams dashboard (dashboard.js),
// URL parameters, and the `window.liveion` hook used by the browser tests.

import { WhipSession } from "./whip.js";
import { forceVideoCodec, normalizeCodec, setupCodecSelect } from "./codecs.js";
import {
  VideoStats, describeInbound, describeOutbound, emptyInbound, emptyOutbound, renderStats,
} from "./stats.js";
import { hasFeature, serverInfo, token, withToken } from "./api.js";
import { Dashboard } from "./dashboard.js";
import { renderServerBadge, setupAuthButton } from "./ui.js";

const $ = (id) => document.getElementById(id);

function setStatus(el, text, kind = "info") {
  el.textContent = text;
  el.dataset.kind = kind;
}

function requireStreamName(stream) {
  const name = String(stream ?? "").trim();
  if (!name) throw new Error("Enter a stream name");
  return name;
}

/**
 * Shared life cycle of a publisher or a player: one RTCPeerConnection, one
 * WHIP/WHEP session, a stats ticker and the panel's status line.
 */
class MediaLink {
  constructor(ui, direction, describe, empty) {
    this.ui = ui; // { status, stats, video, start, stop }
    this.direction = direction;
    this.describe = describe;
    this.empty = empty;
    this.pc = null;
    this.session = null;
    this.stats = null;
    this.timer = null;
    this.attempt = 0; // bumped by every start/stop to spot stale results
    this.render(empty());
  }

  status(text, kind) {
    setStatus(this.ui.status, text, kind);
  }

  /** Returns `check()`, or shows its error on the status line and rethrows. */
  validate(check) {
    try {
      return check();
    } catch (err) {
      this.status(err.message, "error");
      throw err;
    }
  }

  render(summary) {
    renderStats(this.ui.stats, this.describe(summary));
  }

  /** Latest stats of the running connection (zeros when idle). */
  async sample() {
    return this.stats ? this.stats.sample() : this.empty();
  }

  /**
   * Opens a connection: `prepare(pc)` adds the media, then the offer is
   * exchanged at `endpoint`. Resolves to `{status, location}`.
   */
  async open(endpoint, token, prepare) {
    await this.close();
    const attempt = ++this.attempt;
    this.ui.start.disabled = true;
    this.ui.stop.disabled = false; // Stop also cancels a pending start
    const pc = new RTCPeerConnection();
    this.pc = pc;
    this.watchConnection(pc, attempt);
    try {
      await prepare(pc);
      this.status("Gathering ICE candidates and sending the offer…", "info");
      const session = new WhipSession(endpoint, token);
      const result = await session.connect(pc);
      if (attempt !== this.attempt) {
        await session.close().catch(() => {});
        throw new Error("Cancelled");
      }
      this.session = session;
      this.startStats(pc);
      if (pc.connectionState !== "connected") {
        this.status(`${this.startedText(result)}, connecting…`, "info");
      }
      return result;
    } catch (err) {
      if (attempt === this.attempt) {
        await this.close();
        this.status(`${this.failureText()}: ${err.message}`, "error");
      }
      throw err;
    }
  }

  watchConnection(pc, attempt) {
    pc.addEventListener("connectionstatechange", () => {
      if (attempt !== this.attempt) return;
      const state = pc.connectionState;
      if (state === "connected") this.onConnected();
      else if (state === "failed") this.status("Connection failed (ICE/DTLS)", "error");
      else if (state === "disconnected") this.status("Connection interrupted…", "warn");
    });
  }

  startedText(result) {
    return `HTTP ${result.status}`;
  }

  failureText() {
    return "Failed";
  }

  onConnected() {}

  onStats() {}

  startStats(pc) {
    this.stats = new VideoStats(pc, this.direction);
    const tick = async () => {
      try {
        const summary = await this.stats.sample();
        this.render(summary);
        this.onStats(summary);
      } catch {
        // The connection closed between ticks.
      }
    };
    this.timer = setInterval(tick, 1000);
    tick();
  }

  /**
   * Hangs up: DELETEs the server session first (so the server sees an orderly
   * end rather than the peer vanishing), then closes the connection.
   */
  async close() {
    this.attempt += 1;
    clearInterval(this.timer);
    this.timer = null;
    this.stats = null;
    const { pc, session } = this;
    this.pc = null;
    this.session = null;
    this.releaseMedia();
    this.ui.video.srcObject = null;
    this.ui.start.disabled = false;
    this.ui.stop.disabled = true;
    this.render(this.empty());
    try {
      if (session) await session.close();
    } finally {
      pc?.close();
    }
  }

  releaseMedia() {}
}

class Publisher extends MediaLink {
  constructor(ui) {
    super(ui, "outbound", describeOutbound, emptyOutbound);
    this.media = null;
    this.label = "";
  }

  async start(stream, { codec, token = "" } = {}) {
    const name = this.validate(() => requireStreamName(stream));
    const videoCodec = this.validate(() => {
      const known = normalizeCodec(codec ?? this.ui.codec.value);
      if (!known) throw new Error(`Unknown video codec '${codec}'`);
      return known;
    });
    this.ui.name.value = name;
    this.ui.codec.value = videoCodec;
    this.ui.token.value = token;
    this.label = `'${name}' (${videoCodec})`;
    this.status(`Starting camera for ${this.label}…`, "info");
    return this.open(`/whip/${encodeURIComponent(name)}`, token, (pc) =>
      this.addMedia(pc, videoCodec));
  }

  startedText(result) {
    return `Published ${this.label}: HTTP ${result.status}`;
  }

  failureText() {
    return `Publishing ${this.label} failed`;
  }

  async addMedia(pc, codec) {
    this.media = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } },
      audio: true,
    });
    this.ui.video.srcObject = this.media;
    for (const track of this.media.getTracks()) {
      const transceiver = pc.addTransceiver(track, {
        direction: "sendonly",
        streams: [this.media],
      });
      if (track.kind === "video") forceVideoCodec(transceiver, codec);
    }
  }

  onConnected() {
    this.status(`Publishing ${this.label}`, "ok");
  }

  releaseMedia() {
    this.media?.getTracks().forEach((track) => track.stop());
    this.media = null;
  }

  async stop() {
    const wasActive = Boolean(this.pc);
    await this.close();
    if (wasActive) this.status("Stopped", "info");
  }
}

class Player extends MediaLink {
  constructor(ui) {
    super(ui, "inbound", describeInbound, emptyInbound);
    this.label = "";
    this.receiving = false;
    this.lastFrames = 0;
    this.stalledTicks = 0;
  }

  async start(stream, { token = "" } = {}) {
    const name = this.validate(() => requireStreamName(stream));
    this.ui.name.value = name;
    this.ui.token.value = token;
    this.label = `'${name}'`;
    this.receiving = false;
    this.lastFrames = 0;
    this.stalledTicks = 0;
    return this.open(`/whep/${encodeURIComponent(name)}`, token, (pc) =>
      this.addReceivers(pc));
  }

  startedText(result) {
    return `Subscribed to ${this.label}: HTTP ${result.status}`;
  }

  failureText() {
    return `Playing ${this.label} failed`;
  }

  addReceivers(pc) {
    const media = new MediaStream();
    this.ui.video.srcObject = media;
    pc.addEventListener("track", (event) => {
      media.addTrack(event.track);
      this.ui.video.play().catch(() => {});
    });
    pc.addTransceiver("audio", { direction: "recvonly" });
    pc.addTransceiver("video", { direction: "recvonly" });
  }

  onConnected() {
    if (!this.receiving) this.status(`Connected to ${this.label}, waiting for video…`, "info");
  }

  /** Tracks whether frames keep arriving, e.g. to notice a publisher leaving. */
  onStats(summary) {
    const growing = summary.framesDecoded > this.lastFrames;
    this.lastFrames = summary.framesDecoded;
    this.stalledTicks = growing ? 0 : this.stalledTicks + 1;
    if (growing && !this.receiving) {
      this.receiving = true;
      this.status(`Playing ${this.label}`, "ok");
    } else if (this.receiving && this.stalledTicks === 3) {
      this.receiving = false;
      this.status(`No video from ${this.label} for 3 s, waiting for the publisher…`, "warn");
    }
  }

  async stop() {
    const wasActive = Boolean(this.pc);
    await this.close();
    if (wasActive) this.status("Stopped", "info");
  }
}

function panelUi(prefix) {
  return {
    name: $(`${prefix}-stream`),
    token: $(`${prefix}-token`),
    codec: $(`${prefix}-codec`),
    start: $(`${prefix}-start`),
    stop: $(`${prefix}-stop`),
    video: $(`${prefix}-video`),
    stats: $(`${prefix}-stats`),
    status: $(`${prefix}-status`),
  };
}

/** Runs a UI action; failures are already on the status line. */
function fromUi(action) {
  action().catch((err) => console.warn("liveion:", err.message));
}

function bindForms(publisher, player) {
  $("publish-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const ui = publisher.ui;
    fromUi(() => publisher.start(ui.name.value, { codec: ui.codec.value, token: ui.token.value }));
  });
  publisher.ui.stop.addEventListener("click", () => fromUi(() => publisher.stop()));

  $("play-form").addEventListener("submit", (event) => {
    event.preventDefault();
    fromUi(() => player.start(player.ui.name.value, { token: player.ui.token.value }));
  });
  player.ui.stop.addEventListener("click", () => fromUi(() => player.stop()));
}

/** The Publish and Play panels' token fields follow the page's token unless edited. */
function followToken(publisher, player) {
  let last = "";
  const update = () => {
    for (const input of [publisher.ui.token, player.ui.token]) {
      if (input.value === last) input.value = token.get();
    }
    last = token.get();
  };
  token.addEventListener("change", update);
  update();
}

/** Links to the other pages carry a `?token=` that came in the URL (it is not stored). */
function keepUrlToken() {
  if (!token.fromUrl) return;
  for (const link of document.querySelectorAll("a[data-keep-token]")) {
    link.href = withToken(link.getAttribute("href"), token.fromUrl);
  }
}

function applyUrlParams(publisher, player) {
  const params = new URLSearchParams(window.location.search);
  const token = params.get("token") ?? publisher.ui.token.value;
  publisher.ui.token.value = token;
  player.ui.token.value = token;
  const codec = normalizeCodec(params.get("codec"));
  if (codec) publisher.ui.codec.value = codec;
  if (params.get("publish")) {
    fromUi(() => publisher.start(params.get("publish"), { codec: publisher.ui.codec.value, token }));
  }
  if (params.get("play")) {
    fromUi(() => player.start(params.get("play"), { token }));
  }
}

function main() {
  setupCodecSelect($("publish-codec"));
  const publisher = new Publisher(panelUi("publish"));
  const player = new Player(panelUi("play"));
  bindForms(publisher, player);

  followToken(publisher, player);
  keepUrlToken();

  const dashboard = new Dashboard({
    onPlay: (id) => {
      fromUi(() => player.start(id, { token: player.ui.token.value }));
      $("play-panel").scrollIntoView({ behavior: "smooth", block: "nearest" });
    },
  });
  setupAuthButton($("auth-button"), () => dashboard.auth?.show("Enter a token for this server."));

  window.liveion = {
    publish: (stream, options) => publisher.start(stream, options),
    stopPublish: () => publisher.stop(),
    play: (stream, options) => player.start(stream, options),
    stopPlay: () => player.stop(),
    publishStats: () => publisher.sample(),
    playStats: () => player.sample(),
    refreshStreams: () => dashboard.refresh(),
    dashboard,
  };

  // Best effort: let the server drop our sessions when the tab goes away.
  window.addEventListener("pagehide", () => {
    publisher.close().catch(() => {});
    player.close().catch(() => {});
  });

  applyUrlParams(publisher, player);

  serverInfo().then((info) => {
    renderServerBadge(info);
    // A node without auth needs no sign-in (liveman does not say, so it keeps the button).
    if (!token.get() && !hasFeature(info, "auth") && !hasFeature(info, "cluster")) {
      $("auth-button").hidden = true;
    }
    return dashboard.start(info);
  }).catch((err) => console.warn("liveion:", err.message));
}

main();
