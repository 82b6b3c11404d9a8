"""AV1 RTP depacketizer (AOMedia "RTP Payload Format for AV1") and the av1C record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from liveion.recorder.codecs.bits import BitReader, BitstreamError, leb128_decode, leb128_encode
from liveion.recorder.codecs.video import VideoDepacketizer
from liveion.recorder.media import Frame, TrackConfig

__all__ = ["AV1Depacketizer", "Av1SequenceInfo", "av1c_record", "parse_sequence_header"]

_OBU_SEQUENCE_HEADER: Final = 1
_OBU_TEMPORAL_DELIMITER: Final = 2
_OBU_FRAME_HEADER: Final = 3
_OBU_FRAME: Final = 6
_OBU_TILE_LIST: Final = 8
_OBU_PADDING: Final = 15
_DROPPED_OBUS: Final = frozenset((_OBU_TEMPORAL_DELIMITER, _OBU_TILE_LIST, _OBU_PADDING))


@dataclass(frozen=True, slots=True)
class Av1SequenceInfo:
    """The sequence header fields that av1C and the codecs string carry."""

    seq_profile: int
    seq_level_idx_0: int
    seq_tier_0: int
    reduced_still_picture_header: bool
    bit_depth: int
    monochrome: bool
    subsampling_x: bool
    subsampling_y: bool
    chroma_sample_position: int
    width: int
    height: int

    @property
    def codecs(self) -> str:
        tier = "H" if self.seq_tier_0 else "M"
        return f"av01.{self.seq_profile}.{self.seq_level_idx_0:02d}{tier}.{self.bit_depth:02d}"


def parse_sequence_header(payload: bytes) -> Av1SequenceInfo:
    """Parse a sequence header OBU's payload (after the OBU header and size)."""
    r = BitReader(payload[:256])
    profile = r.u(3)
    if profile > 2:
        raise BitstreamError("bad seq_profile")
    r.skip(1)  # still_picture
    reduced = r.flag()
    if reduced:
        level, tier = r.u(5), 0
    else:
        decoder_model_info = False
        buffer_delay_length = 0
        if r.flag():  # timing_info_present_flag
            r.skip(64)  # num_units_in_display_tick, time_scale
            if r.flag():  # equal_picture_interval
                r.uvlc()
            decoder_model_info = r.flag()
            if decoder_model_info:
                buffer_delay_length = r.u(5) + 1
                r.skip(32 + 5 + 5)
        initial_display_delay = r.flag()
        level = tier = 0
        for i in range(r.u(5) + 1):  # operating points
            r.skip(12)  # operating_point_idc
            op_level = r.u(5)
            op_tier = r.u(1) if op_level > 7 else 0
            if i == 0:
                level, tier = op_level, op_tier
            if decoder_model_info and r.flag():
                r.skip(2 * buffer_delay_length + 1)
            if initial_display_delay and r.flag():
                r.skip(4)
    width_bits = r.u(4) + 1
    height_bits = r.u(4) + 1
    width = r.u(width_bits) + 1
    height = r.u(height_bits) + 1
    if not reduced and r.flag():  # frame_id_numbers_present_flag
        r.skip(7)
    r.skip(3)  # use_128x128_superblock, enable_filter_intra, enable_intra_edge_filter
    if not reduced:
        r.skip(4)  # interintra, masked compound, warped motion, dual filter
        order_hint = r.flag()
        if order_hint:
            r.skip(2)  # enable_jnt_comp, enable_ref_frame_mvs
        force_screen_content_tools = 2 if r.flag() else r.u(1)
        if force_screen_content_tools > 0 and not r.flag():
            r.skip(1)  # seq_force_integer_mv
        if order_hint:
            r.skip(3)
    r.skip(3)  # enable_superres, enable_cdef, enable_restoration
    # color_config()
    high_bitdepth = r.flag()
    if profile == 2 and high_bitdepth:
        bit_depth = 12 if r.flag() else 10
    else:
        bit_depth = 10 if high_bitdepth else 8
    mono = False if profile == 1 else r.flag()
    primaries = transfer = matrix = 2
    if r.flag():  # color_description_present_flag
        primaries, transfer, matrix = r.u(8), r.u(8), r.u(8)
    ss_x = ss_y = True
    position = 0
    if mono:
        r.skip(1)  # color_range
    elif primaries == 1 and transfer == 13 and matrix == 0:  # sRGB
        ss_x = ss_y = False
    else:
        r.skip(1)  # color_range
        if profile == 1:
            ss_x = ss_y = False
        elif profile == 2:
            if bit_depth == 12:
                ss_x = r.flag()
                ss_y = r.flag() if ss_x else False
            else:
                ss_y = False
        if ss_x and ss_y:
            position = r.u(2)
    return Av1SequenceInfo(profile, level, tier, reduced, bit_depth, mono, ss_x, ss_y,
                           position, width, height)


