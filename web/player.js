// The embeddable WHEP player: /player.html?id=&token=&autoplay=&muted=&controls=&reconnect=&stats=
//
// It asks the streams API whether the stream has a publisher before subscribing, and says
// "waiting for the publisher" (polling) instead of spinning when it has none; it reconnects
// when its session is lost and the publisher comes back.

import { api, HttpError, token } from "./api.js";
import { describeDecoding, emptyInbound, renderStats } from "./stats.js";
import { presentedFrames, WhepViewer } from "./viewer.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(window.location.search);

/** `?name=` as a boolean: 1/true/yes/on or 0/false/no/off, else `fallback`. */
function flag(name, fallback) {
  const value = params.get(name);
  if (value === null) return fallback;
  if (value === "") return true;
  return !/^(0|false|no|off)$/i.test(value);
}

const options = {
  id: (params.get("id") ?? "").trim(),
  autoplay: flag("autoplay", true),
  muted: flag("muted", true),
  controls: flag("controls", true),
  // Live777: reconnect=<ms>. 0 (or false) turns reconnecting off.
  reconnectMs: (() => {
    const value = params.get("reconnect");
    if (value === null || value === "" || /^(true|yes|on)$/i.test(value)) return 3000;
    const ms = Number(value);
    return Number.isFinite(ms) && ms > 0 ? Math.max(500, ms) : 0;
  })(),
  stats: flag("stats", false),
};

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

function publisherOf(stream) {
  const sessions = stream?.publish?.sessions ?? [];
  return sessions.find((s) => !["failed", "closed"].includes(s.state)) ?? null;
}

class PlayerPage {
  constructor() {
    this.video = $("player-video");
    this.video.muted = options.muted;
    this.video.controls = false; // shown once there is something to control
    this.video.autoplay = true;
    this.statsEl = $("player-stats");
    this.state = "idle";
    this.viewer = new WhepViewer(this.video);
    this.running = false;
    this.statsTimer = null;
    this.setupStats();
    this.video.addEventListener("click", () => {
      if (this.video.paused && this.viewer.active) this.tryPlay();
    });
  }

  /** Shows `text` over the video (kind: info, waiting, error) or hides it (text = ""). */
  message(text, kind = "info", sub = "") {
    const box = $("player-message");
    box.hidden = !text;
    box.dataset.kind = kind;
    $("player-message-text").textContent = text;
    $("player-message-sub").textContent = sub;
    $("player-start").hidden = true;
  }

  setState(state) {
    this.state = state;
    document.body.dataset.state = state;
    this.video.controls = options.controls && state === "playing";
  }

  setupStats() {
    const toggle = $("stats-toggle");
    const show = (on) => {
      this.statsEl.hidden = !on;
      toggle.setAttribute("aria-pressed", on ? "true" : "false");
    };
    toggle.addEventListener("click", () => show(this.statsEl.hidden));
    document.addEventListener("keydown", (event) => {
      if (event.key === "i" && !event.ctrlKey && !event.metaKey && !event.altKey
          && !(event.target instanceof HTMLInputElement)) show(this.statsEl.hidden);
    });
    renderStats(this.statsEl, describeDecoding(emptyInbound()));
    show(options.stats);
    this.statsTimer = setInterval(async () => {
      const summary = await this.viewer.sample().catch(() => null);
      renderStats(this.statsEl, describeDecoding(summary ?? emptyInbound()));
    }, 1000);
  }

