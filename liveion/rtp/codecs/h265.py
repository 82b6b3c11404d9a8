"""H.265 RTP payload (RFC 7798): keyframe detection without decoding."""

from __future__ import annotations

from typing import Final

__all__ = ["is_keyframe_start"]

_AP: Final = 48
_FU: Final = 49
# IDR_W_RADL, IDR_N_LP, CRA_NUT (IRAP pictures a decoder can start from) and VPS, which
# precedes the parameter sets and IRAP picture of a keyframe.
_KEY_TYPES: Final = frozenset((19, 20, 21, 32))
_IRAP_TYPES: Final = frozenset((19, 20, 21))


def is_keyframe_start(payload: bytes | memoryview) -> bool:
    """True iff this payload starts a keyframe: a single IDR/CRA/VPS NAL unit, an
    aggregation packet holding one, or the first fragment (S bit) of an IDR/CRA in an FU.

    Aggregation packets are read without DONL fields (sprop-max-don-diff = 0)."""
    n = len(payload)
    if n < 3:
        return False
    nal_type = (payload[0] >> 1) & 0x3F
    if nal_type in _KEY_TYPES:
        return True
    if nal_type == _AP:
        pos = 2
        while pos + 3 < n:  # 16-bit size, then a 2-byte NAL unit header
            size = (payload[pos] << 8) | payload[pos + 1]
            pos += 2
            if size < 2 or pos + size > n:
                return False
            if (payload[pos] >> 1) & 0x3F in _KEY_TYPES:
                return True
            pos += size
        return False
    if nal_type == _FU:
        fu_header = payload[2]  # S|E|FuType
        return bool(fu_header & 0x80) and fu_header & 0x3F in _IRAP_TYPES
    return False
