"""WHEP subscribers that count packets without decrypting or decoding them.

Each subscriber is a real aiortc peer connection (recvonly video + audio): aioice answers
ICE connectivity and consent checks, aiortc runs the DTLS handshake. Below that, every UDP
socket's `StunProtocol.datagram_received` is wrapped per instance: a datagram whose first
byte is 128-191 and whose second byte is not an RTCP packet type (RFC 5761) is SRTP, and its
header is in clear text: it is counted and dropped right there, before STUN parsing, the
asyncio queue and SRTP decryption. Everything else (STUN, DTLS, SRTCP) takes aiortc's path.
`RTCRtpReceiver.receive` is replaced per instance, so aiortc starts no decoder thread and
no RTCP loop for the subscriber.

Per subscriber and SSRC: packets received and the extended highest sequence number (loss =
expected - received over the measurement window); for video also the latency of every packet
(see bench/timeline.py) and the number of distinct frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import httpx
from aiortc import RTCSessionDescription

from .control import receive
from .loopback import run, setup_generator_process
from .probe import udp_socket_drops
from .rtp import RTP_HEADER, answer_ssrcs, is_rtp
from .stats import Histogram
from .timeline import MASK32, OffsetFinder, SendLog
from .webrtc import (
    delete_session,
    new_peer_connection,
    post_offer,
    prefer_codecs,
    set_receive_buffer,
    stun_protocols,
)


class SequenceCounter:
    """Packets and extended highest sequence number of one SSRC."""

    __slots__ = ("base", "high", "last", "received", "started")

    def __init__(self) -> None:
        self.received = 0
        self.started = False
        self.last = 0
        self.high = 0
        self.base = 0

    def add(self, sequence: int) -> None:
        self.received += 1
        if not self.started:
            self.started = True
            self.last = self.high = sequence
            self.base = sequence - 1
            return
        delta = (sequence - self.last) & 0xFFFF
        if delta < 0x8000:  # newer (older ones are reordered or duplicates)
            self.high += delta
            self.last = sequence

    def snapshot(self) -> tuple[int, int, int, bool]:
        return self.received, self.high, self.base, self.started


def window_loss(start: tuple[int, int, int, bool], end: tuple[int, int, int, bool]
                ) -> tuple[int, int]:
    """(expected, received) between two snapshots of a SequenceCounter."""
    received = end[0] - start[0]
    if not end[3]:
        return 0, 0
    first_high = start[1] if start[3] else end[2]
    return end[1] - first_high, received


async def _no_receive(parameters: object) -> None:
    """Stands in for RTCRtpReceiver.receive: no decoder, no jitter buffer, no RTCP loop."""


class Subscriber:
    """One WHEP session whose RTP is counted in the UDP callback."""

    def __init__(self, index: int, stream: str, log: SendLog | None,
                 latency: Histogram, receive_buffer: int) -> None:
        self.index = index
        self.stream = stream
        self.latency = latency
        self.receive_buffer = receive_buffer
        self.video = SequenceCounter()
        self.audio = SequenceCounter()
        self.counters: dict[int, SequenceCounter] = {}
        self.other_packets = 0
        self.frames = 0
        self.unmatched = 0
        self.post_at = 0.0
        self.answered_at = 0.0
        self.first_at = 0.0
        self.first_video_at = 0.0
        self.location = ""
        self.error = ""
        self.local_ports: list[int] = []
        self._log = log
        self._clock = log.clock() if log is not None else None
        self._finder = OffsetFinder(self._clock) if self._clock is not None else None
        self._origin = -1
        self._last_ts = -1
        self._frame_sent = 0.0
        self._pc = new_peer_connection()

    async def connect(self, client: httpx.AsyncClient) -> None:
        pc = self._pc
        for kind in ("video", "audio"):
            transceiver = pc.addTransceiver(kind, direction="recvonly")
            prefer_codecs(transceiver, sending=False)
            transceiver.receiver.receive = _no_receive  # type: ignore[method-assign]
        await pc.setLocalDescription(await pc.createOffer())
        for protocol in stun_protocols(pc):
            self._hook(protocol)
        self.post_at = time.monotonic()
        answer, self.location = await post_offer(client, f"/whep/{self.stream}",
                                                 pc.localDescription.sdp)
        self.answered_at = time.monotonic()
        for ssrc, kind in answer_ssrcs(answer).items():
            if kind in ("video", "audio"):
                self.counters[ssrc] = self.video if kind == "video" else self.audio
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))

    def _hook(self, protocol: Any) -> None:
        original = protocol.datagram_received
        on_rtp = self.on_rtp
        monotonic = time.monotonic

        def datagram_received(data: bytes, addr: Any) -> None:
            if is_rtp(data[0], data[1]):
                on_rtp(data, monotonic())
            else:
                original(data, addr)

        protocol.datagram_received = datagram_received
        set_receive_buffer(protocol, self.receive_buffer)
        self.local_ports.append(protocol.local_candidate.port)

    def on_rtp(self, data: bytes, now: float) -> None:
        """Hot path of the generator: one SRTP packet, read from its clear-text header."""
        _, _, sequence, timestamp, ssrc = RTP_HEADER.unpack_from(data)
        counter = self.counters.get(ssrc)
        if counter is None:
            self.other_packets += 1
            return
        if not self.first_at:
            self.first_at = now
        counter.add(sequence)
        if counter is not self.video:
            return
        if timestamp != self._last_ts:
            self._new_frame(timestamp, now)
        if self._frame_sent and self.latency.recording:
            self.latency.add(now - self._frame_sent)

    def _new_frame(self, timestamp: int, now: float) -> None:
        self._last_ts = timestamp
        self.frames += 1
        self._frame_sent = 0.0
        if not self.first_video_at:
            self.first_video_at = now
        log, clock = self._log, self._clock
        if log is None or clock is None or self._finder is None:
            return
        if self._origin < 0:
            origin = self._finder.add(timestamp, log.last_frame)
            if origin is None:
                return
            self._origin = origin
        relative = (timestamp - self._origin) & MASK32
        g = -1 if relative % clock.step else clock.frame_at(relative // clock.step)
        sent = log.sent_at(g) if g >= 0 else None
        if sent is None:
            self.unmatched += 1
        else:
            self._frame_sent = sent

    def snapshot(self) -> tuple[Any, ...]:
        return self.video.snapshot(), self.audio.snapshot(), self.frames

    def result(self) -> dict[str, Any]:
        def ms(at: float) -> float | None:
            return (at - self.post_at) * 1000 if at and self.post_at else None

        return {
            "stream": self.stream,
            "error": self.error,
            "answer_ms": ms(self.answered_at),
            "first_packet_ms": ms(self.first_at),
            "first_video_ms": ms(self.first_video_at),
            "video_packets": self.video.received,
            "audio_packets": self.audio.received,
            "other_packets": self.other_packets,
            "unmatched_frames": self.unmatched,
            "offset_found": self._origin >= 0,
            "frames": self.frames,
        }

    async def close(self, client: httpx.AsyncClient) -> None:
        if self.location:
            await delete_session(client, self.location)
        with contextlib.suppress(Exception):
            await self._pc.close()


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    base_url: str
    streams: tuple[str, ...]
    """Stream of each subscriber of this worker."""
    send_logs: dict[str, str]
    """Stream -> shared-memory name of the publisher's send log."""
    first_index: int = 0
    concurrency: int = 4
    """WHEP sessions this worker negotiates at the same time."""
    receive_buffer: int = 1 << 20
    core: int | None = 1


