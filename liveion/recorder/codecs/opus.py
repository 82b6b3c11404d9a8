"""Opus RTP depacketizer (RFC 7587): one packet per frame, and the dOps record."""

from __future__ import annotations

from typing import Final

from liveion.recorder.codecs.sequence import SequenceWindow
from liveion.recorder.media import Frame, TrackConfig

__all__ = ["OpusDepacketizer", "dops_record"]

# libopus' encoder delay at 48 kHz (what WebRTC senders use); the true value is not
# carried over RTP.
PRE_SKIP: Final = 312


def dops_record(channels: int, pre_skip: int = PRE_SKIP, input_sample_rate: int = 48000) -> bytes:
    """OpusSpecificBox body ("Encapsulation of Opus in ISOBMFF" 4.3.2): big-endian,
    Version 0, channel mapping family 0 (mono or stereo)."""
    return b"".join((
        bytes((0, channels)),
        pre_skip.to_bytes(2, "big"),
        input_sample_rate.to_bytes(4, "big"),
        (0).to_bytes(2, "big", signed=True),  # OutputGain
        b"\x00",  # ChannelMappingFamily
    ))


class OpusDepacketizer:
    """Each RTP payload is one Opus packet and one sample; every sample is a sync sample.

    Packets are put back in order; lost ones are simply missing (the writer sees the
    timestamp jump), late ones are dropped."""

    __slots__ = ("_config", "_window")

    def __init__(self, clock_rate: int = 48000, channels: int = 2,
                 reorder_depth: int = 3) -> None:
        self._window: SequenceWindow[tuple[bytes, int]] = SequenceWindow(reorder_depth)
        self._config = TrackConfig(
            kind="audio",
            codec="opus",
            codecs="opus",
            timescale=clock_rate,
            config_record=dops_record(channels),
            channels=channels,
            sample_rate=48000,
        )

    @property
    def config(self) -> TrackConfig | None:
        return self._config

    def push(self, payload: bytes, timestamp: int, sequence: int, marker: bool) -> list[Frame]:
        if type(payload) is not bytes:
            payload = bytes(payload)
        return [Frame(data, ts, True)
                for _, (data, ts) in self._window.push(sequence, (payload, timestamp)) if data]