def av1c_record(info: Av1SequenceInfo, sequence_header_obu: bytes) -> bytes:
    """AV1CodecConfigurationRecord (AV1 ISOBMFF binding 2.3) with the sequence header
    OBU (with its size field) as configOBUs."""
    return bytes((
        0x81,  # marker, version 1
        (info.seq_profile << 5) | info.seq_level_idx_0,
        (info.seq_tier_0 << 7) | ((info.bit_depth > 8) << 6) | ((info.bit_depth == 12) << 5)
        | (info.monochrome << 4) | (info.subsampling_x << 3) | (info.subsampling_y << 2)
        | info.chroma_sample_position,
        0,  # no initial_presentation_delay
    )) + sequence_header_obu


def _is_key_frame_header(payload: bytes, reduced_still_picture_header: bool) -> bool:
    """Whether a frame header OBU's payload starts a shown key frame."""
    if reduced_still_picture_header:
        return True
    if not payload:
        raise BitstreamError("empty frame header")
    first = payload[0]
    # show_existing_frame(1) frame_type(2) show_frame(1)
    return not first & 0x80 and (first >> 5) & 0x03 == 0 and bool(first & 0x10)


def _elements(payload: bytes) -> tuple[int, list[bytes]]:
    """(aggregation header, OBU elements) of one RTP payload."""
    if not payload:
        raise BitstreamError("empty payload")
    header = payload[0]
    count = (header >> 4) & 0x03  # W: 0 = every element has a length field
    elements: list[bytes] = []
    pos, end = 1, len(payload)
    while pos < end:
        if count and len(elements) == count - 1:
            elements.append(payload[pos:])  # the last of W elements has no length
            break
        size, pos = leb128_decode(payload, pos)
        if pos + size > end:
            raise BitstreamError("OBU element truncated")
        elements.append(payload[pos:pos + size])
        pos += size
    return header, elements


