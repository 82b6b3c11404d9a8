"""Fragmented MP4 (ISO BMFF) boxes for DASH: init segments and media segments (sans-IO).

The init segment is `ftyp` + `moov` with one track and empty sample tables (every sample
lives in the media segments, `mvex/trex` announces that). A media segment is `styp` +
one `moof` (`mfhd`, `traf` with `tfhd` default-base-is-moof, `tfdt` v1, `trun`) + `mdat`.
All integers are big-endian. Boxes are built with `struct.pack` and `b"".join`: a
segment costs one pack call for all its `trun` entries and one join for its payloads.
"""

from __future__ import annotations

import struct
from typing import TypeAlias

from liveion.recorder.media import TrackConfig

Sample: TypeAlias = tuple[bytes, int, bool]
"""One sample of a media segment: (data, duration in track ticks, sync/keyframe)."""

SYNC_SAMPLE_FLAGS = 0x02000000
"""sample_depends_on=2 (depends on no other sample), is_non_sync=0."""
NON_SYNC_SAMPLE_FLAGS = 0x01010000
"""sample_depends_on=1 (depends on others), is_non_sync=1."""

TFHD_DEFAULT_BASE_IS_MOOF = 0x020000
TRUN_FLAGS = 0x000001 | 0x000100 | 0x000200 | 0x000400
"""data-offset, per-sample duration, size and flags present."""

# Identity transform of mvhd/tkhd (16.16 and 2.30 fixed point).
_MATRIX = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)
_LANGUAGE_UND = ((ord("u") - 0x60) << 10) | ((ord("n") - 0x60) << 5) | (ord("d") - 0x60)

# Sample entry (codec) boxes per codec: (entry type, configuration box type, ftyp brand).
_SAMPLE_ENTRIES: dict[str, tuple[bytes, bytes, bytes]] = {
    "h264": (b"avc1", b"avcC", b"avc1"),
    "h265": (b"hvc1", b"hvcC", b"hvc1"),
    "vp9": (b"vp09", b"vpcC", b"vp09"),
    "vp8": (b"vp08", b"vpcC", b"vp08"),
    "av1": (b"av01", b"av1C", b"av01"),
    "opus": (b"Opus", b"dOps", b"Opus"),
}
_VPCC_BODY_WITHOUT_HEADER = 8
"""A vpcC body without codec initialization data and without its FullBox header."""

STYP = b"\x00\x00\x00\x18styp" + b"msdh" + b"\x00\x00\x00\x00" + b"msdh" + b"dash"
"""Media segment type: a DASH media segment (ISO/IEC 23009-1 §6.3.4.2)."""


def box(kind: bytes, *payload: bytes) -> bytes:
    """A box of type `kind` around the concatenated payload (64-bit size when needed)."""
    size = 8 + sum(len(part) for part in payload)
    if size > 0xFFFFFFFF:
        return b"".join((struct.pack(">I4sQ", 1, kind, size + 8), *payload))
    return b"".join((struct.pack(">I4s", size, kind), *payload))


def full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags), *payload)