  start() {
    if (!options.id) {
      document.title = "Player · live777";
      this.message("Which stream?", "info", "Add ?id=<stream> to the address, or enter it here.");
      const form = $("player-form");
      form.hidden = false;
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        const url = new URL(window.location.href);
        url.searchParams.set("id", $("player-stream").value.trim());
        window.location.assign(url.href);
      });
      $("player-stream").focus();
      return;
    }
    document.title = `${options.id} · Player`;
    if (!options.autoplay) {
      this.message(`${options.id}`, "info", "Press Play to watch.");
      const button = $("player-start");
      button.hidden = false;
      button.addEventListener("click", () => this.run(), { once: true });
      button.focus();
      return;
    }
    this.run();
  }

  /**
   * The stream's JSON, null when absent; throws a user-facing Error on a refused token.
   * The list endpoint with `?streams=` answers 200 either way (no 404 in the console).
   */
  async lookup() {
    try {
      const list = await api(`/api/streams/?streams=${encodeURIComponent(options.id)}`);
      return (Array.isArray(list) ? list : []).find((s) => s.id === options.id) ?? null;
    } catch (err) {
      if (err instanceof HttpError && err.status === 401) {
        throw new Error(token.get()
          ? "The token was refused. Check the token in the address (?token=)."
          : "This server needs a token: add ?token=<token> to the address.");
      }
      if (err instanceof HttpError && err.status === 403) {
        throw new Error(`This token does not allow watching ${options.id}.`);
      }
      return undefined; // unreachable or a server error: try again
    }
  }

  fatal(text) {
    this.running = false;
    this.setState("error");
    this.message(text, "error");
  }

  async run() {
    this.running = true;
    this.message("Connecting…");
    const pollMs = options.reconnectMs || 3000;
    while (this.running) {
      let stream;
      try {
        stream = await this.lookup();
      } catch (err) {
        this.fatal(err.message);
        return;
      }
      if (stream === undefined) {
        this.setState("offline");
        this.message("The server cannot be reached.", "error", "Trying again…");
        await sleep(pollMs);
        continue;
      }
      if (!publisherOf(stream)) {
        this.setState("waiting");
        this.message(`Waiting for the publisher of ${options.id}…`, "waiting",
          stream ? "The stream exists but nobody is publishing yet." : "The stream does not exist yet.");
        await sleep(pollMs);
        continue;
      }
      const ended = await this.watch();
      if (!ended) return;
      if (!options.reconnectMs) {
        this.setState("ended");
        this.message("The stream ended.", "info", "Reload the page to watch again.");
        return;
      }
      await sleep(500);
    }
  }

  /** One WHEP session, until it is lost; resolves true to look for the publisher again. */
  async watch() {
    this.setState("connecting");
    this.message(`Connecting to ${options.id}…`);
    try {
      await this.viewer.start(options.id, token.get());
    } catch (err) {
      if (err instanceof HttpError && (err.status === 401 || err.status === 403)) {
        this.fatal(err.status === 401 ? "The token was refused."
          : `This token does not allow watching ${options.id}.`);
        return false;
      }
      const busy = err instanceof HttpError && err.status === 503;
      this.setState("retrying");
      this.message(busy ? "The stream is full." : `Could not connect: ${err.message}`, "error",
        "Trying again…");
      await sleep(options.reconnectMs || 3000);
      return true;
    }
    let lastFrames = presentedFrames(this.video);
    let stalled = 0;
    let tick = 0;
    let lostFor = 0;
    this.tryPlay();
    while (this.running && this.viewer.active) {
      await sleep(1000);
      tick += 1;
      const frames = presentedFrames(this.video);
      const state = this.viewer.state;
      if (frames > lastFrames) {
        stalled = 0;
        if (this.state !== "playing") {
          this.setState("playing");
          this.message("");
        }
      } else {
        stalled += 1;
      }
      lastFrames = frames;
      lostFor = ["failed", "closed", "disconnected"].includes(state) ? lostFor + 1 : 0;
      if (state === "failed" || state === "closed" || lostFor >= 5) break;
      if (stalled >= 2 && tick % 2 === 0) {
        // No pictures: is the publisher gone, or the whole stream?
        const stream = await this.lookup().catch(() => undefined);
        if (stream === null) break; // the stream was deleted: our session with it
        if (stream && !publisherOf(stream)) {
          this.setState("waiting");
          this.message(`Waiting for the publisher of ${options.id}…`, "waiting",
            "The publisher left; playback resumes when it returns.");
        } else if (this.state === "playing" || this.state === "connecting") {
          this.message(this.video.paused ? "" : "Waiting for video…", "info");
          if (this.video.paused) this.offerPlay();
        }
      }
    }
    await this.viewer.stop();
    this.setState("reconnecting");
    this.message(`Lost the connection to ${options.id}.`, "waiting", "Reconnecting…");
    return true;
  }

  /** Starts playback; where autoplay with sound is refused, offers a Play button. */
  tryPlay() {
    const attempt = this.video.play();
    attempt?.catch((err) => {
      if (err.name === "NotAllowedError") this.offerPlay();
    });
  }

  offerPlay() {
    this.message("Press Play to start (the browser blocked autoplay with sound).", "info");
    const button = $("player-start");
    button.hidden = false;
    button.onclick = () => {
      button.hidden = true;
      this.message("");
      this.video.play().catch(() => {});
    };
    button.focus();
  }
}

const page = new PlayerPage();
window.livePlayer = {
  state: () => page.state,
  frames: () => presentedFrames(page.video),
  stats: () => page.viewer.sample(),
  options,
};
window.addEventListener("pagehide", () => {
  page.running = false;
  page.viewer.stop();
});
page.start();