class AV1Depacketizer(VideoDepacketizer):
    """RTP payloads in, temporal units out: OBUs with size fields, temporal delimiters
    (and tile lists, padding) left out. The av1C record comes from the latest sequence
    header."""

    __slots__ = ("_config", "_seq_info", "_seq_obu", "_timescale")

    def __init__(self, clock_rate: int = 90000, reorder_depth: int = 3) -> None:
        super().__init__(reorder_depth)
        self._timescale = clock_rate
        self._config: TrackConfig | None = None
        self._seq_obu: bytes | None = None
        self._seq_info: Av1SequenceInfo | None = None

    @property
    def config(self) -> TrackConfig | None:
        return self._config

    def _starts_frame(self, payload: bytes) -> bool:
        # N (a new coded video sequence starts here), or an unfragmented first OBU that
        # only opens a temporal unit: a sequence header or a temporal delimiter.
        if len(payload) < 2:
            return False
        header = payload[0]
        if header & 0x08:
            return True
        if header & 0x80:
            return False
        if header & 0x30 == 0x10:
            obu_header = payload[1]
        else:
            try:
                size, pos = leb128_decode(payload, 1)
            except BitstreamError:
                return False
            if size == 0 or pos >= len(payload):
                return False
            obu_header = payload[pos]
        return (obu_header >> 3) & 0x0F in (_OBU_SEQUENCE_HEADER, _OBU_TEMPORAL_DELIMITER)

    def _build(self, payloads: list[bytes], timestamp: int) -> Frame | None:
        obus: list[bytes] = []
        fragments: list[bytes] | None = None
        new_sequence = bool(payloads[0][:1] and payloads[0][0] & 0x08)
        if payloads[0][:1] and payloads[0][0] & 0x80:
            raise BitstreamError("temporal unit starts with a continuation")
        for p in payloads:
            header, elements = _elements(p)
            if not elements:
                raise BitstreamError("packet without OBU elements")
            if header & 0x80:  # Z: the first element continues the previous packet's last
                if fragments is None:
                    raise BitstreamError("continuation without a start")
                fragments.append(elements[0])
                elements = elements[1:]
                if elements or not header & 0x40:
                    obus.append(b"".join(fragments))
                    fragments = None
            elif fragments is not None:
                raise BitstreamError("fragmented OBU not continued")
            if elements:
                if header & 0x40:  # Y: the last element continues in the next packet
                    fragments = [elements.pop()]
                obus.extend(elements)
            elif header & 0x40 and fragments is None:
                raise BitstreamError("continuation flag without an element")
        if fragments is not None:
            raise BitstreamError("temporal unit ends inside an OBU")
        return self._temporal_unit(obus, timestamp, new_sequence)

    def _temporal_unit(self, obus: list[bytes], timestamp: int,
                       new_sequence: bool) -> Frame | None:
        parts: list[bytes] = []
        has_sequence_header = False
        first_frame_key: bool | None = None
        for obu in obus:
            if not obu:
                raise BitstreamError("empty OBU")
            header = obu[0]
            if header & 0x80:
                raise BitstreamError("forbidden bit set")
            obu_type = (header >> 3) & 0x0F
            header_size = 2 if header & 0x04 else 1
            if header_size > len(obu):
                raise BitstreamError("OBU header truncated")
            if header & 0x02:  # the sender kept the size field
                size, start = leb128_decode(obu, header_size)
                if start + size > len(obu):
                    raise BitstreamError("OBU truncated")
                body = obu[start:start + size]
            else:
                body = obu[header_size:]
            if obu_type in _DROPPED_OBUS:
                continue
            sized = b"".join((bytes((header | 0x02,)), obu[1:header_size],
                              leb128_encode(len(body)), body))
            if obu_type == _OBU_SEQUENCE_HEADER:
                has_sequence_header = True
                self._remember_sequence_header(sized, body)
            elif obu_type in (_OBU_FRAME_HEADER, _OBU_FRAME) and first_frame_key is None:
                seq = self._seq_info
                if seq is None:
                    raise BitstreamError("frame before any sequence header")
                first_frame_key = _is_key_frame_header(body, seq.reduced_still_picture_header)
            parts.append(sized)
        if first_frame_key is None:
            return None  # no frame in this temporal unit (e.g. metadata only)
        keyframe = first_frame_key and (has_sequence_header or new_sequence)
        return Frame(b"".join(parts), timestamp, keyframe)

    def _remember_sequence_header(self, obu: bytes, body: bytes) -> None:
        if obu == self._seq_obu:
            return
        info = parse_sequence_header(body)
        self._seq_obu = obu
        self._seq_info = info
        self._config = TrackConfig(
            kind="video",
            codec="av1",
            codecs=info.codecs,
            timescale=self._timescale,
            config_record=av1c_record(info, obu),
            width=info.width,
            height=info.height,
        )
