"""A stream: one publisher session, its subscriber sessions, and the RTCP that binds them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from ..rtp.header import RtpError, RtpHeader, parse_rtp, unwrap_rtx
from ..rtp.keyframe import KeyframeRequester
from ..rtp.nack import NackGenerator
from ..rtp.rtcp import (
    Fir,
    Nack,
    Pli,
    RtcpError,
    SenderReport,
    build_nack,
    build_pli,
    build_remb,
    build_rr,
    build_sdes_cname,
    parse_compound,
)
from ..rtp.stats import ReceiveStatistics
from .codec import Codec
from .forwarder import Leg, TrackForwarder
from .peer import NegotiatedMedia, Peer

logger = logging.getLogger(__name__)

RTCP_TICK = 0.1
REPORT_EVERY_TICKS = 10
PUBLISHER_REMB_BITRATE = 8_000_000


def now_ms() -> int:
    return int(time.time() * 1000)


class MediaTap(Protocol):
    """A consumer of the publisher's media inside the node (recorder, snapshot, cascade push).

    Called on the hot path with packets as the publisher sent them (RTX already unwrapped,
    original sequence numbers and timestamps). Must not block: copy what it needs and return.
    """

    def on_rtp(self, kind: str, codec: Codec, data: bytes, header: RtpHeader) -> None: ...

    def on_sender_report(self, kind: str, ntp: int, rtp_ts: int) -> None: ...


class Role(Enum):
    PUBLISH = "publish"
    SUBSCRIBE = "subscribe"


@dataclass(slots=True)
class CascadeInfo:
    """A session this node opened towards another node (`liveion/cascade.py`): a pull is
    the stream's publisher, a push one of its subscribers."""

    source_url: str | None = None
    """The remote WHEP endpoint a pull reads from."""
    target_url: str | None = None
    """The remote WHIP endpoint a push writes to."""
    session_url: str | None = None
    """The remote session resource (its `Location`), DELETEd when the session ends."""


@dataclass(eq=False)
class Session:
    """A WHIP or WHEP session resource: `/session/{stream}/{id}`."""

    id: str
    stream: str
    role: Role
    peer: Peer
    created_at: int = field(default_factory=now_ms)
    legs: dict[str, Leg] = field(default_factory=dict)
    packets_in: int = 0
    bytes_in: int = 0
    bitrate: int = 0
    _last_bytes: int = 0
    setup_timer: asyncio.TimerHandle | None = None
    owner: str = ""
    """Fingerprint of the credential that opened the session (auth.Claims.credential):
    a DELETE with another admin credential is a kick."""
    cascade: CascadeInfo | None = None
    """Set on sessions that cascade to or from another node ("reforward" sessions)."""

    @property
    def etag(self) -> str:
        """Strong entity tag identifying the ICE session (W13)."""
        return f'"{self.peer.local_ufrag}:{self.peer.remote_ufrag}"'

    @property
    def bytes(self) -> int:
        return self.bytes_in if self.role is Role.PUBLISH else self.peer.sent_bytes

    @property
    def packets(self) -> int:
        return self.packets_in if self.role is Role.PUBLISH else self.peer.sent_packets

    def sample_bitrate(self, seconds: float) -> None:
        total = self.bytes
        self.bitrate = int((total - self._last_bytes) * 8 / seconds) if seconds > 0 else 0
        self._last_bytes = total


@dataclass(slots=True)
class _Route:
    """Where packets of one publisher SSRC go."""

    track: TrackForwarder
    rtx_to_media: dict[int, int] | None = None
    """For an RTX SSRC: RTX payload type -> media payload type."""
    media_ssrc: int = 0


