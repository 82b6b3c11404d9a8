"""WHIP publisher of pre-encoded media, paced at real time, sent below aiortc's track API.

aiortc negotiates ICE, DTLS and SRTP; its `RTCRtpSender.send` is replaced per instance so it
never starts its encoder loop. Packets are built from the cached clip (new sequence numbers
and timestamps on every loop), SRTP-protected with the transport's session and written to
the nominated ICE pair's socket synchronously, as liveion itself sends.

RTCP from the server is read at the DTLS transport: a PLI or FIR makes the video restart from
the keyframe that opens the current group of pictures; NACKed packets are resent from a
history of the last 1024 packets.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import secrets
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import httpx
from aiortc import RTCSessionDescription

from .control import receive
from .loopback import run, setup_generator_process
from .media import AUDIO_PTIME, AUDIO_SAMPLES, VIDEO_CLOCK, Clip, ClipSpec, load_clip
from .rtp import RTP_HEADER, parse_feedback
from .timeline import SendLog
from .webrtc import (
    SrtpSender,
    delete_session,
    dtls_transports,
    new_peer_connection,
    post_offer,
    prefer_codecs,
)

HISTORY = 1024
PLI_MIN_INTERVAL = 0.2
LATE = 0.005
MAX_CATCH_UP = 0.1
"""After a stall longer than this the schedule restarts from now: the generator must not
turn its own hiccup into a burst the server is then blamed for."""


class _Pace:
    """Due times at a fixed interval, resynchronised after a long stall."""

    def __init__(self, interval: float, start: float) -> None:
        self.interval = interval
        self.origin = start
        self.count = 0
        self.skipped = 0
        self.due = start

    def advance(self, now: float) -> float:
        """Take the slot that is due; returns how late it is taken."""
        lag = now - self.due
        if lag > MAX_CATCH_UP:
            self.skipped += int(lag / self.interval)
            self.origin, self.count = now, 0
        self.count += 1
        self.due = self.origin + self.count * self.interval
        return lag


@dataclass(slots=True)
class PublisherStats:
    stream: str
    packets: int = 0
    octets: int = 0
    frames: int = 0
    plis: int = 0
    keyframe_restarts: int = 0
    nacked: int = 0
    resent: int = 0
    lag_max_ms: float = 0.0
    late_frames: int = 0
    """Video frames sent more than 5 ms after their due time (generator overloaded)."""
    skipped_frames: int = 0
    """Frame slots not sent after a generator stall (see MAX_CATCH_UP)."""


@dataclass(slots=True)
class _Track:
    ssrc: int
    payload_type: int = 0
    sequence: int = field(default_factory=lambda: secrets.randbits(16))


class Publisher:
    """One WHIP session looping a pre-encoded clip into one stream."""

    def __init__(self, clip: Clip, stream: str, log: SendLog) -> None:
        self.clip = clip
        self.stream = stream
        self.log = log
        self.clock = log.clock()
        self.stats = PublisherStats(stream)
        self._pc = new_peer_connection()
        self._video = _Track(0)
        self._audio = _Track(0)
        self._audio_base = secrets.randbits(32)
        self._sender: SrtpSender | None = None
        self._connected = asyncio.Event()
        self._keyframes = clip.keyframe_indices
        self._index = 0
        self._frame = 0
        self._restart_requested = False
        self._last_restart = 0.0
        self._history: list[bytes | None] = [None] * HISTORY
        self.location = ""

    async def connect(self, client: httpx.AsyncClient, timeout: float = 20) -> None:
        pc = self._pc
        for kind in ("video", "audio"):
            transceiver = pc.addTransceiver(kind, direction="sendonly")
            prefer_codecs(transceiver, sending=True)
            # per instance, like liveion's Peer: no aiortc encoder loop
            transceiver.sender.send = self._sender_started  # type: ignore[method-assign]
        await pc.setLocalDescription(await pc.createOffer())
        for dtls in dtls_transports(pc):
            dtls._handle_rtcp_data = self._rtcp_received  # type: ignore[method-assign]
        answer, self.location = await post_offer(client, f"/whip/{self.stream}",
                                                 pc.localDescription.sdp)
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        for transceiver in pc.getTransceivers():
            track = self._video if transceiver.kind == "video" else self._audio
            track.ssrc = transceiver.sender._ssrc
            track.payload_type = int(transceiver._codecs[0].payloadType or 0)
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def _sender_started(self, parameters: object) -> None:
        """Called by aiortc once DTLS is up (in place of RTCRtpSender.send)."""
        if self._sender is None:
            self._sender = SrtpSender.of(dtls_transports(self._pc)[0])
            self._connected.set()

    async def _rtcp_received(self, data: bytes) -> None:
        feedback = parse_feedback(data)
        if feedback.keyframe:
            self.stats.plis += 1
            self._restart_requested = True
        for sequence in feedback.nacked:
            self.stats.nacked += 1
            packet = self._history[sequence % HISTORY]
            if packet is not None and self._sender is not None \
                    and int.from_bytes(packet[2:4], "big") == sequence:
                self._sender.send(packet)
                self.stats.resent += 1

    async def run(self) -> None:
        """Send the clip in a loop at real-time pace until cancelled."""
        start = time.monotonic()
        video = _Pace(1 / self.clip.spec.fps, start)
        audio = _Pace(AUDIO_PTIME, start)
        stats = self.stats
        audio_count = 0
        while True:
            now = time.monotonic()
            if now >= video.due:
                lag = video.advance(now)
                if lag > LATE:
                    stats.late_frames += 1
                stats.lag_max_ms = max(stats.lag_max_ms, lag * 1000)
                self._send_video_frame(now)
            if now >= audio.due:
                audio.advance(now)
                self._send_audio(audio_count)
                audio_count += 1
            stats.skipped_frames = video.skipped
            await asyncio.sleep(max(0.0, min(video.due, audio.due) - time.monotonic()))

    def _send_video_frame(self, now: float) -> None:
        sender = self._sender
        if sender is None:
            return
        if self._restart_requested and now - self._last_restart >= PLI_MIN_INTERVAL:
            self._restart_requested = False  # a PLI inside the interval waits, not dropped
            self._last_restart = now
            self._index = self._keyframes[bisect.bisect_right(self._keyframes, self._index) - 1]
            self.stats.keyframe_restarts += 1
        frame = self.clip.video[self._index]
        g = self._frame
        timestamp = self.clock.timestamp(g)
        track = self._video
        last = len(frame.payloads) - 1
        self.log.record(g, now)
        for i, payload in enumerate(frame.payloads):
            marker = 0x80 if i == last else 0
            packet = RTP_HEADER.pack(0x80, marker | track.payload_type, track.sequence,
                                     timestamp, track.ssrc) + payload
            self._history[track.sequence % HISTORY] = packet
            self.stats.octets += sender.send(packet)
            track.sequence = (track.sequence + 1) & 0xFFFF
        self.stats.packets += last + 1
        self.stats.frames += 1
        self._index = (self._index + 1) % len(self.clip.video)
        self._frame = g + 1

    def _send_audio(self, count: int) -> None:
        sender = self._sender
        if sender is None:
            return
        track = self._audio
        payload = self.clip.audio[count % len(self.clip.audio)]
        timestamp = (self._audio_base + count * AUDIO_SAMPLES) & 0xFFFFFFFF
        packet = RTP_HEADER.pack(0x80, track.payload_type, track.sequence, timestamp,
                                 track.ssrc) + payload
        self.stats.octets += sender.send(packet)
        self.stats.packets += 1
        track.sequence = (track.sequence + 1) & 0xFFFF

    async def close(self, client: httpx.AsyncClient) -> None:
        if self.location:
            await delete_session(client, self.location)
        await self._pc.close()


@dataclass(frozen=True, slots=True)
class PublisherConfig:
    base_url: str
    streams: tuple[str, ...]
    clip: ClipSpec
    core: int | None = 1


def publisher_process(conn: Connection, config: PublisherConfig) -> None:
    """Entry point of the publisher process: connect, report ready, stream until told to stop.

    Messages: sends ("ready", {stream: send-log name}) or ("error", text); on ("stop",) sends
    ("stats", [PublisherStats...]) and exits.
    """
    setup_generator_process(config.core)
    run(_publish(conn, config))


async def _publish(conn: Connection, config: PublisherConfig) -> None:
    clip = load_clip(config.clip)
    step = VIDEO_CLOCK // config.clip.fps
    logs = {stream: SendLog.create(secrets.randbits(32), step) for stream in config.streams}
    publishers = [Publisher(clip, stream, logs[stream]) for stream in config.streams]
    tasks: list[asyncio.Task[None]] = []
    try:
        async with httpx.AsyncClient(base_url=config.base_url, timeout=30) as client:
            try:
                await asyncio.gather(*(p.connect(client) for p in publishers))
            except Exception as exc:  # report any failure to the orchestrator, then stop
                conn.send(("error", f"publisher failed to connect: {exc!r}"))
                return
            tasks = [asyncio.create_task(p.run()) for p in publishers]
            conn.send(("ready", {stream: log.name for stream, log in logs.items()}))
            while (await receive(conn))[0] != "stop":
                pass
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            conn.send(("stats", [p.stats for p in publishers]))
            await asyncio.gather(*(p.close(client) for p in publishers))
    finally:
        for log in logs.values():
            log.close()

