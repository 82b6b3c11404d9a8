// WHIP / WHEP HTTP exchange.
//
// Both protocols are the same on the wire: POST an SDP offer, receive a
// `201 Created` with the SDP answer and a `Location` for the session, and
// DELETE that location to hang up. The server does not trickle, so we wait
// for our own ICE gathering to finish and send every candidate in the offer.

/** An HTTP failure, carrying the status and the reason found in the body. */
export class HttpError extends Error {
  constructor(status, statusText, reason) {
    const head = `HTTP ${status}${statusText ? ` ${statusText}` : ""}`;
    super(reason ? `${head}: ${reason}` : head);
    this.name = "HttpError";
    this.status = status;
    this.reason = reason;
  }
}

/** Resolves when ICE gathering completes, or after `timeoutMs` regardless. */
export function waitForIceGathering(pc, timeoutMs = 2000) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const finish = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", onChange);
      resolve();
    };
    const onChange = () => {
      if (pc.iceGatheringState === "complete") finish();
    };
    const timer = setTimeout(finish, timeoutMs);
    pc.addEventListener("icegatheringstatechange", onChange);
  });
}

/** Shortens `text` to one line of at most `max` characters. */
function oneLine(text, max = 240) {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > max ? `${line.slice(0, max)}…` : line;
}

/** Extracts a human readable reason from an error response body. */
export async function readReason(response) {
  const text = (await response.text().catch(() => "")).trim();
  if (!text) return "";
  if (text.startsWith("<")) {
    const doc = new DOMParser().parseFromString(text, "text/html");
    return oneLine(doc.body?.textContent || doc.title || "");
  }
  try {
    const body = JSON.parse(text);
    const reason = body?.detail ?? body?.error ?? body?.message ?? body;
    return oneLine(typeof reason === "string" ? reason : JSON.stringify(reason));
  } catch {
    return oneLine(text);
  }
}

function authHeaders(token) {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/**
 * One WHIP (publish) or WHEP (play) session.
 *
 *   const session = new WhipSession("/whip/room1", token);
 *   await session.connect(pc);   // offer -> answer
 *   await session.close();       // DELETE
 */
export class WhipSession {
  constructor(endpoint, token = "") {
    this.endpoint = new URL(endpoint, window.location.href).href;
    this.token = token;
    this.location = null; // absolute URL of the session resource
    this.etag = null;
  }

  /** Negotiates `pc` with the server; resolves to `{status, location}`. */
  async connect(pc) {
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIceGathering(pc);

    const response = await fetch(this.endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/sdp", ...authHeaders(this.token) },
      body: pc.localDescription.sdp,
    });
    if (!response.ok) {
      throw new HttpError(response.status, response.statusText, await readReason(response));
    }

    const location = response.headers.get("Location");
    this.location = location ? new URL(location, this.endpoint).href : null;
    this.etag = response.headers.get("ETag");
    const answer = await response.text();
    await pc.setRemoteDescription({ type: "answer", sdp: answer });
    return { status: response.status, location };
  }

  /** Ends the session on the server (once); a 404 counts as already gone. */
  async close() {
    const url = this.location;
    this.location = null;
    if (!url) return;
    const response = await fetch(url, {
      method: "DELETE",
      headers: authHeaders(this.token),
      keepalive: true, // lets the DELETE outlive a closing tab
      signal: AbortSignal.timeout(5000),
    });
    if (!response.ok && response.status !== 404) {
      throw new HttpError(response.status, response.statusText, await readReason(response));
    }
  }
}
