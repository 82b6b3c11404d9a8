"""RTP depacketizers for recording, one module per codec: RTP payloads of one track in,
access units and the track configuration (codec record, codecs string, size) out. Sans-IO.
``liveion.recorder.depacketize.depacketizer_for`` picks one for a negotiated codec."""

from __future__ import annotations

from liveion.recorder.codecs.av1 import AV1Depacketizer
from liveion.recorder.codecs.h264 import H264Depacketizer
from liveion.recorder.codecs.h265 import H265Depacketizer
from liveion.recorder.codecs.opus import OpusDepacketizer
from liveion.recorder.codecs.vp8 import VP8Depacketizer
from liveion.recorder.codecs.vp9 import VP9Depacketizer

__all__ = [
    "AV1Depacketizer",
    "H264Depacketizer",
    "H265Depacketizer",
    "OpusDepacketizer",
    "VP8Depacketizer",
    "VP9Depacketizer",
]
