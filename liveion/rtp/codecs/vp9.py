"""VP9 RTP payload (RFC 9628): keyframe detection without decoding."""

from __future__ import annotations

__all__ = ["is_keyframe_start"]


def is_keyframe_start(payload: bytes | memoryview) -> bool:
    """True iff this payload starts a VP9 key frame (of the base spatial layer).

    The payload descriptor must have B=1 (start of a frame) and P=0 (not inter-picture
    predicted); when layer indices are present (L=1) the spatial layer ID must be 0.
    """
    n = len(payload)
    if n < 2:
        return False
    first = payload[0]
    if first & 0x40 or not first & 0x08:  # P set, or B clear
        return False
    pos = 1
    if first & 0x80:  # I: PictureID, 7 or 15 bits (M bit)
        pos += 2 if payload[1] & 0x80 else 1
    if first & 0x20:  # L: layer indices TID|U|SID|D
        if pos >= n:
            return False
        if (payload[pos] >> 1) & 0x07:
            return False
        pos += 1
        if not first & 0x10:  # non-flexible mode: TL0PICIDX follows
            pos += 1
    return pos < n
