"""H.264 RTP payload (RFC 6184): keyframe detection without decoding."""

from __future__ import annotations

from typing import Final

__all__ = ["is_keyframe_start"]

_NAL_IDR: Final = 5
_NAL_SPS: Final = 7
_STAP_A: Final = 24
_STAP_B: Final = 25
_FU_A: Final = 28
_FU_B: Final = 29
_KEY_TYPES: Final = frozenset((_NAL_IDR, _NAL_SPS))


def _aggregate_has_key(payload: bytes | memoryview, pos: int) -> bool:
    """Walk the 16-bit-size-prefixed NAL units of a STAP from ``pos``."""
    end = len(payload)
    while pos + 2 < end:
        size = (payload[pos] << 8) | payload[pos + 1]
        pos += 2
        if size == 0 or pos + size > end:
            return False
        if payload[pos] & 0x1F in _KEY_TYPES:
            return True
        pos += size
    return False


def is_keyframe_start(payload: bytes | memoryview) -> bool:
    """True iff this payload starts a keyframe: a single IDR or SPS NAL unit, a STAP
    holding an IDR or SPS, or the first fragment (S bit) of an IDR in an FU."""
    if len(payload) < 2:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type in _KEY_TYPES:
        return True
    if nal_type == _STAP_A:
        return _aggregate_has_key(payload, 1)
    if nal_type == _STAP_B:
        return _aggregate_has_key(payload, 3)  # header, then a 16-bit DON
    if nal_type in (_FU_A, _FU_B):
        fu_header = payload[1]
        return bool(fu_header & 0x80) and fu_header & 0x1F == _NAL_IDR
    return False
