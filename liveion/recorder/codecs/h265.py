"""H.265 RTP depacketizer (RFC 7798: single NAL unit, AP, FU) and the hvcC record."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from liveion.recorder.codecs.bits import BitReader, BitstreamError, unescape_rbsp
from liveion.recorder.codecs.video import VideoDepacketizer
from liveion.recorder.media import Frame, TrackConfig

__all__ = ["H265Depacketizer", "HevcSpsInfo", "hvcc_record", "parse_hevc_sps"]

_VPS: Final = 32
_SPS: Final = 33
_PPS: Final = 34
_AUD: Final = 35
_AP: Final = 48
_FU: Final = 49
_IRAP: Final = range(16, 22)  # BLA, IDR, CRA (21 is reserved IRAP)
_PARAMETER_SETS: Final = (_VPS, _SPS, _PPS)


@dataclass(frozen=True, slots=True)
class HevcSpsInfo:
    """What the recorder needs from an H.265 SPS."""

    sps_id: int
    general_ptl: bytes
    """The 12 bytes of general_profile_tier_level: space/tier/idc, 32 compatibility flags,
    48 constraint flags, level_idc (the layout hvcC copies verbatim)."""
    max_sub_layers: int
    temporal_id_nesting: bool
    chroma_format_idc: int
    bit_depth_luma: int
    bit_depth_chroma: int
    width: int
    height: int

    @property
    def codecs(self) -> str:
        """RFC 6381 / ISO/IEC 14496-15 Annex E codecs string for an ``hvc1`` entry."""
        ptl = self.general_ptl
        space = "" if not ptl[0] >> 6 else "ABC"[(ptl[0] >> 6) - 1]
        compat = int.from_bytes(ptl[1:5], "big")
        reversed_compat = int(f"{compat:032b}"[::-1], 2)
        tier = "H" if ptl[0] & 0x20 else "L"
        constraints = ptl[5:11].rstrip(b"\x00")
        parts = [f"hvc1.{space}{ptl[0] & 0x1F}", f"{reversed_compat:X}", f"{tier}{ptl[11]}"]
        parts += [f"{b:02X}" for b in constraints]
        return ".".join(parts)


def parse_hevc_sps(nal: bytes) -> HevcSpsInfo:
    """Parse an H.265 SPS NAL unit (with its 2-byte header). Raises BitstreamError."""
    if len(nal) < 15 or (nal[0] >> 1) & 0x3F != _SPS:
        raise BitstreamError("not an SPS")
    rbsp = unescape_rbsp(nal[2:])
    r = BitReader(rbsp[:200])
    r.skip(4)  # sps_video_parameter_set_id
    sub_layers_minus1 = r.u(3)
    nesting = r.flag()
    general_ptl = rbsp[1:13]
    r.skip(96)
    profile_present = []
    level_present = []
    for _ in range(sub_layers_minus1):
        profile_present.append(r.flag())
        level_present.append(r.flag())
    if sub_layers_minus1:
        r.skip(2 * (8 - sub_layers_minus1))  # reserved_zero_2bits
    for i in range(sub_layers_minus1):
        if profile_present[i]:
            r.skip(88)
        if level_present[i]:
            r.skip(8)
    sps_id = r.ue()
    if sps_id > 15:
        raise BitstreamError("sps id out of range")
    chroma_format_idc = r.ue()
    if chroma_format_idc > 3:
        raise BitstreamError("bad chroma_format_idc")
    separate_planes = r.flag() if chroma_format_idc == 3 else False
    width = r.ue()
    height = r.ue()
    if r.flag():  # conformance_window_flag
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        chroma_array_type = 0 if separate_planes else chroma_format_idc
        sub_w = 2 if chroma_array_type in (1, 2) else 1
        sub_h = 2 if chroma_array_type == 1 else 1
        width -= sub_w * (left + right)
        height -= sub_h * (top + bottom)
    depth_luma = r.ue() + 8
    depth_chroma = r.ue() + 8
    if width <= 0 or height <= 0 or depth_luma > 16 or depth_chroma > 16:
        raise BitstreamError("bad picture size or bit depth")
    return HevcSpsInfo(sps_id, general_ptl, sub_layers_minus1 + 1, nesting, chroma_format_idc,
                       depth_luma, depth_chroma, width, height)


def hvcc_record(vps: list[bytes], sps: list[bytes], pps: list[bytes],
                info: HevcSpsInfo) -> bytes:
    """HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1) for an ``hvc1`` entry:
    4-byte NAL lengths, VPS/SPS/PPS arrays complete (none in the samples)."""
    out = bytearray((1,))
    out += info.general_ptl
    out += (0xF000).to_bytes(2, "big")  # min_spatial_segmentation_idc 0: not stated
    out += bytes((0xFC,  # parallelismType 0: unknown
                  0xFC | info.chroma_format_idc,
                  0xF8 | (info.bit_depth_luma - 8),
                  0xF8 | (info.bit_depth_chroma - 8)))
    out += (0).to_bytes(2, "big")  # avgFrameRate: not stated
    out.append((info.max_sub_layers << 3) | (info.temporal_id_nesting << 2) | 3)
    out.append(3)
    for nal_type, units in ((_VPS, vps), (_SPS, sps), (_PPS, pps)):
        out.append(0x80 | nal_type)  # array_completeness = 1
        out += len(units).to_bytes(2, "big")
        for unit in units:
            out += len(unit).to_bytes(2, "big") + unit
    return bytes(out)


def _nal_units(payloads: list[bytes], donl: bool) -> list[bytes]:
    """The NAL units of one access unit's RTP payloads. Raises ValueError when malformed.

    ``donl``: sprop-max-don-diff > 0, so DONL/DOND fields precede the units."""
    nals: list[bytes] = []
    fragments: list[bytes] | None = None
    for p in payloads:
        if len(p) < 3:
            raise BitstreamError("payload too short")
        nal_type = (p[0] >> 1) & 0x3F
        if nal_type == _FU:
            fu_header = p[2]
            if fu_header & 0x80:  # S
                if fragments is not None:
                    raise BitstreamError("FU restarted before its end")
                header = bytes(((p[0] & 0x81) | ((fu_header & 0x3F) << 1), p[1]))
                fragments = [header, p[5:] if donl else p[3:]]
            elif fragments is None:
                raise BitstreamError("FU continuation without a start")
            else:
                fragments.append(p[3:])
            if fu_header & 0x40:  # E
                nals.append(b"".join(fragments))
                fragments = None
            continue
        if fragments is not None:
            raise BitstreamError("FU not ended")
        if nal_type == _AP:
            pos, end, first = 2, len(p), True
            while pos < end:
                if donl:
                    pos += 2 if first else 1  # DONL, then DOND
                first = False
                size = int.from_bytes(p[pos:pos + 2], "big")
                pos += 2
                if size < 2 or pos + size > end:
                    raise BitstreamError("AP unit truncated")
                nals.append(p[pos:pos + size])
                pos += size
        elif nal_type < 48:
            nals.append(p[:2] + p[4:] if donl else p)
        else:
            raise BitstreamError(f"unsupported payload type {nal_type}")  # PACI, reserved
    if fragments is not None:
        raise BitstreamError("FU not ended")
    return nals


class H265Depacketizer(VideoDepacketizer):
    """RTP payloads in, access units of 4-byte-length-prefixed NAL units out.

    VPS/SPS/PPS go to the hvcC record and are left out of the samples, as an ``hvc1``
    entry with complete arrays requires; access unit delimiters are dropped.
    """

    __slots__ = ("_config", "_dirty", "_donl", "_last_sps", "_pps", "_sps", "_timescale",
                 "_vps")

    def __init__(self, clock_rate: int = 90000, fmtp: Mapping[str, str] | None = None,
                 reorder_depth: int = 3) -> None:
        super().__init__(reorder_depth)
        self._timescale = clock_rate
        fmtp = fmtp or {}
        try:
            self._donl = int(fmtp.get("sprop-max-don-diff", "0")) > 0
        except ValueError:
            self._donl = False
        self._vps: dict[int, bytes] = {}
        self._sps: dict[int, bytes] = {}
        self._pps: dict[int, bytes] = {}
        self._last_sps: HevcSpsInfo | None = None
        self._config: TrackConfig | None = None
        self._dirty = False
        for key in ("sprop-vps", "sprop-sps", "sprop-pps"):
            for part in fmtp.get(key, "").split(","):
                try:
                    nal = base64.b64decode(part.strip(), validate=True)
                except (binascii.Error, ValueError):
                    continue
                if len(nal) > 2:
                    self._remember(nal)

    @property
    def config(self) -> TrackConfig | None:
        if self._dirty:
            self._dirty = False
            info = self._last_sps
            if info is not None and self._vps and self._pps:
                self._config = TrackConfig(
                    kind="video",
                    codec="h265",
                    codecs=info.codecs,
                    timescale=self._timescale,
                    config_record=hvcc_record(list(self._vps.values()),
                                              list(self._sps.values()),
                                              list(self._pps.values()), info),
                    width=info.width,
                    height=info.height,
                )
        return self._config

    def _remember(self, nal: bytes) -> None:
        if len(nal) < 3:
            return
        nal_type = (nal[0] >> 1) & 0x3F
        try:
            if nal_type == _VPS:
                key = nal[2] >> 4
                table = self._vps
            elif nal_type == _SPS:
                info = parse_hevc_sps(nal)
                key = info.sps_id
                table = self._sps
                if info != self._last_sps:
                    self._last_sps = info
                    self._dirty = True
            else:
                key = BitReader(unescape_rbsp(nal[2:9])).ue()
                if key > 63:
                    return
                table = self._pps
        except BitstreamError:
            return
        if table.get(key) != nal:
            table[key] = nal
            self._dirty = True

    def _starts_frame(self, payload: bytes) -> bool:
        # Only an AUD or a VPS surely opens an access unit (see H264Depacketizer).
        if len(payload) < 3:
            return False
        nal_type = (payload[0] >> 1) & 0x3F
        if nal_type == _AP:
            offset = 6 if self._donl else 4  # payload header, [DONL], size
            if len(payload) <= offset:
                return False
            nal_type = (payload[offset] >> 1) & 0x3F
        elif nal_type == _FU:
            if not payload[2] & 0x80:  # not the first fragment
                return False
            nal_type = payload[2] & 0x3F
        return nal_type in (_AUD, _VPS)

    def _build(self, payloads: list[bytes], timestamp: int) -> Frame | None:
        parts: list[bytes] = []
        keyframe = has_slice = False
        for nal in _nal_units(payloads, self._donl):
            nal_type = (nal[0] >> 1) & 0x3F
            if nal_type in _PARAMETER_SETS:
                self._remember(nal)
                continue
            if nal_type == _AUD:
                continue
            if nal_type < 32:
                has_slice = True
                keyframe = keyframe or nal_type in _IRAP
            parts.append(len(nal).to_bytes(4, "big"))
            parts.append(nal)
        if not has_slice:
            return None
        if keyframe and self.config is None:
            raise BitstreamError("keyframe without parameter sets")
        return Frame(b"".join(parts), timestamp, keyframe)
