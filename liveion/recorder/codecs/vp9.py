"""VP9 RTP depacketizer (RFC 9628), recording the base spatial layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from liveion.recorder.codecs.bits import BitReader, BitstreamError
from liveion.recorder.codecs.video import VideoDepacketizer
from liveion.recorder.codecs.vpcc import (
    CHROMA_420_COLOCATED,
    CHROMA_422,
    CHROMA_444,
    UNSPECIFIED,
    vp9_level,
    vpcc_record,
)
from liveion.recorder.media import Frame, TrackConfig

__all__ = ["VP9Depacketizer", "Vp9KeyframeInfo", "parse_vp9_descriptor", "parse_vp9_keyframe"]

_I: Final = 0x80
_P: Final = 0x40
_L: Final = 0x20
_F: Final = 0x10
_B: Final = 0x08
_E: Final = 0x04
_V: Final = 0x02
_SYNC_CODE: Final = 0x498342
_CS_RGB: Final = 7
# VP9 color_space -> ISO/IEC 23091-2 matrix coefficients (unknown, BT.601, BT.709,
# SMPTE 170M, SMPTE 240M, BT.2020 NCL, reserved, sRGB/identity).
_MATRIX: Final = (UNSPECIFIED, 5, 1, 6, 7, 9, UNSPECIFIED, 0)


def parse_vp9_descriptor(payload: bytes) -> tuple[int, int]:
    """(payload descriptor length, spatial layer id) of a VP9 RTP payload."""
    n = len(payload)
    if n < 1:
        raise BitstreamError("empty payload")
    first = payload[0]
    pos = 1
    if first & _I:  # PictureID, 7 or 15 bits (M)
        if pos >= n:
            raise BitstreamError("descriptor truncated")
        pos += 2 if payload[pos] & 0x80 else 1
    spatial_id = 0
    if first & _L:  # TID|U|SID|D, then TL0PICIDX in non-flexible mode
        if pos >= n:
            raise BitstreamError("descriptor truncated")
        spatial_id = (payload[pos] >> 1) & 0x07
        pos += 1 if first & _F else 2
    if first & _F and first & _P:  # up to three P_DIFF bytes, N marks "another follows"
        for _ in range(3):
            if pos >= n:
                raise BitstreamError("descriptor truncated")
            more = payload[pos] & 0x01
            pos += 1
            if not more:
                break
    if first & _V:  # scalability structure
        if pos >= n:
            raise BitstreamError("descriptor truncated")
        ss = payload[pos]
        pos += 1
        if ss & 0x10:  # Y: a width and height per spatial layer
            pos += 4 * ((ss >> 5) + 1)
        if ss & 0x08:  # G: picture group description
            if pos >= n:
                raise BitstreamError("descriptor truncated")
            groups = payload[pos]
            pos += 1
            for _ in range(groups):
                if pos >= n:
                    raise BitstreamError("descriptor truncated")
                pos += 1 + ((payload[pos] >> 2) & 0x03)
    if pos > n:
        raise BitstreamError("descriptor truncated")
    return pos, spatial_id


@dataclass(frozen=True, slots=True)
class Vp9KeyframeInfo:
    """The fields of a key frame's uncompressed header that describe the stream."""

    profile: int
    bit_depth: int
    color_space: int
    full_range: bool
    subsampling_x: bool
    subsampling_y: bool
    width: int
    height: int


def parse_vp9_keyframe(frame: bytes) -> Vp9KeyframeInfo | None:
    """The uncompressed header of the (first) frame, if it is a key frame; else None.
    Raises BitstreamError when the header is malformed."""
    r = BitReader(frame[:16])
    if r.u(2) != 2:
        raise BitstreamError("bad frame marker")
    profile = r.u(1)
    profile |= r.u(1) << 1
    if profile == 3:
        r.skip(1)
    if r.flag():  # show_existing_frame
        return None
    if r.u(1):  # frame_type: 0 = KEY_FRAME
        return None
    r.skip(2)  # show_frame, error_resilient_mode
    if r.u(24) != _SYNC_CODE:
        raise BitstreamError("bad sync code")
    bit_depth = 8
    if profile >= 2:
        bit_depth = 12 if r.flag() else 10
    color_space = r.u(3)
    if color_space != _CS_RGB:
        full_range = r.flag()
        if profile in (1, 3):
            ss_x, ss_y = r.flag(), r.flag()
            r.skip(1)
        else:
            ss_x = ss_y = True
    else:
        full_range = True
        ss_x = ss_y = False
        if profile in (1, 3):
            r.skip(1)
    width = r.u(16) + 1
    height = r.u(16) + 1
    return Vp9KeyframeInfo(profile, bit_depth, color_space, full_range, ss_x, ss_y,
                           width, height)


class VP9Depacketizer(VideoDepacketizer):
    """RTP payloads in, VP9 frames of spatial layer 0 out.

    With spatial scalability (several layers per timestamp) only the base layer is kept:
    it never depends on the upper layers, so it always decodes on its own, while a
    "highest complete layer" choice would switch sizes and need the lower layers' frames
    in a superframe. Temporal layers are all kept (they are simply frames). Frames may be
    superframes, as the encoder produced them.
    """

    __slots__ = ("_config", "_timescale")

    def __init__(self, clock_rate: int = 90000, reorder_depth: int = 3) -> None:
        super().__init__(reorder_depth)
        self._timescale = clock_rate
        self._config: TrackConfig | None = None

    @property
    def config(self) -> TrackConfig | None:
        return self._config

    def _starts_frame(self, payload: bytes) -> bool:
        if not payload or not payload[0] & _B:
            return False
        try:
            return parse_vp9_descriptor(payload)[1] == 0
        except BitstreamError:
            return False

    def _build(self, payloads: list[bytes], timestamp: int) -> Frame | None:
        parts: list[bytes] = []
        first = last = 0
        for p in payloads:
            offset, spatial_id = parse_vp9_descriptor(p)
            if spatial_id:
                continue
            if not parts:
                first = p[0]
            last = p[0]
            parts.append(p[offset:])
        if not parts:
            return None  # only upper spatial layers at this timestamp
        if not first & _B or not last & _E:
            raise BitstreamError("base layer frame incomplete")
        data = b"".join(parts)
        if not data:
            raise BitstreamError("empty frame")
        info = None if first & _P else parse_vp9_keyframe(data)
        if info is not None:
            self._update_config(info)
        return Frame(data, timestamp, info is not None)

    def _update_config(self, info: Vp9KeyframeInfo) -> None:
        if info.subsampling_x:
            chroma = CHROMA_420_COLOCATED if info.subsampling_y else CHROMA_422
        else:
            chroma = CHROMA_444
        level = vp9_level(info.width, info.height)
        config = TrackConfig(
            kind="video",
            codec="vp9",
            codecs=f"vp09.{info.profile:02d}.{level:02d}.{info.bit_depth:02d}",
            timescale=self._timescale,
            config_record=vpcc_record(info.profile, level, info.bit_depth, chroma,
                                      info.full_range,
                                      matrix_coefficients=_MATRIX[info.color_space]),
            width=info.width,
            height=info.height,
        )
        if config != self._config:
            self._config = config
