"""AV1 RTP payload (AOMedia "RTP Payload Format for AV1"): keyframe detection."""

from __future__ import annotations

__all__ = ["is_keyframe_start"]


def is_keyframe_start(payload: bytes | memoryview) -> bool:
    """True iff the aggregation header says this packet starts a new coded video sequence
    (N=1) and does not continue an OBU from the previous packet (Z=0)."""
    if len(payload) < 2:
        return False
    header = payload[0]  # Z|Y|W W|N|reserved
    return bool(header & 0x08) and not header & 0x80
