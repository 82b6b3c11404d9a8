"""Which depacketizer records a negotiated codec (the per-codec ones live in ``codecs/``)."""

from __future__ import annotations

from collections.abc import Mapping

from liveion.recorder.codecs import (
    AV1Depacketizer,
    H264Depacketizer,
    H265Depacketizer,
    OpusDepacketizer,
    VP8Depacketizer,
    VP9Depacketizer,
)
from liveion.recorder.media import Depacketizer

__all__ = ["depacketizer_for"]


def _opus_channels(channels: int | None, fmtp: Mapping[str, str]) -> int:
    # WebRTC always signals opus/48000/2; stereo=1 / sprop-stereo=1 say so explicitly.
    if channels == 2 or fmtp.get("stereo") == "1" or fmtp.get("sprop-stereo") == "1":
        return 2
    return 1


def depacketizer_for(mime_type: str, clock_rate: int, channels: int | None,
                     fmtp: Mapping[str, str]) -> Depacketizer | None:
    """A fresh depacketizer for a track's negotiated codec ("video/H264", "audio/opus",
    case-insensitive), or None for codecs that are not recorded (G722, PCMU, PCMA, ...)
    and for H.264 interleaved mode."""
    name = mime_type.strip().lower()
    # aiortc parses some fmtp values to int and bare keys to None: compare as text.
    fmtp = {str(k).strip().lower(): str(v).strip() for k, v in fmtp.items() if v is not None}
    if name == "video/h264":
        if fmtp.get("packetization-mode", "0") not in ("0", "1"):
            return None
        return H264Depacketizer(clock_rate, fmtp)
    if name in ("video/h265", "video/hevc"):
        return H265Depacketizer(clock_rate, fmtp)
    if name == "video/vp8":
        return VP8Depacketizer(clock_rate)
    if name == "video/vp9":
        return VP9Depacketizer(clock_rate)
    if name == "video/av1":
        return AV1Depacketizer(clock_rate)
    if name == "audio/opus":
        return OpusDepacketizer(clock_rate, _opus_channels(channels, fmtp))
    return None
