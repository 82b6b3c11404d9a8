"""VP8 RTP depacketizer (RFC 7741)."""

from __future__ import annotations

from liveion.recorder.codecs.bits import BitstreamError
from liveion.recorder.codecs.video import VideoDepacketizer
from liveion.recorder.codecs.vpcc import CHROMA_420_COLOCATED, vpcc_record
from liveion.recorder.media import Frame, TrackConfig

__all__ = ["VP8Depacketizer", "vp8_descriptor_size"]

_START_CODE = b"\x9d\x01\x2a"


def vp8_descriptor_size(payload: bytes) -> int:
    """Length of the VP8 payload descriptor at the start of an RTP payload."""
    n = len(payload)
    if n < 1:
        raise BitstreamError("empty payload")
    pos = 1
    if payload[0] & 0x80:  # X
        if n < 2:
            raise BitstreamError("descriptor truncated")
        ext = payload[1]
        pos = 2
        if ext & 0x80:  # I: PictureID, 7 or 15 bits (M)
            if pos >= n:
                raise BitstreamError("descriptor truncated")
            pos += 2 if payload[pos] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            pos += 1
        if ext & 0x30:  # T or K: TID|Y|KEYIDX
            pos += 1
    if pos > n:
        raise BitstreamError("descriptor truncated")
    return pos


class VP8Depacketizer(VideoDepacketizer):
    """RTP payloads in, VP8 frames (all partitions, as the encoder wrote them) out.

    The config (``vp08`` codecs string and a vpcC record) comes from the first keyframe
    and changes with the keyframe size."""

    __slots__ = ("_config", "_timescale")

    def __init__(self, clock_rate: int = 90000, reorder_depth: int = 3) -> None:
        super().__init__(reorder_depth)
        self._timescale = clock_rate
        self._config: TrackConfig | None = None

    @property
    def config(self) -> TrackConfig | None:
        return self._config

    def _starts_frame(self, payload: bytes) -> bool:
        return len(payload) > 1 and payload[0] & 0x17 == 0x10  # S=1, PID=0

    def _build(self, payloads: list[bytes], timestamp: int) -> Frame | None:
        if not self._starts_frame(payloads[0]):
            raise BitstreamError("frame does not start with partition 0")
        data = b"".join([p[vp8_descriptor_size(p):] for p in payloads])
        if not data:
            raise BitstreamError("empty frame")
        keyframe = not data[0] & 0x01  # P (inverse key frame flag) of the frame tag
        if keyframe:
            if len(data) < 10 or data[3:6] != _START_CODE:
                raise BitstreamError("key frame without start code")
            width = int.from_bytes(data[6:8], "little") & 0x3FFF  # top 2 bits: scaling
            height = int.from_bytes(data[8:10], "little") & 0x3FFF
            if not width or not height:
                raise BitstreamError("key frame of size zero")
            self._update_config(width, height)
        return Frame(data, timestamp, keyframe)

    def _update_config(self, width: int, height: int) -> None:
        config = self._config
        if config is not None and config.width == width and config.height == height:
            return
        # Profile 0 and level 1.0 as in the binding's VP8 example; VP8 has no bit depth,
        # chroma or colour signalling beyond 8-bit 4:2:0.
        self._config = TrackConfig(
            kind="video",
            codec="vp8",
            codecs="vp08.00.10.08",
            timescale=self._timescale,
            config_record=vpcc_record(0, 10, 8, CHROMA_420_COLOCATED),
            width=width,
            height=height,
        )
