"""WebM (Matroska) init and media segments for DASH, for codecs browsers refuse in MP4 (sans-IO).

Chromium's Media Source accepts VP8 only as `video/webm` (`video/mp4; codecs="vp08..."` is
not supported), so VP8 tracks are written here. The init segment is the EBML header, a
Segment of unknown size, Info and Tracks; each media segment is one or more Clusters of
SimpleBlocks. Timestamps are in milliseconds (TimecodeScale 1 000 000 ns), the Matroska
default; a Cluster spans at most 32.767 s (its blocks' 16-bit relative timestamps), so a
longer segment gets more Clusters. The last block of a segment is a BlockGroup with a
BlockDuration, so the player knows where the segment ends instead of guessing.
"""

from __future__ import annotations

import struct

from liveion.recorder.fmp4 import Sample
from liveion.recorder.media import TrackConfig

_EBML = b"\x1a\x45\xdf\xa3"
_SEGMENT = b"\x18\x53\x80\x67"
_INFO = b"\x15\x49\xa9\x66"
_TRACKS = b"\x16\x54\xae\x6b"
_TRACK_ENTRY = b"\xae"
_CLUSTER = b"\x1f\x43\xb6\x75"
_TIMECODE = b"\xe7"
_SIMPLE_BLOCK = b"\xa3"
_BLOCK_GROUP = b"\xa0"
_BLOCK = b"\xa1"
_BLOCK_DURATION = b"\x9b"
_REFERENCE_BLOCK = b"\xfb"
_UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"
_TIMECODE_SCALE_NS = 1_000_000
_MAX_RELATIVE_MS = 0x7FFF

_CODEC_IDS = {"vp8": "V_VP8", "vp9": "V_VP9"}


def _size(n: int) -> bytes:
    """EBML variable-length size, shortest form (all-ones values are reserved)."""
    length = 1
    while n >= (1 << (7 * length)) - 1:
        length += 1
    return (n | (1 << (7 * length))).to_bytes(length, "big")


def element(element_id: bytes, *payload: bytes) -> bytes:
    return b"".join((element_id, _size(sum(len(part) for part in payload)), *payload))


def _uint(element_id: bytes, value: int) -> bytes:
    return element(element_id, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def _sint(element_id: bytes, value: int) -> bytes:
    return element(element_id, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big",
                                               signed=True))


def _text(element_id: bytes, value: str) -> bytes:
    return element(element_id, value.encode("utf-8"))


def init_segment(config: TrackConfig, track_number: int) -> bytes:
    """EBML header + the start of a Segment (unknown size) with Info and one TrackEntry."""
    codec_id = _CODEC_IDS.get(config.codec)
    if codec_id is None or config.kind != "video":
        raise ValueError(f"no WebM writer for codec {config.codec!r}")
    header = element(
        _EBML,
        _uint(b"\x42\x86", 1),  # EBMLVersion
        _uint(b"\x42\xf7", 1),  # EBMLReadVersion
        _uint(b"\x42\xf2", 4),  # EBMLMaxIDLength
        _uint(b"\x42\xf3", 8),  # EBMLMaxSizeLength
        _text(b"\x42\x82", "webm"),  # DocType
        _uint(b"\x42\x87", 4),  # DocTypeVersion
        _uint(b"\x42\x85", 2),  # DocTypeReadVersion
    )
    info = element(
        _INFO,
        _uint(b"\x2a\xd7\xb1", _TIMECODE_SCALE_NS),
        _text(b"\x4d\x80", "live777-py"),  # MuxingApp
        _text(b"\x57\x41", "live777-py"),  # WritingApp
    )
    video = element(b"\xe0", _uint(b"\xb0", config.width), _uint(b"\xba", config.height))
    entry = element(
        _TRACK_ENTRY,
        _uint(b"\xd7", track_number),  # TrackNumber
        _uint(b"\x73\xc5", track_number),  # TrackUID
        _uint(b"\x83", 1),  # TrackType: video
        _uint(b"\x9c", 0),  # FlagLacing
        _text(b"\x86", codec_id),
        video,
    )
    return header + _SEGMENT + _UNKNOWN_SIZE + info + element(_TRACKS, entry)


def media_segment(track_number: int, base_decode_time: int, samples: list[Sample],
                  timescale: int) -> bytes:
    """Clusters holding `samples` (decode order; durations in `timescale` ticks)."""
    if not 0 < track_number < 127:
        raise ValueError("track number must fit a one-byte EBML vint")
    track = bytes((0x80 | track_number,))
    clusters: list[bytes] = []
    blocks: list[bytes] = []
    cluster_ms = -1
    previous_ms = 0
    ticks = base_decode_time
    last = len(samples) - 1
    for index, (data, duration, keyframe) in enumerate(samples):
        ms = ticks * 1000 // timescale
        ticks += duration
        if cluster_ms < 0 or ms - cluster_ms > _MAX_RELATIVE_MS:
            if blocks:
                clusters.append(element(_CLUSTER, *blocks))
            cluster_ms = ms
            blocks = [_uint(_TIMECODE, ms)]
        head = track + struct.pack(">h", ms - cluster_ms)
        if index < last:
            blocks.append(element(_SIMPLE_BLOCK, head, b"\x80" if keyframe else b"\x00", data))
        else:
            end_ms = ticks * 1000 // timescale
            group = [element(_BLOCK, head, b"\x00", data), _uint(_BLOCK_DURATION, end_ms - ms)]
            if not keyframe:  # a Block without ReferenceBlock would count as a keyframe
                group.append(_sint(_REFERENCE_BLOCK, min(-1, previous_ms - ms)))
            blocks.append(element(_BLOCK_GROUP, *group))
        previous_ms = ms
    if blocks:
        clusters.append(element(_CLUSTER, *blocks))
    return b"".join(clusters)
