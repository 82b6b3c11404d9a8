"""JPEG snapshots of live streams: the latest keyframe, decoded on demand, never on the
forwarding path.

A stream's first snapshot request attaches a tap that keeps the latest keyframe (depacketized
only, not decoded) and asks the publisher for one. Decoding and JPEG encoding run in a worker
thread, once per keyframe: repeated requests between keyframes are served from the cache.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from fractions import Fraction
from typing import cast

import av
from av.video.codeccontext import VideoCodecContext

from .events import Event, EventBus, EventType
from .recorder.depacketize import depacketizer_for
from .recorder.media import Depacketizer, Frame, TrackConfig
from .rtp.header import RtpHeader
from .sfu.codec import Codec
from .sfu.manager import NotFound, StreamManager
from .sfu.stream import Stream

KEYFRAME_WAIT = 4.0
DECODERS = {"h264": "h264", "h265": "hevc", "vp8": "vp8", "vp9": "vp9", "av1": "libdav1d"}


class NoPicture(Exception):
    """There is no keyframe to show (yet)."""


def keyframe_to_jpeg(config: TrackConfig, frame: Frame) -> bytes:
    """Decode one keyframe and encode it as a JPEG (pure CPU work, no I/O)."""
    name = DECODERS.get(config.codec)
    if name is None:
        raise NoPicture(f"cannot decode {config.codec}")
    if name == "libdav1d" and name not in av.codecs_available:
        name = "av1"
    decoder = cast(VideoCodecContext, av.CodecContext.create(name, "r"))
    if config.codec in ("h264", "h265", "av1"):
        decoder.extradata = config.config_record
    pictures = []
    try:
        for data in (frame.data, None):
            packet = av.Packet(data) if data is not None else None
            pictures.extend(decoder.decode(packet))
    except av.FFmpegError as exc:
        raise NoPicture(f"the keyframe does not decode: {exc}") from exc
    if not pictures:
        raise NoPicture("the keyframe decoded to no picture")
    picture = pictures[0].reformat(format="yuvj420p")
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height = picture.width, picture.height
    encoder.pix_fmt = "yuvj420p"
    encoder.time_base = Fraction(1, 25)
    packets = list(encoder.encode(picture)) + list(encoder.encode(None))
    return b"".join(bytes(p) for p in packets)


@dataclass(frozen=True, slots=True)
class _Keyframe:
    serial: int
    config: TrackConfig
    frame: Frame


class _KeyframeTap:
    """Keeps the latest complete video keyframe of a stream (MediaTap)."""

    def __init__(self) -> None:
        self._depacketizer: Depacketizer | None = None
        self._codec: Codec | None = None
        self.latest: _Keyframe | None = None
        self.arrived = asyncio.Event()
        self.jpeg: tuple[int, bytes] | None = None

    def on_rtp(self, kind: str, codec: Codec, data: bytes, header: RtpHeader) -> None:
        if kind != "video":
            return
        if codec is not self._codec:
            self._codec = codec
            self._depacketizer = depacketizer_for(codec.mime_type, codec.clock_rate,
                                                  codec.channels, dict(codec.fmtp))
        if self._depacketizer is None:
            return
        frames = self._depacketizer.push(data[header.payload_offset:header.payload_end],
                                         header.timestamp, header.sequence, header.marker)
        for frame in frames:
            config = self._depacketizer.config
            if frame.keyframe and config is not None:
                serial = self.latest.serial + 1 if self.latest else 1
                self.latest = _Keyframe(serial, config, frame)
                self.arrived.set()

    def on_sender_report(self, kind: str, ntp: int, rtp_ts: int) -> None:
        return None


class Snapshots:
    def __init__(self, manager: StreamManager, events: EventBus) -> None:
        self.manager = manager
        self._taps: dict[str, tuple[Stream, _KeyframeTap]] = {}
        self._stop_listening = events.listen(self._on_event)

    def close(self) -> None:
        self._stop_listening()
        for name in list(self._taps):
            self._detach(name)

    async def jpeg(self, name: str) -> bytes:
        stream = self.manager.get(name)
        if stream.publisher is None:
            raise NotFound(f"stream '{name}' has no publisher")
        if not any(m.kind == "video" for m in stream.publisher.peer.media):
            raise NotFound(f"stream '{name}' has no video")
        held = self._taps.get(name)
        if held is None or held[0] is not stream:
            tap = _KeyframeTap()
            stream.taps.append(tap)
            self._taps[name] = (stream, tap)
        else:
            tap = held[1]
        if tap.latest is None:
            stream.request_keyframe()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tap.arrived.wait(), KEYFRAME_WAIT)
        keyframe = tap.latest
        if keyframe is None:
            raise NotFound(f"stream '{name}' has sent no keyframe yet")
        if tap.jpeg is not None and tap.jpeg[0] == keyframe.serial:
            return tap.jpeg[1]
        try:
            jpeg = await asyncio.to_thread(keyframe_to_jpeg, keyframe.config, keyframe.frame)
        except NoPicture as exc:
            raise NotFound(f"stream '{name}': {exc}") from exc
        tap.jpeg = (keyframe.serial, jpeg)
        return jpeg

    def _on_event(self, event: Event) -> None:
        if event.type in (EventType.PUBLISH_STOPPED, EventType.STREAM_DELETED):
            self._detach(event.stream)

    def _detach(self, name: str) -> None:
        held = self._taps.pop(name, None)
        if held is not None:
            with contextlib.suppress(ValueError):
                held[0].taps.remove(held[1])
