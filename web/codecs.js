// Video codec choice for the publisher: which codecs this browser can send,
// and forcing one of them on a transceiver with setCodecPreferences().

export const VIDEO_CODECS = ["H264", "VP8", "VP9", "AV1"];

/** "vp8", "VP8" or "video/VP8" -> "VP8" (one of VIDEO_CODECS), else null. */
export function normalizeCodec(name) {
  const bare = String(name ?? "").replace(/^video\//i, "").toUpperCase();
  return VIDEO_CODECS.find((codec) => codec === bare) ?? null;
}

const mimeOf = (codec) => `video/${codec}`.toLowerCase();

/** The subset of VIDEO_CODECS that RTCRtpSender can encode here. */
export function sendableCodecs() {
  const capabilities = window.RTCRtpSender?.getCapabilities?.("video");
  const mimes = new Set((capabilities?.codecs ?? []).map((c) => c.mimeType.toLowerCase()));
  return VIDEO_CODECS.filter((codec) => mimes.has(mimeOf(codec)));
}

/** Disables the options the browser cannot send; selects a usable one. */
export function setupCodecSelect(select) {
  const usable = new Set(sendableCodecs());
  for (const option of select.options) {
    option.disabled = !usable.has(option.value);
    if (option.disabled) option.textContent = `${option.value} (not supported)`;
  }
  if (select.selectedOptions[0]?.disabled) {
    const first = [...select.options].find((option) => !option.disabled);
    if (first) select.value = first.value;
  }
}

/**
 * Lower rank = preferred. For H264 prefer packetization-mode=1 and the
 * constrained baseline profile (42e0xx), which every decoder handles.
 */
function h264Rank(codec) {
  const fmtp = codec.sdpFmtpLine ?? "";
  let rank = 0;
  if (!/packetization-mode=1/.test(fmtp)) rank += 10;
  if (!/profile-level-id=42e0/i.test(fmtp)) rank += /profile-level-id=4200/i.test(fmtp) ? 1 : 2;
  return rank;
}

function preferenceList(capabilities, codec) {
  const all = capabilities?.codecs ?? [];
  const chosen = all.filter((c) => c.mimeType.toLowerCase() === mimeOf(codec));
  if (codec === "H264") chosen.sort((a, b) => h264Rank(a) - h264Rank(b));
  const rtx = all.filter((c) => c.mimeType.toLowerCase() === "video/rtx");
  return chosen.length ? [...chosen, ...rtx] : [];
}

/**
 * Restricts a video transceiver to `codec` (plus RTX for retransmissions).
 * Browsers differ on whether the list must come from the receiver or the
 * sender capabilities, so both are tried.
 */
export function forceVideoCodec(transceiver, codec) {
  let lastError = null;
  for (const source of [window.RTCRtpReceiver, window.RTCRtpSender]) {
    const list = preferenceList(source?.getCapabilities?.("video"), codec);
    if (!list.length) continue;
    try {
      transceiver.setCodecPreferences(list);
      return;
    } catch (err) {
      lastError = err;
    }
  }
  const why = lastError ? `: ${lastError.message}` : "";
  throw new Error(`This browser cannot send ${codec}${why}`);
}
