"""What the depacketizers hand to the MP4 writer: access units and track configurations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol


@dataclass(frozen=True, slots=True)
class Frame:
    """One access unit in the sample format its MP4 track stores.

    H264/H265: NAL units each prefixed by a 4-byte big-endian length (no start codes, no
    parameter sets required in-band). VP8/VP9: the frame as the encoder produced it. AV1:
    the temporal unit's OBUs in low-overhead format with size fields, temporal delimiters
    dropped. Opus: one packet.
    """

    data: bytes
    timestamp: int
    """RTP timestamp of the frame (32 bits, as the publisher sent it)."""
    keyframe: bool


@dataclass(frozen=True, slots=True)
class TrackConfig:
    """Everything the init segment and the MPD need to describe one track."""

    kind: Literal["video", "audio"]
    codec: Literal["h264", "h265", "vp8", "vp9", "av1", "opus"]
    codecs: str
    """RFC 6381 codecs string for the MPD, e.g. ``avc1.42e01f``, ``vp09.00.10.08``, ``opus``."""
    timescale: int
    """Ticks per second of the track's timeline (the RTP clock rate: 90000, 48000)."""
    config_record: bytes
    """Body of the codec configuration box: avcC, hvcC, av1C, vpcC (VP8/VP9) or dOps."""
    width: int = 0
    height: int = 0
    channels: int = 0
    sample_rate: int = 0


class Depacketizer(Protocol):
    """RTP payloads of one track in, complete frames out (sans-IO).

    Packets may arrive lost or reordered; a frame with a missing packet is dropped, and
    video resumes at the next keyframe so a decoder never sees a broken reference.
    """

    def push(self, payload: bytes, timestamp: int, sequence: int, marker: bool) -> list[Frame]:
        """Feed one packet's payload; returns the frames it completed (often none)."""
        ...

    @property
    def config(self) -> TrackConfig | None:
        """The track configuration, once the stream has revealed it (parameter sets, a
        keyframe header); None before. May change (resolution change): compare values."""
        ...
