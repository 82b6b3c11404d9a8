"""Per-codec RTP payload inspection (keyframe detection), without decoding media."""

from __future__ import annotations

from collections.abc import Callable

from liveion.rtp.codecs import av1, h264, h265, vp8, vp9

__all__ = ["KeyframeDetector", "keyframe_detector"]

KeyframeDetector = Callable[[bytes | memoryview], bool]

_DETECTORS: dict[str, KeyframeDetector] = {
    "video/h264": h264.is_keyframe_start,
    "video/h265": h265.is_keyframe_start,
    "video/hevc": h265.is_keyframe_start,
    "video/vp8": vp8.is_keyframe_start,
    "video/vp9": vp9.is_keyframe_start,
    "video/av1": av1.is_keyframe_start,
}


def keyframe_detector(mime_type: str) -> KeyframeDetector | None:
    """The keyframe-start detector for a codec MIME type (case-insensitive), or None."""
    return _DETECTORS.get(mime_type.strip().lower())