def init_segment(config: TrackConfig, track_id: int) -> bytes:
    """`ftyp` + `moov` describing one track.

    `config.config_record` is the payload of the codec configuration box (everything after
    its 8-byte box header). For `vpcC`, a FullBox, the 4-byte version/flags word may be
    included (12 bytes) or left out (8 bytes); version 1 is written when it is left out.
    H264/H265 use the sample entry named by the codecs string's prefix (`avc1`/`avc3`,
    `hvc1`/`hev1`), so the MPD and the file always agree.
    """
    try:
        entry_type, config_type, brand = _SAMPLE_ENTRIES[config.codec]
    except KeyError:
        raise ValueError(f"no MP4 sample entry for codec {config.codec!r}") from None
    prefix = config.codecs[:4].encode("ascii", "replace")
    if config.codec == "h264" and prefix in (b"avc1", b"avc3"):
        entry_type = prefix
    elif config.codec == "h265" and prefix in (b"hvc1", b"hev1"):
        entry_type = brand = prefix

    ftyp = box(b"ftyp", b"iso6", b"\x00\x00\x00\x00", b"iso6", b"isom", b"mp41", b"dash", brand)
    record = config.config_record
    if config_type == b"vpcC" and len(record) == _VPCC_BODY_WITHOUT_HEADER:
        record = b"\x01\x00\x00\x00" + record
    config_box = box(config_type, record)

    video = config.kind == "video"
    if video:
        entry = _visual_sample_entry(entry_type, config.width, config.height, config_box)
        media_header = full_box(b"vmhd", 0, 1, b"\x00" * 8)
        handler, handler_name = b"vide", b"VideoHandler\x00"
    else:
        channels = config.channels or (record[1] if config.codec == "opus" and record else 2)
        # Opus in ISOBMFF: samplerate is always 48000 (the decoder's output rate).
        rate = 48000 if config.codec == "opus" else config.sample_rate or config.timescale
        entry = _audio_sample_entry(entry_type, channels, rate, config_box)
        media_header = full_box(b"smhd", 0, 0, b"\x00" * 4)
        handler, handler_name = b"soun", b"SoundHandler\x00"

    stbl = box(
        b"stbl",
        full_box(b"stsd", 0, 0, struct.pack(">I", 1), entry),
        full_box(b"stts", 0, 0, b"\x00" * 4),
        full_box(b"stsc", 0, 0, b"\x00" * 4),
        full_box(b"stsz", 0, 0, b"\x00" * 8),
        full_box(b"stco", 0, 0, b"\x00" * 4),
    )
    dinf = box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1)))
    minf = box(b"minf", media_header, dinf, stbl)
    mdhd = full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, config.timescale, 0,
                                               _LANGUAGE_UND, 0))
    hdlr = full_box(b"hdlr", 0, 0, struct.pack(">I4s12x", 0, handler), handler_name)
    mdia = box(b"mdia", mdhd, hdlr, minf)
    tkhd = full_box(
        b"tkhd", 0, 0x000003,  # track enabled, in movie
        struct.pack(">III4xI8xhhh2x", 0, 0, track_id, 0, 0, 0, 0 if video else 0x0100),
        _MATRIX,
        struct.pack(">II", config.width << 16 if video else 0, config.height << 16 if video else 0),
    )
    trak = box(b"trak", tkhd, mdia)
    mvhd = full_box(
        b"mvhd", 0, 0,
        struct.pack(">IIIIIh10x", 0, 0, 1000, 0, 0x00010000, 0x0100),
        _MATRIX,
        b"\x00" * 24,
        struct.pack(">I", track_id + 1),
    )
    trex = full_box(b"trex", 0, 0, struct.pack(">IIIII", track_id, 1, 0, 0, 0))
    moov = box(b"moov", mvhd, trak, box(b"mvex", trex))
    return ftyp + moov


def _visual_sample_entry(kind: bytes, width: int, height: int, config_box: bytes) -> bytes:
    name = b"\x0aVPC Coding" if kind in (b"vp08", b"vp09") else b""
    return box(
        kind,
        b"\x00" * 6, struct.pack(">H", 1),  # reserved, data_reference_index
        b"\x00" * 16,  # pre_defined, reserved, pre_defined[3]
        struct.pack(">HHIII", width, height, 0x00480000, 0x00480000, 0),  # 72 dpi
        struct.pack(">H", 1),  # frame_count
        name.ljust(32, b"\x00"),  # compressorname
        struct.pack(">Hh", 0x0018, -1),  # depth, pre_defined
        config_box,
    )


def _audio_sample_entry(kind: bytes, channels: int, sample_rate: int, config_box: bytes) -> bytes:
    return box(
        kind,
        b"\x00" * 6, struct.pack(">H", 1),  # reserved, data_reference_index
        b"\x00" * 8,  # reserved
        struct.pack(">HHHHI", channels, 16, 0, 0, (sample_rate & 0xFFFF) << 16),
        config_box,
    )


def media_segment(sequence: int, track_id: int, base_decode_time: int,
                  samples: list[Sample]) -> bytes:
    """`styp` + `moof` + `mdat` holding `samples` (in decode order) of one track.

    `sequence` is the fragment's sequence number (1-based, increasing per track);
    `base_decode_time` is the first sample's decode time in the track's timescale.
    """
    count = len(samples)
    trun_size = 20 + 12 * count
    traf_size = 8 + 16 + 20 + trun_size
    moof_size = 8 + 16 + traf_size
    payload_size = 0
    entries: list[int] = []
    for data, duration, sync in samples:
        size = len(data)
        payload_size += size
        entries += (duration, size, SYNC_SAMPLE_FLAGS if sync else NON_SYNC_SAMPLE_FLAGS)
    mdat_header = (struct.pack(">I4s", 8 + payload_size, b"mdat") if payload_size < 0xFFFFFFF8
                   else struct.pack(">I4sQ", 1, b"mdat", 16 + payload_size))
    moof_head = struct.pack(
        ">I4s" "I4sII" "I4s" "I4sII" "I4sIQ" "I4sIIi",
        moof_size, b"moof",
        16, b"mfhd", 0, sequence,
        traf_size, b"traf",
        16, b"tfhd", TFHD_DEFAULT_BASE_IS_MOOF, track_id,
        20, b"tfdt", 0x01000000, base_decode_time,
        trun_size, b"trun", TRUN_FLAGS, count, moof_size + len(mdat_header),
    )
    return b"".join((STYP, moof_head, struct.pack(f">{3 * count}I", *entries), mdat_header,
                     *[sample[0] for sample in samples]))