class Stream:
    """One stream (a "room"): media from its publisher to its subscribers."""

    def __init__(self, name: str, *, provisioned: bool = False,
                 on_idle: Callable[[Stream], None] | None = None) -> None:
        self.name = name
        self.provisioned = provisioned
        self.created_at = now_ms()
        self.publisher: Session | None = None
        self.publishing = False
        """A WHIP offer is being answered: a second publisher gets 409 even before the first
        session exists."""
        self.subscribers: dict[str, Session] = {}
        self.publish_leave_at = self.created_at
        self.subscribe_leave_at = self.created_at
        self.tracks = {
            kind: TrackForwarder(kind, secrets.randbits(32) or 1, secrets.randbits(32) or 1)
            for kind in ("audio", "video")
        }
        self.total_in = (0, 0)
        """(packets, bytes) of publisher sessions that already left: stats stay monotonic."""
        self.total_out = (0, 0)
        self._routes: dict[int, _Route] = {}
        self._receive_stats: dict[int, ReceiveStatistics] = {}
        self._nacks: dict[int, NackGenerator] = {}
        self._keyframes = KeyframeRequester(min_interval=0.3)
        self._rtcp_ssrc = secrets.randbits(32) or 1
        self._rtcp_task: asyncio.Task[None] | None = None
        self._on_idle = on_idle
        self.taps: list[MediaTap] = []
        # Feedback counters for metrics, bumped on the RTCP paths only.
        self.nacks_received = 0
        """NACK messages from subscribers."""
        self.nacks_sent = 0
        """NACK messages sent to the publisher."""
        self.plis_received = 0
        """PLI/FIR keyframe requests from subscribers."""
        self.plis_sent = 0
        """PLIs sent to the publisher (merged and throttled)."""
        self._lost_before = 0
        """Packets lost under earlier publisher sessions (their statistics are reset)."""

    # ---- membership ---------------------------------------------------------------------

    def attach_publisher(self, session: Session) -> None:
        self.publisher = session
        self.publish_leave_at = 0
        self._routes.clear()
        self._lost_before = self.packets_lost
        self._receive_stats.clear()
        self._nacks.clear()
        self._keyframes.reset()
        for media in session.peer.media:
            track = self.tracks[media.kind]
            track.attach_source(media.codecs)
            for ssrc in media.remote_ssrcs:
                self._routes[ssrc] = _Route(track)
            rtx_map = self._rtx_map(media)
            for ssrc in media.remote_rtx_ssrcs:
                media_ssrc = media.remote_ssrcs[0] if media.remote_ssrcs else 0
                self._routes[ssrc] = _Route(track, rtx_map, media_ssrc)
        self._ensure_rtcp_task()

    @staticmethod
    def _rtx_map(media: NegotiatedMedia) -> dict[int, int]:
        return {c.rtx_payload_type: c.payload_type for c in media.codecs
                if c.rtx_payload_type is not None}

    def detach_publisher(self, session: Session) -> None:
        if self.publisher is not session:
            return
        self.total_in = (self.total_in[0] + session.packets, self.total_in[1] + session.bytes)
        self.publisher = None
        self.publish_leave_at = now_ms()
        for track in self.tracks.values():
            track.detach_source()
        self._routes.clear()

    def attach_subscriber(self, session: Session) -> None:
        self.subscribers[session.id] = session
        self.subscribe_leave_at = 0
        for media in session.peer.media:
            leg = Leg(session.id, media.codecs, session.peer.send_rtp)
            session.legs[media.kind] = leg
            self.tracks[media.kind].add_leg(leg)
        self.request_keyframe()
        self._ensure_rtcp_task()

    def detach_subscriber(self, session: Session) -> None:
        if self.subscribers.pop(session.id, None) is None:
            return
        self.total_out = (self.total_out[0] + session.packets, self.total_out[1] + session.bytes)
        for kind, leg in session.legs.items():
            self.tracks[kind].remove_leg(leg)
        if not self.subscribers:
            self.subscribe_leave_at = now_ms()

    def set_muted(self, session: Session, kind: str, muted: bool) -> bool:
        """Stop or resume sending one kind of media to one subscriber; False when the
        session has no such track."""
        leg = session.legs.get(kind)
        if leg is None:
            return False
        if self.tracks[kind].set_muted(leg, muted):
            self.request_keyframe()
        return True

    def sessions(self) -> list[Session]:
        found = [self.publisher] if self.publisher else []
        return found + list(self.subscribers.values())

    # ---- publisher media ----------------------------------------------------------------

    def on_publisher_rtp(self, data: bytes) -> None:
        """Hot path: one decrypted packet from the publisher."""
        try:
            header = parse_rtp(data)
        except RtpError:
            return
        route = self._routes.get(header.ssrc)
        if route is None:
            route = self._learn_route(header.ssrc, header.payload_type)
            if route is None:
                return
        if route.rtx_to_media is not None:
            media_type = route.rtx_to_media.get(header.payload_type)
            if media_type is None or not route.media_ssrc:
                return
            unwrapped = unwrap_rtx(data, header, media_type, route.media_ssrc)
            if unwrapped is None:
                return  # padding-only probe
            data = unwrapped
            header = parse_rtp(data)
        now = time.monotonic()
        publisher = self.publisher
        if publisher is not None:
            publisher.packets_in += 1
            publisher.bytes_in += len(data)
        stats = self._receive_stats.get(header.ssrc)
        track = route.track
        if stats is None:
            clock = track.source.clock_rate if track.source else 90000
            stats = self._receive_stats[header.ssrc] = ReceiveStatistics(clock)
            if track.kind == "video":
                self._nacks[header.ssrc] = NackGenerator()
        stats.add(header.sequence, header.timestamp, now)
        nacks = self._nacks.get(header.ssrc)
        if nacks is not None:
            missing = nacks.on_packet(header.sequence, now)
            if missing:
                self._send_nack(header.ssrc, missing)
        track.on_packet(data, header, now)
        if self.taps:
            source = track.source
            if source is not None and source.payload_type == header.payload_type:
                for tap in self.taps:
                    tap.on_rtp(track.kind, source, data, header)

    def _learn_route(self, ssrc: int, payload_type: int) -> _Route | None:
        """An SSRC the offer did not list: place it by payload type (BUNDLE demux, RFC 8843)."""
        publisher = self.publisher
        if publisher is None:
            return None
        for media in publisher.peer.media:
            track = self.tracks[media.kind]
            if any(c.payload_type == payload_type for c in media.codecs):
                route = _Route(track)
                for other in self._routes.values():
                    if other.track is track and other.rtx_to_media is not None:
                        other.media_ssrc = other.media_ssrc or ssrc
                self._routes[ssrc] = route
                return route
            rtx_map = self._rtx_map(media)
            if payload_type in rtx_map:
                media_ssrc = next((s for s, r in self._routes.items()
                                   if r.track is track and r.rtx_to_media is None), 0)
                route = _Route(track, rtx_map, media_ssrc)
                self._routes[ssrc] = route
                return route
        return None

    def on_publisher_rtcp(self, data: bytes) -> None:
        try:
            packets = parse_compound(data)
        except RtcpError:
            return
        now = time.monotonic()
        for packet in packets:
            if isinstance(packet, SenderReport):
                stats = self._receive_stats.get(packet.ssrc)
                if stats is not None:
                    stats.on_sender_report(packet.ntp, now)
                route = self._routes.get(packet.ssrc)
                if route is not None and route.rtx_to_media is None:
                    route.track.on_sender_report(packet.ntp, packet.rtp_ts, now)
                    for tap in self.taps:
                        tap.on_sender_report(route.track.kind, packet.ntp, packet.rtp_ts)

    def _send_to_publisher(self, packet: bytes) -> None:
        if self.publisher is not None:
            self.publisher.peer.send_rtcp(packet)

    def _publisher_video_ssrc(self) -> int | None:
        video = self.tracks["video"]
        return next((s for s, r in self._routes.items()
                     if r.track is video and r.rtx_to_media is None), None)

    def request_keyframe(self) -> None:
        """A subscriber needs a keyframe: one merged, throttled PLI goes upstream."""
        if self._keyframes.request(time.monotonic()):
            self._send_pli()

    def _send_nack(self, ssrc: int, missing: list[int]) -> None:
        self.nacks_sent += 1
        self._send_to_publisher(build_nack(self._rtcp_ssrc, ssrc, missing))

    @property
    def packets_lost(self) -> int:
        """Packets from the publisher that never arrived, over the stream's life."""
        return self._lost_before + sum(max(stats.lost, 0)
                                       for stats in self._receive_stats.values())

    def _send_pli(self) -> None:
        ssrc = self._publisher_video_ssrc()
        if ssrc is not None:
            self.plis_sent += 1
            self._send_to_publisher(build_pli(self._rtcp_ssrc, ssrc))

    # ---- subscriber feedback -----------------------------------------------------------

    def on_subscriber_rtcp(self, session: Session, data: bytes) -> None:
        try:
            packets = parse_compound(data)
        except RtcpError:
            return
        video = self.tracks["video"]
        for packet in packets:
            if isinstance(packet, Pli | Fir):
                self.plis_received += 1
                self.request_keyframe()
            elif isinstance(packet, Nack):
                self.nacks_received += 1
                leg = session.legs.get("video")
                if leg is not None and packet.media_ssrc == video.ssrc:
                    video.retransmit(leg, packet.lost)

    # ---- timers ------------------------------------------------------------------------

    def _ensure_rtcp_task(self) -> None:
        if self._rtcp_task is None or self._rtcp_task.done():
            self._rtcp_task = asyncio.get_running_loop().create_task(
                self._rtcp_loop(), name=f"rtcp:{self.name}")

    async def _rtcp_loop(self) -> None:
        """NACK retries and deferred PLIs every tick; reports to everyone each second."""
        tick = 0
        while self.publisher is not None or self.subscribers:
            await asyncio.sleep(RTCP_TICK)
            tick += 1
            now = time.monotonic()
            try:
                self._retry_feedback(now)
                if tick % REPORT_EVERY_TICKS == 0:
                    self._send_reports(now)
            except Exception:  # a timer must survive a bad report; the cause is logged
                logger.exception("RTCP timer failed for stream %s", self.name)
        self._rtcp_task = None

    def _retry_feedback(self, now: float) -> None:
        for ssrc, nacks in self._nacks.items():
            missing = nacks.poll(now)
            if missing:
                self._send_nack(ssrc, missing)
        if self._keyframes.poll(now) or (
            self.tracks["video"].waiting_for_keyframe() and self._keyframes.request(now)
        ):
            self._send_pli()

    def _send_reports(self, now: float) -> None:
        if self.publisher is not None and self._receive_stats:
            blocks = [stats.report_block(ssrc, now) for ssrc, stats in self._receive_stats.items()]
            report = build_rr(self._rtcp_ssrc, blocks)
            media = [s for s, r in self._routes.items() if r.rtx_to_media is None]
            if media:
                report += build_remb(self._rtcp_ssrc, PUBLISHER_REMB_BITRATE, media)
            self._send_to_publisher(report)
        wall = time.time()
        for session in self.subscribers.values():
            if not session.peer.ready:
                continue
            compound = b""
            for kind, leg in session.legs.items():
                sender_report = self.tracks[kind].sender_report(leg, now, wall)
                if sender_report is not None:
                    compound += sender_report
            if compound:
                session.peer.send_rtcp(compound + build_sdes_cname(
                    self.tracks["video"].ssrc, session.peer.cname or "liveion"))

    async def close(self) -> None:
        task = self._rtcp_task
        self._rtcp_task = None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
