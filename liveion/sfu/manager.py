"""StreamManager: the domain object the HTTP routers call. Holds no HTTP and no media logic."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable

from ..config import Settings, StrategyConfig
from ..events import Event, EventBus, EventType, Reason
from . import datachannel
from .peer import Peer, PeerError
from .sdp import Role as OfferRole
from .sdp import SdpFragment, check_offer
from .stream import CascadeInfo, Role, Session, Stream, now_ms

logger = logging.getLogger(__name__)

ORPHAN_GRACE_MS = 5000

Negotiate = Callable[[Peer, dict[str, tuple[int, int]]], Awaitable[None]]
"""Sets up a peer this node offers from (a cascade): given the (media, rtx) SSRCs per kind
that a sending peer must announce."""
HOUSEKEEPING_INTERVAL = 1.0
STATS_INTERVAL = 2.0


class ManagerError(Exception):
    """A request the manager refuses; `status` is the HTTP status that says why."""

    status = 400

    def __init__(self, reason: str, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class NotFound(ManagerError):
    status = 404


class Conflict(ManagerError):
    status = 409


class Unprocessable(ManagerError):
    status = 422


class Unavailable(ManagerError):
    status = 503


def new_session_id() -> str:
    """Unguessable session ids (W18): 128 bits from the OS CSPRNG."""
    return secrets.token_hex(16)


class StreamManager:
    def __init__(self, settings: Settings, session_id: Callable[[], str] = new_session_id,
                 events: EventBus | None = None) -> None:
        self.settings = settings
        self.events = events or EventBus()
        self.streams: dict[str, Stream] = {}
        self._session_id = session_id
        self._auto_created: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.deleted_bytes_in = 0
        """RTP bytes received by streams since deleted (metrics)."""
        self.deleted_bytes_out = 0
        """RTP bytes sent by streams since deleted (metrics)."""
        self._opening = 0
        """Offers being answered: they count against `[limits] max_sessions` already."""
        for name in settings.stream:
            self.streams[name] = Stream(name, provisioned=True)

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._housekeeping(), name="housekeeping"),
            loop.create_task(self._sample_stats(), name="stats"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for name in list(self.streams):
            await self._delete_stream(name, Reason.SHUTDOWN)

    def strategy(self, stream: str) -> StrategyConfig:
        return self.settings.strategy_for(stream)

    # ---- streams API --------------------------------------------------------------------

    def get(self, name: str) -> Stream:
        stream = self.streams.get(name)
        if stream is None:
            raise NotFound(f"stream '{name}' does not exist")
        return stream

    def create_stream(self, name: str, reason: Reason = Reason.API) -> Stream:
        if name in self.streams:
            raise Conflict(f"stream '{name}' already exists")
        stream = self.streams[name] = Stream(name)
        self.events.emit(Event(EventType.STREAM_CREATED, name, reason))
        return stream

    async def delete_stream(self, name: str) -> None:
        stream = self.get(name)
        if stream.provisioned:
            raise Conflict(f"stream '{name}' is declared in the configuration")
        await self._delete_stream(name, Reason.API_DELETED)

    async def _delete_stream(self, name: str, reason: Reason) -> None:
        stream = self.streams.pop(name, None)
        self._auto_created.discard(name)
        if stream is None:
            return
        session_reason = Reason.SHUTDOWN if reason is Reason.SHUTDOWN else Reason.STREAM_DELETED
        for session in stream.sessions():
            await self._close_session(stream, session, session_reason)
        await stream.close()
        # Node-wide byte counters (metrics) must not drop when a stream goes away.
        self.deleted_bytes_in += stream.total_in[1]
        self.deleted_bytes_out += stream.total_out[1]
        self.events.emit(Event(EventType.STREAM_DELETED, name, reason))

    def _stream_for(self, name: str, role: Role) -> Stream:
        stream = self.streams.get(name)
        if stream is not None:
            return stream
        strategy = self.strategy(name)
        allowed = strategy.auto_create_whip if role is Role.PUBLISH else strategy.auto_create_whep
        if not allowed:
            raise NotFound(f"stream '{name}' does not exist and auto-create is off")
        self._auto_created.add(name)
        return self.create_stream(name, Reason.AUTO_CREATED)

    # ---- sessions -----------------------------------------------------------------------

    async def publish(self, name: str, offer: str) -> Session:
        check_offer(offer, OfferRole.PUBLISH)
        stream = self._stream_for(name, Role.PUBLISH)
        if stream.publisher is not None or stream.publishing:
            raise Conflict(f"stream '{name}' already has a publisher")
        self._check_capacity()
        stream.publishing = True
        self._opening += 1
        try:
            session = await self._open(stream, Role.PUBLISH, offer)
        finally:
            stream.publishing = False
            self._opening -= 1
        if self.streams.get(name) is not stream:  # deleted while we negotiated
            await session.peer.close()
            raise NotFound(f"stream '{name}' was deleted")
        stream.attach_publisher(session)
        self.events.emit(Event(EventType.PUBLISH_STARTED, name, Reason.API, session.id))
        return session

    async def subscribe(self, name: str, offer: str, cascade: CascadeInfo | None = None
                        ) -> Session:
        check_offer(offer, OfferRole.SUBSCRIBE)
        stream = self._stream_for(name, Role.SUBSCRIBE)
        limit = self.strategy(name).each_stream_max_sub
        viewers = sum(1 for s in stream.subscribers.values() if s.cascade is None)
        if cascade is None and viewers >= limit:
            raise Unavailable(f"stream '{name}' has its maximum of {limit} subscribers",
                              retry_after=5)
        self._check_capacity()
        ssrcs = {kind: (track.ssrc, track.rtx_ssrc) for kind, track in stream.tracks.items()}
        self._opening += 1
        try:
            session = await self._open(stream, Role.SUBSCRIBE, offer, ssrcs)
        finally:
            self._opening -= 1
        if self.streams.get(name) is not stream:
            await session.peer.close()
            raise NotFound(f"stream '{name}' was deleted")
        session.cascade = cascade
        stream.attach_subscriber(session)
        self.events.emit(Event(EventType.SUBSCRIBE_STARTED, name, Reason.API, session.id))
        return session

    def session_count(self) -> int:
        """WHIP + WHEP sessions on this node."""
        return sum(len(stream.sessions()) for stream in self.streams.values())

    def _check_capacity(self) -> None:
        limit = self.settings.limits.max_sessions
        if limit and self.session_count() + self._opening >= limit:
            raise Unavailable(f"this node has its maximum of {limit} sessions", retry_after=5)

    async def _open(self, stream: Stream, role: Role, offer: str,
                    ssrcs: dict[str, tuple[int, int]] | None = None,
                    negotiate: Negotiate | None = None) -> Session:
        """A new session answering `offer`, or set up by `negotiate` (a cascade offer)."""
        holder: list[Session] = []

        def on_rtcp(data: bytes) -> None:
            if role is Role.PUBLISH:
                stream.on_publisher_rtcp(data)
            elif holder:
                stream.on_subscriber_rtcp(holder[0], data)

        def on_rtp(data: bytes) -> None:
            if role is Role.PUBLISH and stream.publisher is not None and holder \
                    and stream.publisher is holder[0]:
                stream.on_publisher_rtp(data)

        def on_ready() -> None:
            if role is Role.PUBLISH:
                stream.request_keyframe()

        def on_closed() -> None:
            if holder:
                asyncio.get_running_loop().create_task(
                    self._peer_gone(stream, holder[0]), name="peer-closed")

        def on_message(label: str, data: str | bytes) -> None:
            if holder:
                datachannel.relay(stream, holder[0], label, data)

        peer = Peer(on_rtp=on_rtp, on_rtcp=on_rtcp, on_ready=on_ready, on_closed=on_closed,
                    on_message=on_message)
        try:
            if negotiate is None:
                await peer.accept(offer, send=role is Role.SUBSCRIBE, ssrcs=ssrcs or {})
            else:
                await negotiate(peer, ssrcs or {})
        except PeerError as exc:
            await peer.close()
            raise Unprocessable(f"cannot use this offer: {exc}") from exc
        except BaseException:
            await peer.close()
            raise
        session = Session(self._session_id(), stream.name, role, peer)
        holder.append(session)
        session.setup_timer = asyncio.get_running_loop().call_later(
            self.settings.webrtc.setup_timeout_ms / 1000, self._check_setup, stream, session)
        return session

    # ---- cascade sessions (driven by liveion/cascade.py) ------------------------------------

    async def publish_cascade(self, name: str, negotiate: Negotiate,
                              info: CascadeInfo) -> Session:
        """A cascade pull: the peer `negotiate` sets up (a WHEP client of another node)
        becomes the stream's publisher, exactly like a WHIP publisher."""
        stream = self._stream_for(name, Role.PUBLISH)
        if stream.publisher is not None or stream.publishing:
            raise Conflict(f"stream '{name}' already has a publisher")
        self._check_capacity()
        stream.publishing = True
        try:
            session = await self._open(stream, Role.PUBLISH, "", negotiate=negotiate)
        finally:
            stream.publishing = False
        session.cascade = info
        if self.streams.get(name) is not stream:
            await session.peer.close()
            raise NotFound(f"stream '{name}' was deleted")
        stream.attach_publisher(session)
        self.events.emit(Event(EventType.PUBLISH_STARTED, name, Reason.CASCADE, session.id))
        return session

    async def subscribe_cascade(self, name: str, negotiate: Negotiate,
                                info: CascadeInfo) -> Session:
        """A cascade push: the peer `negotiate` sets up (a WHIP client of another node)
        becomes a subscriber leg of the stream and gets the same forwarded packets.

        It is not counted against `each_stream_max_sub`: a cluster pushes to another node
        precisely when this one is full. With `cascade_push_close_sub` the stream's other
        (non-cascade) subscribers are then closed, as in Live777.
        """
        stream = self.get(name)
        ssrcs = {kind: (track.ssrc, track.rtx_ssrc) for kind, track in stream.tracks.items()}
        session = await self._open(stream, Role.SUBSCRIBE, "", ssrcs, negotiate=negotiate)
        session.cascade = info
        if self.streams.get(name) is not stream:
            await session.peer.close()
            raise NotFound(f"stream '{name}' was deleted")
        stream.attach_subscriber(session)
        self.events.emit(Event(EventType.SUBSCRIBE_STARTED, name, Reason.CASCADE, session.id))
        if self.strategy(name).cascade_push_close_sub:
            for other in list(stream.subscribers.values()):
                if other.cascade is None:
                    await self._close_session(stream, other, Reason.KICKED)
        return session

    def _check_setup(self, stream: Stream, session: Session) -> None:
        """W27: a session whose ICE and DTLS never came up must not hold resources forever."""
        if not session.peer.ready and session in stream.sessions():
            logger.info("%s session %s on %s did not connect in time", session.role.value,
                        session.id, stream.name)
            asyncio.get_running_loop().create_task(
                self._close_session(stream, session, Reason.SETUP_TIMEOUT), name="setup-timeout")

    def session(self, name: str, session_id: str) -> Session:
        stream = self.get(name)
        publisher = stream.publisher
        if publisher is not None and publisher.id == session_id:
            return publisher
        found = stream.subscribers.get(session_id)
        if found is None:
            raise NotFound(f"session '{session_id}' does not exist on stream '{name}'")
        return found

    def set_muted(self, name: str, session_id: str, kind: str, muted: bool) -> None:
        """Stop or resume sending `kind` media to one subscriber (Live777's session POST)."""
        session = self.session(name, session_id)
        if session.role is not Role.SUBSCRIBE:
            raise Conflict("only subscriber sessions can be muted; this is the publisher")
        if not self.get(name).set_muted(session, kind, muted):
            raise Unprocessable(f"session '{session_id}' has no {kind} track")

    async def add_candidates(self, name: str, session_id: str, fragment: SdpFragment) -> None:
        await self.session(name, session_id).peer.add_candidates(fragment)

    async def delete_session(self, name: str, session_id: str,
                             reason: Reason = Reason.API_DELETED) -> None:
        stream = self.get(name)
        await self._close_session(stream, self.session(name, session_id), reason)

    async def _peer_gone(self, stream: Stream, session: Session) -> None:
        """The peer fell silent for `[webrtc] peer_timeout_ms`, or closed DTLS, or ICE failed."""
        logger.info("%s session %s on %s closed by the peer", session.role.value, session.id,
                    stream.name)
        await self._close_session(stream, session, Reason.PEER_CLOSED)

    async def _close_session(self, stream: Stream, session: Session, reason: Reason) -> None:
        if session.setup_timer is not None:
            session.setup_timer.cancel()
            session.setup_timer = None
        if session.role is Role.PUBLISH:
            attached = stream.publisher is session
            stream.detach_publisher(session)
            stopped = EventType.PUBLISH_STOPPED
        else:
            attached = session.id in stream.subscribers
            stream.detach_subscriber(session)
            stopped = EventType.SUBSCRIBE_STOPPED
        await session.peer.close()
        if attached:
            self.events.emit(Event(stopped, stream.name, reason, session.id))

    # ---- timers -------------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        """auto_delete_whip/whep and the orphan reaper, checked every second."""
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL)
            now = now_ms()
            for name, stream in list(self.streams.items()):
                reason = self._expired(name, stream, now)
                if reason is not None:
                    logger.info("deleting stream %s: %s", name, reason.value)
                    await self._delete_stream(name, reason)

    def _expired(self, name: str, stream: Stream, now: int) -> Reason | None:
        if stream.provisioned or stream.publishing:
            return None
        strategy = self.strategy(name)
        if strategy.auto_delete_whip >= 0 and stream.publisher is None \
                and stream.publish_leave_at and now - stream.publish_leave_at \
                >= strategy.auto_delete_whip and stream.publish_leave_at != stream.created_at:
            return Reason.PUBLISH_LEAVE_TIMEOUT
        if strategy.auto_delete_whep >= 0 and not stream.subscribers \
                and stream.subscribe_leave_at and now - stream.subscribe_leave_at \
                >= strategy.auto_delete_whep and stream.subscribe_leave_at != stream.created_at:
            return Reason.SUBSCRIBE_LEAVE_TIMEOUT
        idle_since = max(stream.publish_leave_at, stream.subscribe_leave_at)
        if name in self._auto_created and stream.publisher is None and not stream.subscribers \
                and now - idle_since >= ORPHAN_GRACE_MS:
            return Reason.ORPHANED
        return None

    async def _sample_stats(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(STATS_INTERVAL)
            now = time.monotonic()
            for stream in self.streams.values():
                for session in stream.sessions():
                    session.sample_bitrate(now - last)
            last = now
