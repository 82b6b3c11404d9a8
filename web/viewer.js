// A WHEP viewer on a <video>: one RTCPeerConnection, its session, and its stats. Used by
// the dashboard's preview dialog and by the player page.

import { VideoStats } from "./stats.js";
import { WhipSession } from "./whip.js";

export class WhepViewer {
  /** `onState(connectionState)` follows the peer connection. */
  constructor(video, { onState = () => {} } = {}) {
    this.video = video;
    this.onState = onState;
    this.pc = null;
    this.session = null;
    this.stats = null;
  }

  get active() {
    return this.pc !== null;
  }

  get state() {
    return this.pc?.connectionState ?? "closed";
  }

  /** Subscribes to `stream` (video and audio); resolves to `{status, location}`. */
  async start(stream, tokenValue = "") {
    await this.stop();
    const pc = new RTCPeerConnection();
    this.pc = pc;
    const media = new MediaStream();
    this.video.srcObject = media;
    pc.addEventListener("track", (event) => {
      media.addTrack(event.track);
      this.video.play().catch(() => {}); // autoplay refusals are handled by the page
    });
    pc.addEventListener("connectionstatechange", () => {
      if (this.pc === pc) this.onState(pc.connectionState);
    });
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    const session = new WhipSession(`/whep/${encodeURIComponent(stream)}`, tokenValue);
    try {
      const result = await session.connect(pc);
      if (this.pc !== pc) {
        await session.close().catch(() => {});
        throw new Error("Cancelled");
      }
      this.session = session;
      this.stats = new VideoStats(pc, "inbound");
      return result;
    } catch (err) {
      if (this.pc === pc) {
        this.pc = null;
        pc.close();
        this.video.srcObject = null;
      }
      throw err;
    }
  }

  async sample() {
    return this.stats ? this.stats.sample() : null;
  }

  /** Hangs up: DELETE the session, then close the connection. */
  async stop() {
    const { pc, session } = this;
    this.pc = null;
    this.session = null;
    this.stats = null;
    if (this.video.srcObject) this.video.srcObject = null;
    try {
      if (session) await session.close();
    } catch {
      // The server already dropped it (stream deleted, node restarted).
    } finally {
      pc?.close();
    }
  }
}

/** Frames the <video> element has presented so far (what a viewer actually sees). */
export function presentedFrames(video) {
  return video.getVideoPlaybackQuality?.().totalVideoFrames ?? 0;
}
