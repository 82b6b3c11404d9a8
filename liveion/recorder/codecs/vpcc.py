"""The vpcC record of the VP Codec ISO Media File Format Binding (VP8 and VP9)."""

from __future__ import annotations

from typing import Final

__all__ = ["CHROMA_420_COLOCATED", "CHROMA_420_VERTICAL", "CHROMA_422", "CHROMA_444",
           "UNSPECIFIED", "vp9_level", "vpcc_record"]

CHROMA_420_VERTICAL: Final = 0
CHROMA_420_COLOCATED: Final = 1
CHROMA_422: Final = 2
CHROMA_444: Final = 3
UNSPECIFIED: Final = 2
"""ISO/IEC 23091-2 code for unspecified colour primaries, transfer and matrix."""

# VP9 levels (x10) with their maximum luma picture size and luma sample rate.
_LEVELS: Final = (
    (10, 36864, 829440),
    (11, 73728, 2764800),
    (20, 122880, 4608000),
    (21, 245760, 9216000),
    (30, 552960, 20736000),
    (31, 983040, 36864000),
    (40, 2228224, 83558400),
    (41, 2228224, 160432128),
    (50, 8912896, 311951360),
    (51, 8912896, 588251136),
    (52, 8912896, 1176502272),
    (60, 35651584, 1176502272),
    (61, 35651584, 2353004544),
    (62, 35651584, 4706009088),
)


def vp9_level(width: int, height: int, frame_rate: float = 30.0) -> int:
    """The lowest VP9 level (times 10) that admits this picture size at this frame rate
    (RTP does not state the rate; 30 is what WebRTC senders aim at)."""
    size = width * height
    for level, max_size, max_rate in _LEVELS:
        if size <= max_size and size * frame_rate <= max_rate:
            return level
    return 62


def vpcc_record(profile: int, level: int, bit_depth: int, chroma_subsampling: int,
                full_range: bool = False, colour_primaries: int = UNSPECIFIED,
                transfer_characteristics: int = UNSPECIFIED,
                matrix_coefficients: int = UNSPECIFIED) -> bytes:
    """VPCodecConfigurationBox body: the FullBox version (1) and flags (0) followed by
    the VPCodecConfigurationRecord, without codec initialization data."""
    return bytes((
        1, 0, 0, 0,
        profile, level,
        (bit_depth << 4) | (chroma_subsampling << 1) | int(full_range),
        colour_primaries, transfer_characteristics, matrix_coefficients,
        0, 0,  # codecIntializationDataSize
    ))
