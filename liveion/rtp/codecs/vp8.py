"""VP8 RTP payload (RFC 7741): keyframe detection without decoding."""

from __future__ import annotations

__all__ = ["is_keyframe_start"]


def is_keyframe_start(payload: bytes | memoryview) -> bool:
    """True iff this payload is the first packet of a VP8 key frame.

    The payload descriptor must have S=1 and partition index 0, and the first byte of the
    VP8 payload header after it must have P (inverse key frame flag, bit 0) == 0.
    """
    n = len(payload)
    if n < 2:
        return False
    first = payload[0]
    if not first & 0x10 or first & 0x07:  # S bit, PID
        return False
    pos = 1
    if first & 0x80:  # X: extension byte follows
        ext = payload[1]
        pos = 2
        if ext & 0x80:  # I: PictureID, 7 or 15 bits (M bit)
            if pos >= n:
                return False
            pos += 2 if payload[pos] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            pos += 1
        if ext & 0x30:  # T or K: TID/Y/KEYIDX byte
            pos += 1
    if pos >= n:
        return False
    return not payload[pos] & 0x01
