"""H.264 RTP depacketizer (RFC 6184, packetization modes 0 and 1) and the avcC record."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from liveion.recorder.codecs.bits import BitReader, BitstreamError, unescape_rbsp
from liveion.recorder.codecs.video import VideoDepacketizer
from liveion.recorder.media import Frame, TrackConfig

__all__ = ["H264Depacketizer", "SpsInfo", "avcc_record", "parse_sps"]

_NAL_SLICE: Final = 1
_NAL_IDR: Final = 5
_NAL_SPS: Final = 7
_NAL_PPS: Final = 8
_NAL_AUD: Final = 9
_STAP_A: Final = 24
_FU_A: Final = 28
# Profiles whose SPS carries chroma_format_idc and bit depths (and so the avcC trailer).
_HIGH_PROFILES: Final = frozenset((100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135))


@dataclass(frozen=True, slots=True)
class SpsInfo:
    """What the recorder needs from a sequence parameter set."""

    sps_id: int
    profile_idc: int
    constraint_flags: int
    level_idc: int
    chroma_format_idc: int
    bit_depth_luma: int
    bit_depth_chroma: int
    width: int
    height: int


def _skip_scaling_list(r: BitReader, size: int) -> None:
    last = next_scale = 8
    for _ in range(size):
        if next_scale:
            next_scale = (last + r.se()) & 0xFF
        last = next_scale or last


def parse_sps(nal: bytes) -> SpsInfo:
    """Parse an SPS NAL unit (with its 1-byte header). Raises BitstreamError."""
    if len(nal) < 4 or nal[0] & 0x1F != _NAL_SPS:
        raise BitstreamError("not an SPS")
    r = BitReader(unescape_rbsp(nal[1:]))
    profile = r.u(8)
    constraints = r.u(8)
    level = r.u(8)
    sps_id = r.ue()
    if sps_id > 31:
        raise BitstreamError("sps id out of range")
    chroma_format_idc, separate_planes, depth_luma, depth_chroma = 1, False, 8, 8
    if profile in _HIGH_PROFILES:
        chroma_format_idc = r.ue()
        if chroma_format_idc > 3:
            raise BitstreamError("bad chroma_format_idc")
        if chroma_format_idc == 3:
            separate_planes = r.flag()
        depth_luma = r.ue() + 8
        depth_chroma = r.ue() + 8
        r.skip(1)  # qpprime_y_zero_transform_bypass_flag
        if r.flag():  # seq_scaling_matrix_present_flag
            for i in range(12 if chroma_format_idc == 3 else 8):
                if r.flag():
                    _skip_scaling_list(r, 16 if i < 6 else 64)
    r.ue()  # log2_max_frame_num_minus4
    poc_type = r.ue()
    if poc_type == 0:
        r.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        r.skip(1)  # delta_pic_order_always_zero_flag
        r.se()  # offset_for_non_ref_pic
        r.se()  # offset_for_top_to_bottom_field
        cycle = r.ue()
        if cycle > 255:
            raise BitstreamError("num_ref_frames_in_pic_order_cnt_cycle out of range")
        for _ in range(cycle):
            r.se()
    elif poc_type != 2:
        raise BitstreamError("bad pic_order_cnt_type")
    r.ue()  # max_num_ref_frames
    r.skip(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = r.ue() + 1
    height_map_units = r.ue() + 1
    frame_mbs_only = r.flag()
    if not frame_mbs_only:
        r.skip(1)  # mb_adaptive_frame_field_flag
    r.skip(1)  # direct_8x8_inference_flag
    crop_left = crop_right = crop_top = crop_bottom = 0
    if r.flag():  # frame_cropping_flag
        crop_left, crop_right, crop_top, crop_bottom = r.ue(), r.ue(), r.ue(), r.ue()
    field_factor = 1 if frame_mbs_only else 2
    chroma_array_type = 0 if separate_planes else chroma_format_idc
    if chroma_array_type == 0:
        crop_x, crop_y = 1, field_factor
    else:
        crop_x = 2 if chroma_array_type in (1, 2) else 1
        crop_y = (2 if chroma_array_type == 1 else 1) * field_factor
    width = width_mbs * 16 - crop_x * (crop_left + crop_right)
    height = field_factor * height_map_units * 16 - crop_y * (crop_top + crop_bottom)
    if width <= 0 or height <= 0:
        raise BitstreamError("cropping leaves no picture")
    return SpsInfo(sps_id, profile, constraints, level, chroma_format_idc,
                   depth_luma, depth_chroma, width, height)


def _pps_id(nal: bytes) -> int:
    pps_id = BitReader(unescape_rbsp(nal[1:8])).ue()
    if pps_id > 255:
        raise BitstreamError("pps id out of range")
    return pps_id


def avcc_record(sps_list: list[bytes], pps_list: list[bytes], info: SpsInfo) -> bytes:
    """AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1), 4-byte NAL lengths."""
    out = bytearray((1, info.profile_idc, info.constraint_flags, info.level_idc,
                     0xFC | 3, 0xE0 | len(sps_list)))
    for sps in sps_list:
        out += len(sps).to_bytes(2, "big") + sps
    out.append(len(pps_list))
    for pps in pps_list:
        out += len(pps).to_bytes(2, "big") + pps
    if info.profile_idc in _HIGH_PROFILES:
        out += bytes((0xFC | info.chroma_format_idc, 0xF8 | (info.bit_depth_luma - 8),
                      0xF8 | (info.bit_depth_chroma - 8), 0))  # no SPS extensions
    return bytes(out)


def _nal_units(payloads: list[bytes]) -> list[bytes]:
    """The NAL units of one access unit's RTP payloads. Raises ValueError when malformed."""
    nals: list[bytes] = []
    fragments: list[bytes] | None = None
    for p in payloads:
        if not p:
            raise BitstreamError("empty payload")
        nal_type = p[0] & 0x1F
        if nal_type == _FU_A:
            if len(p) < 2:
                raise BitstreamError("FU-A header truncated")
            fu_header = p[1]
            if fu_header & 0x80:  # S: rebuild the NAL header from F|NRI and the FU type
                if fragments is not None:
                    raise BitstreamError("FU-A restarted before its end")
                fragments = [bytes(((p[0] & 0xE0) | (fu_header & 0x1F),)), p[2:]]
            elif fragments is None:
                raise BitstreamError("FU-A continuation without a start")
            else:
                fragments.append(p[2:])
            if fu_header & 0x40:  # E
                nals.append(b"".join(fragments))
                fragments = None
            continue
        if fragments is not None:
            raise BitstreamError("FU-A not ended")
        if 1 <= nal_type <= 23:
            nals.append(p)
        elif nal_type == _STAP_A:
            pos, end = 1, len(p)
            while pos < end:
                size = int.from_bytes(p[pos:pos + 2], "big")
                pos += 2
                if size == 0 or pos + size > end:
                    raise BitstreamError("STAP-A unit truncated")
                nals.append(p[pos:pos + size])
                pos += size
        elif nal_type in (0, 30, 31):
            continue  # undefined types: receivers ignore them (RFC 6184 5.2)
        else:
            raise BitstreamError(f"NAL type {nal_type} needs interleaved mode")
    if fragments is not None:
        raise BitstreamError("FU-A not ended")
    return nals


