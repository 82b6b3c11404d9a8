// Video statistics from RTCPeerConnection.getStats(), reduced to the few
// numbers the page shows, with bitrate and frame rate computed from the
// difference between two samples.

/** Turns growing counters into per-second rates between samples. */
class RateMeter {
  constructor() {
    this.previous = null;
    this.rates = { kbps: 0, fps: 0 };
  }

  update(timestampMs, bytes, frames) {
    const prev = this.previous;
    if (prev && timestampMs - prev.timestampMs >= 250) {
      const seconds = (timestampMs - prev.timestampMs) / 1000;
      this.rates = {
        kbps: Math.max(0, (8 * (bytes - prev.bytes)) / 1000 / seconds),
        fps: Math.max(0, (frames - prev.frames) / seconds),
      };
    }
    if (!prev || timestampMs - prev.timestampMs >= 250) {
      this.previous = { timestampMs, bytes, frames };
    }
    return this.rates;
  }
}

/** The video RTP stream of the given type, with the most bytes if several. */
function findVideoRtp(report, type) {
  let found = null;
  report.forEach((stats) => {
    if (stats.type !== type || stats.kind !== "video") return;
    const bytes = stats.bytesSent ?? stats.bytesReceived ?? 0;
    const best = found ? (found.bytesSent ?? found.bytesReceived ?? 0) : -1;
    if (bytes > best) found = stats;
  });
  return found;
}

function codecOf(report, rtp) {
  const codec = rtp.codecId ? report.get(rtp.codecId) : null;
  return codec?.mimeType ?? "";
}

/** Samples the outgoing (publish) or incoming (play) video of a connection. */
export class VideoStats {
  /** @param direction "outbound" for a publisher, "inbound" for a player */
  constructor(pc, direction) {
    this.pc = pc;
    this.direction = direction;
    this.meter = new RateMeter();
  }

  async sample() {
    const report = await this.pc.getStats();
    const rtp = findVideoRtp(report, `${this.direction}-rtp`);
    return this.direction === "outbound"
      ? this.summarizeOutbound(report, rtp)
      : this.summarizeInbound(report, rtp);
  }

  summarizeOutbound(report, rtp) {
    if (!rtp) return emptyOutbound();
    const rates = this.meter.update(rtp.timestamp, rtp.bytesSent ?? 0, rtp.framesEncoded ?? 0);
    return {
      codec: codecOf(report, rtp),
      width: rtp.frameWidth ?? 0,
      height: rtp.frameHeight ?? 0,
      fps: rtp.framesPerSecond ?? rates.fps,
      kbps: rates.kbps,
      bytesSent: rtp.bytesSent ?? 0,
      packetsSent: rtp.packetsSent ?? 0,
      framesEncoded: rtp.framesEncoded ?? 0,
    };
  }

  summarizeInbound(report, rtp) {
    if (!rtp) return emptyInbound();
    const rates = this.meter.update(
      rtp.timestamp, rtp.bytesReceived ?? 0, rtp.framesDecoded ?? 0);
    return {
      codec: codecOf(report, rtp),
      width: rtp.frameWidth ?? 0,
      height: rtp.frameHeight ?? 0,
      fps: rtp.framesPerSecond ?? rates.fps,
      kbps: rates.kbps,
      bytesReceived: rtp.bytesReceived ?? 0,
      packetsLost: rtp.packetsLost ?? 0,
      framesDecoded: rtp.framesDecoded ?? 0,
      framesDropped: rtp.framesDropped ?? 0,
      jitter: rtp.jitter ?? 0, // seconds
      decodeMs: rtp.framesDecoded ? (1000 * (rtp.totalDecodeTime ?? 0)) / rtp.framesDecoded : 0,
      freezes: rtp.freezeCount ?? 0,
    };
  }
}

export function emptyOutbound() {
  return {
    codec: "", width: 0, height: 0, fps: 0, kbps: 0,
    bytesSent: 0, packetsSent: 0, framesEncoded: 0,
  };
}

export function emptyInbound() {
  return {
    codec: "", width: 0, height: 0, fps: 0, kbps: 0,
    bytesReceived: 0, packetsLost: 0, framesDecoded: 0, framesDropped: 0, jitter: 0,
    decodeMs: 0, freezes: 0,
  };
}

const resolution = (s) => (s.width && s.height ? `${s.width}×${s.height}` : "—");
const number = (n, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : "—");

/** Label/value pairs for a publisher's stats panel. */
export function describeOutbound(s) {
  return [
    ["Codec", s.codec || "—"],
    ["Resolution", resolution(s)],
    ["FPS", number(s.fps)],
    ["Bitrate", `${number(s.kbps)} kbps`],
    ["Packets sent", number(s.packetsSent)],
    ["Frames encoded", number(s.framesEncoded)],
  ];
}

/** Label/value pairs for a player's stats panel. */
export function describeInbound(s) {
  return [
    ["Codec", s.codec || "—"],
    ["Resolution", resolution(s)],
    ["FPS", number(s.fps)],
    ["Bitrate", `${number(s.kbps)} kbps`],
    ["Packets lost", number(s.packetsLost)],
    ["Frames decoded", number(s.framesDecoded)],
    ["Jitter", `${number(s.jitter * 1000, 1)} ms`],
  ];
}

/** Label/value pairs for a viewer that shows decoding too (preview dialog, player page). */
export function describeDecoding(s) {
  return [
    ...describeInbound(s),
    ["Frames dropped", number(s.framesDropped)],
    ["Decode time", `${number(s.decodeMs, 1)} ms/frame`],
    ["Freezes", number(s.freezes)],
  ];
}

/** Renders label/value pairs into a <dl> as <div><dt/><dd/></div> groups. */
export function renderStats(dl, pairs) {
  if (dl.children.length !== pairs.length) {
    dl.replaceChildren(...pairs.map(([label]) => {
      const group = document.createElement("div");
      const dt = document.createElement("dt");
      dt.textContent = label;
      group.append(dt, document.createElement("dd"));
      return group;
    }));
  }
  pairs.forEach(([, value], i) => {
    dl.children[i].lastElementChild.textContent = value;
  });
}