def worker_process(conn: Connection, config: WorkerConfig) -> None:
    """Entry point of a subscriber worker process.

    Sends ("ready", connected, errors) once every subscriber has negotiated. Then answers
    ("mark", recording) with ("mark", monotonic time, snapshots, socket drops) and turns
    latency recording on or off; ("report",) with ("report", results, latency bins,
    process pid); ("stop",) closes every session and exits.
    """
    setup_generator_process(config.core)
    run(_work(conn, config))


async def _work(conn: Connection, config: WorkerConfig) -> None:
    logs = {stream: SendLog.attach(name) for stream, name in config.send_logs.items()}
    latency = Histogram()
    subscribers = [Subscriber(config.first_index + i, stream, logs.get(stream), latency,
                              config.receive_buffer)
                   for i, stream in enumerate(config.streams)]
    gate = asyncio.Semaphore(config.concurrency)
    limits = httpx.Limits(max_connections=config.concurrency * 2)

    async def join(subscriber: Subscriber, client: httpx.AsyncClient) -> None:
        async with gate:
            try:
                await subscriber.connect(client)
            except Exception as exc:  # counted and reported, the run goes on
                subscriber.error = repr(exc)

    async with httpx.AsyncClient(base_url=config.base_url, timeout=60, limits=limits) as client:
        await asyncio.gather(*(join(s, client) for s in subscribers))
        errors = [s.error for s in subscribers if s.error]
        conn.send(("ready", len(subscribers) - len(errors), errors[:5]))
        ports = [port for s in subscribers for port in s.local_ports]
        while True:
            message = await receive(conn)
            if message[0] == "mark":
                now = time.monotonic()
                latency.recording = bool(message[1])
                conn.send(("mark", now, [s.snapshot() for s in subscribers],
                           udp_socket_drops(ports)))
            elif message[0] == "report":
                conn.send(("report", [s.result() for s in subscribers], latency.sparse(),
                           os.getpid()))
            else:
                break
        await asyncio.gather(*(s.close(client) for s in subscribers))
    for log in logs.values():
        log.close()