class H264Depacketizer(VideoDepacketizer):
    """RTP payloads in, access units of 4-byte-length-prefixed NAL units out.

    Parameter sets stay in the samples (harmless for ``avc1``) and also feed the avcC
    record; access unit delimiters are dropped. An access unit holding no slice (e.g.
    parameter sets sent on their own timestamp) is remembered but not emitted.
    """

    __slots__ = ("_config", "_dirty", "_last_sps", "_pps", "_sps", "_timescale")

    def __init__(self, clock_rate: int = 90000, fmtp: Mapping[str, str] | None = None,
                 reorder_depth: int = 3) -> None:
        super().__init__(reorder_depth)
        self._timescale = clock_rate
        self._sps: dict[int, bytes] = {}
        self._pps: dict[int, bytes] = {}
        self._last_sps: SpsInfo | None = None
        self._config: TrackConfig | None = None
        self._dirty = False
        sprop = (fmtp or {}).get("sprop-parameter-sets", "")
        for part in sprop.split(","):
            try:
                nal = base64.b64decode(part.strip(), validate=True)
            except (binascii.Error, ValueError):
                continue
            if nal:
                self._remember(nal)

    @property
    def config(self) -> TrackConfig | None:
        if self._dirty:
            self._dirty = False
            info = self._last_sps
            if info is not None and self._pps:
                self._config = TrackConfig(
                    kind="video",
                    codec="h264",
                    codecs=f"avc1.{info.profile_idc:02x}{info.constraint_flags:02x}"
                    f"{info.level_idc:02x}",
                    timescale=self._timescale,
                    config_record=avcc_record(list(self._sps.values()),
                                              list(self._pps.values()), info),
                    width=info.width,
                    height=info.height,
                )
        return self._config

    def _remember(self, nal: bytes) -> None:
        """Keep a parameter set for the avcC record; unparsable ones are ignored."""
        nal_type = nal[0] & 0x1F
        try:
            if nal_type == _NAL_SPS:
                info = parse_sps(nal)
                if self._sps.get(info.sps_id) != nal:
                    self._sps[info.sps_id] = nal
                    self._dirty = True
                if info != self._last_sps:
                    self._last_sps = info
                    self._dirty = True
            elif nal_type == _NAL_PPS and len(nal) > 1:
                pps_id = _pps_id(nal)
                if self._pps.get(pps_id) != nal:
                    self._pps[pps_id] = nal
                    self._dirty = True
        except BitstreamError:
            pass

    def _starts_frame(self, payload: bytes) -> bool:
        # Only an AUD or an SPS surely opens an access unit: a packet after a gap that
        # starts with SEI, PPS or even the first slice may have lost the parameter sets
        # before it, and those may have changed (then the picture would not decode).
        if len(payload) < 2:
            return False
        nal_type = payload[0] & 0x1F
        if nal_type == _STAP_A:
            if len(payload) < 4:
                return False
            nal_type = payload[3] & 0x1F
        elif nal_type == _FU_A:
            if not payload[1] & 0x80:  # not the first fragment
                return False
            nal_type = payload[1] & 0x1F
        return nal_type in (_NAL_AUD, _NAL_SPS)

    def _build(self, payloads: list[bytes], timestamp: int) -> Frame | None:
        parts: list[bytes] = []
        keyframe = has_slice = False
        for nal in _nal_units(payloads):
            nal_type = nal[0] & 0x1F
            if nal_type == _NAL_AUD:
                continue
            if nal_type in (_NAL_SPS, _NAL_PPS):
                self._remember(nal)
            elif nal_type == _NAL_IDR:
                keyframe = has_slice = True
            elif nal_type == _NAL_SLICE or 2 <= nal_type <= 4:
                has_slice = True
            parts.append(len(nal).to_bytes(4, "big"))
            parts.append(nal)
        if not has_slice:
            return None
        if keyframe and self.config is None:
            raise BitstreamError("keyframe without parameter sets")
        return Frame(b"".join(parts), timestamp, keyframe)
