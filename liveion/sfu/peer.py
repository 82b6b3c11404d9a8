"""The aiortc adapter: the only module that reaches into aiortc's internals.

aiortc supplies ICE, DTLS, SRTP and SDP. Its track API decodes and encodes frames, so
we use it below that layer:

- each transceiver's `sender.send` / `receiver.receive` are replaced per instance, so
  aiortc never starts its encode/decode loops nor its own RTCP (its sender reports would
  carry zero timestamps);
- the bundled DTLS transport's `_handle_rtp_data` / `_handle_rtcp_data` hand plaintext
  packets straight to our handlers;
- sending protects with the transport's SRTP session and writes to the nominated ICE
  pair's UDP socket synchronously: no task and no await per packet;
- each aioice `Connection` gets per-instance replacements: as an ICE-lite agent (RFC 8445
  §2.5, `[webrtc] ice_lite`) `connect` and `check_incoming` answer the peer's checks, take the
  pair it nominates and send no checks of their own; in full ICE `query_consent` sends RFC
  7675 checks but never closes by itself. Either way the peer's liveness is judged by what
  arrives from it (`liveness.Liveness`): authenticated binding requests, RTP/RTCP that passed
  SRTP, DTLS data, consent answers. FFmpeg's WHIP muxer answers no consent checks but keeps
  sending, so it stays connected.

A peer normally answers a WHIP/WHEP offer (`accept`). For cascading between nodes it can
also offer (`offer` then `apply_answer`): the same hooks apply, only the order differs.
Data channels (SCTP) are aiortc's own; the peer exposes their messages by label.

aiortc is pinned exactly in pyproject.toml; `tests/test_aiortc_hooks.py` fails loudly if an
upgrade moves anything used here.
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aioice.ice
import aiortc.rtcpeerconnection as aiortc_pc
from aioice import stun
from aioice.candidate import Candidate
from aioice.utils import random_string
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcdatachannel import RTCDataChannel
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsTransport, SRTPProtectionProfile
from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpCodecParameters
from aiortc.sdp import SessionDescription, candidate_from_sdp
from OpenSSL import SSL

from .codec import FORWARDED_CODECS, SUPPORTED_FEEDBACK, Codec
from .liveness import Liveness
from .sdp import SdpFragment

logger = logging.getLogger(__name__)

RtpHandler = Callable[[bytes], None]
RtcpHandler = Callable[[bytes], None]
MessageHandler = Callable[[str, str | bytes], None]
"""A data-channel message: (channel label, text or binary payload)."""
MAX_CHANNEL_BUFFERED = 1 << 20
"""Bytes a data channel may have queued before further messages to it are dropped, so a
receiver that cannot keep up does not grow our memory without bound."""

# ECDSA suites first (our certificate is ECDSA), then RSA suites so that peers whose DTLS
# server uses an RSA certificate (GStreamer webrtcbin, some devices) can connect too.
DTLS_CIPHERS = (
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"
    b"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:"
    b"ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES256-GCM-SHA384:"
    b"ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA"
)


@dataclass(frozen=True, slots=True)
class NegotiatedMedia:
    """What one audio or video section of a session agreed on."""

    kind: str
    mid: str
    codecs: tuple[Codec, ...]
    remote_ssrcs: tuple[int, ...]
    remote_rtx_ssrcs: tuple[int, ...]


@dataclass
class CodecPolicy:
    """Which codecs answers accept: the `[sdp]` whitelists (upper-case names, empty = all)."""

    video: tuple[str, ...] = ()
    audio: tuple[str, ...] = ()

    def allows(self, kind: str, name: str) -> bool:
        allowed = self.video if kind == "video" else self.audio
        return not allowed or name.upper() in allowed


_policy = CodecPolicy()


@dataclass(frozen=True)
class IceSettings:
    """`[webrtc]` ICE behaviour: lite or full answers, consent interval, peer timeout (s)."""

    lite: bool = True
    consent_interval: float = 5.0
    peer_timeout: float = 30.0


_ice = IceSettings()


def install(
    *,
    ice_udp_addrs: Iterable[str] = ("auto",),
    ice_lite: bool = True,
    consent_interval_ms: int = 5000,
    peer_timeout_ms: int | None = None,
    policy: CodecPolicy | None = None,
) -> None:
    """Apply the process-wide aiortc/aioice settings; called once at startup.

    `peer_timeout_ms` defaults to 6 consent intervals (RFC 7675's 30 s at 5 s).
    """
    global _policy, _ice
    _policy = policy or CodecPolicy()
    timeout_ms = peer_timeout_ms if peer_timeout_ms is not None else 6 * consent_interval_ms
    _ice = IceSettings(lite=ice_lite, consent_interval=consent_interval_ms / 1000,
                       peer_timeout=timeout_ms / 1000)
    aiortc_pc.find_common_codecs = _find_common_codecs
    setattr(RTCCertificate, "_create_ssl_context", _create_ssl_context)  # noqa: B010
    addrs = [a for a in ice_udp_addrs if a != "auto"]
    if addrs and "auto" not in ice_udp_addrs:
        def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
            return [a for a in addrs if (ipaddress.ip_address(a).version == 4 and use_ipv4)
                    or (ipaddress.ip_address(a).version == 6 and use_ipv6)]
        aioice.ice.get_host_addresses = host_addresses


def _create_ssl_context(
    self: RTCCertificate, srtp_profiles: list[SRTPProtectionProfile]
) -> SSL.Context:
    ctx = SSL.Context(SSL.DTLS_METHOD)
    ctx.set_options(SSL.OP_NO_TICKET)
    ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *args: True)
    ctx.use_certificate(self._cert)
    ctx.use_privatekey(self._key)
    ctx.set_cipher_list(DTLS_CIPHERS)
    ctx.set_tlsext_use_srtp(b":".join(p.openssl_profile for p in srtp_profiles))
    return ctx


def _find_common_codecs(
    local_codecs: list[RTCRtpCodecParameters], remote_codecs: list[RTCRtpCodecParameters]
) -> list[RTCRtpCodecParameters]:
    """Accept every offered codec we can forward, keeping the peer's own fmtp.

    Replaces aiortc's matcher, which only knows the codecs aiortc can decode and answers
    with its own parameters. An SFU does not decode, so it echoes what the peer offered.
    """
    del local_codecs
    accepted: list[RTCRtpCodecParameters] = []
    rtx_by_apt = {
        int(str(c.parameters["apt"])): c for c in remote_codecs
        if c.name.lower() == "rtx" and str(c.parameters.get("apt", "")).isdigit()
    }
    for offered in remote_codecs:
        kind = offered.mimeType.split("/")[0].lower()
        known = {m.lower() for m in FORWARDED_CODECS.get(kind, ())}
        if offered.mimeType.lower() not in known or not _policy.allows(kind, offered.name):
            continue
        if offered.name.lower() == "h264" and str(
            offered.parameters.get("packetization-mode", "0")
        ) != "1":
            continue
        codec = copy.deepcopy(offered)
        codec.rtcpFeedback = [fb for fb in offered.rtcpFeedback
                              if (fb.type, fb.parameter) in SUPPORTED_FEEDBACK]
        accepted.append(codec)
        rtx = rtx_by_apt.get(codec.payloadType or -1)
        if rtx is not None and rtx.clockRate == codec.clockRate:
            accepted.append(copy.deepcopy(rtx))
    return accepted


# What an offer from this node lists (cascade pull/push): every format the forwarder
# carries, with payload types unique across the bundle. aiortc's own table (used for its
# offers) has only VP8, H264 baseline and the audio codecs it can encode.
_OFFER_VIDEO: tuple[tuple[str, dict[str, str | int]], ...] = (
    ("video/H264", {"level-asymmetry-allowed": 1, "packetization-mode": 1,
                    "profile-level-id": "42e01f"}),
    ("video/H264", {"level-asymmetry-allowed": 1, "packetization-mode": 1,
                    "profile-level-id": "42001f"}),
    ("video/H264", {"level-asymmetry-allowed": 1, "packetization-mode": 1,
                    "profile-level-id": "4d001f"}),
    ("video/H264", {"level-asymmetry-allowed": 1, "packetization-mode": 1,
                    "profile-level-id": "64001f"}),
    ("video/VP8", {}),
    ("video/VP9", {"profile-id": 0}),
    ("video/VP9", {"profile-id": 2}),
    ("video/AV1", {}),
    ("video/H265", {}),
)
_OFFER_AUDIO: tuple[tuple[str, int, int, dict[str, str | int]], ...] = (
    ("audio/opus", 111, 2, {"minptime": 10, "useinbandfec": 1}),
    ("audio/G722", 9, 1, {}),
    ("audio/PCMU", 0, 1, {}),
    ("audio/PCMA", 8, 1, {}),
)
_VIDEO_FEEDBACK = [RTCRtcpFeedback(type="nack"), RTCRtcpFeedback(type="nack", parameter="pli"),
                   RTCRtcpFeedback(type="ccm", parameter="fir"),
                   RTCRtcpFeedback(type="goog-remb")]


def _offer_codecs() -> dict[str, list[RTCRtpCodecParameters]]:
    """The codec table for our offers, after the `[sdp]` whitelists (video PTs 96-115 with
    RTX right after each, audio on static PTs or 111)."""
    video: list[RTCRtpCodecParameters] = []
    payload_type = 96
    for mime, fmtp in _OFFER_VIDEO:
        if not _policy.allows("video", mime.split("/")[1]):
            continue
        video.append(RTCRtpCodecParameters(
            mimeType=mime, clockRate=90000, payloadType=payload_type,
            rtcpFeedback=list(_VIDEO_FEEDBACK), parameters=dict(fmtp)))
        video.append(RTCRtpCodecParameters(
            mimeType="video/rtx", clockRate=90000, payloadType=payload_type + 1,
            parameters={"apt": payload_type}))
        payload_type += 2
    audio = [RTCRtpCodecParameters(mimeType=mime, clockRate=8000 if pt in (0, 8, 9) else 48000,
                                   channels=channels, payloadType=pt, parameters=dict(fmtp))
             for mime, pt, channels, fmtp in _OFFER_AUDIO
             if _policy.allows("audio", mime.split("/")[1])]
    return {"audio": audio, "video": video}


def _codecs_of(parameters: list[RTCRtpCodecParameters]) -> tuple[Codec, ...]:
    rtx_for = {int(str(c.parameters["apt"])): c.payloadType for c in parameters
               if c.name.lower() == "rtx" and "apt" in c.parameters}
    return tuple(
        Codec(
            payload_type=c.payloadType or 0,
            mime_type=c.mimeType,
            clock_rate=c.clockRate,
            channels=c.channels,
            fmtp={str(k): str(v) for k, v in c.parameters.items()},
            rtx_payload_type=rtx_for.get(c.payloadType or -1),
        )
        for c in parameters
        if c.name.lower() != "rtx"
    )


def _ufrag(description: SessionDescription) -> str:
    if not description.media or description.media[0].ice is None:
        return ""
    return str(description.media[0].ice.usernameFragment or "")


def _require_rtcp_mux(sdp: str) -> str:
    """W10: every bundled section of a WHIP/WHEP answer says `a=rtcp-mux-only` (RFC 8858)."""
    return sdp.replace("a=rtcp-mux\r\n", "a=rtcp-mux\r\na=rtcp-mux-only\r\n")


def _announce_lite(sdp: str) -> str:
    """RFC 8839 §5.3: a lite agent says `a=ice-lite` at session level (after `t=`)."""
    head, sep, rest = sdp.partition("\r\nt=")
    if not sep:
        return sdp
    timing, eol, media = rest.partition("\r\n")
    return f"{head}{sep}{timing}{eol}a=ice-lite\r\n{media}"


def _offer_is_lite(sdp: str) -> bool:
    return any(line.strip() == "a=ice-lite" for line in sdp.splitlines())


def _priority(pair: aioice.ice.CandidatePair) -> int:
    """The pair's priority as the controlled side computes it (RFC 8445 §6.1.2.3)."""
    return aioice.ice.candidate_pair_priority(pair.local_candidate, pair.remote_candidate,
                                              ice_controlling=False)


class _LiteIce:
    """RFC 8445 lite agent on one aioice Connection (installed per instance by `Peer`).

    It answers the peer's checks (aioice's `request_received` authenticates them and sends
    the response, then calls `check_incoming`, replaced by ours) and sends none: the pair a
    check arrives on is valid at once, and the one the controlling peer nominates
    (USE-CANDIDATE) carries the media. A later nomination of a pair with the same or a
    higher priority moves the media to it (the peer's address changed, or it renominated);
    a lower one does not (RFC 8445 §8.1.1: the highest-priority nominated pair is used).
    Signalled remote candidates are not needed: the peer's checks say where it is.
    """

    def __init__(self, connection: aioice.ice.Connection,
                 on_nominated: Callable[[aioice.ice.CandidatePair], None]) -> None:
        self._connection = connection
        self._on_nominated = on_nominated
        self._pairs: dict[tuple[object, tuple[str, int]], aioice.ice.CandidatePair] = {}

    async def connect(self) -> None:
        """Replaces `Connection.connect`: returns once the peer has nominated a pair."""
        connection = self._connection
        connection._early_checks_done = True
        early = list(connection._early_checks)
        connection._early_checks.clear()
        for message, addr, protocol in early:
            connection.check_incoming(message, addr, protocol)
        # aioice's close() puts ICE_FAILED here, so a session closed before its peer
        # nominates anything does not leave this waiting forever.
        if await connection._check_list_state.get() != aioice.ice.ICE_COMPLETED:
            raise ConnectionError("ICE negotiation failed")

    async def add_remote_candidate(self, candidate: Candidate | None) -> None:
        """Replaces `Connection.add_remote_candidate`: a lite agent pairs nothing itself."""

    def check_incoming(self, message: stun.Message, addr: tuple[str, int],
                       protocol: aioice.ice.StunProtocol) -> None:
        """An authenticated binding request from `addr` arrived on `protocol`."""
        connection = self._connection
        key = (protocol, addr)
        pair = self._pairs.get(key)
        if pair is None:
            component = protocol.local_candidate.component
            remote = Candidate(foundation=random_string(10), component=component,
                               transport="udp",
                               priority=int(message.attributes.get("PRIORITY", 0)),
                               host=addr[0], port=addr[1], type="prflx")
            pair = aioice.ice.CandidatePair(protocol, remote)
            pair.state = aioice.ice.CandidatePair.State.SUCCEEDED
            self._pairs[key] = pair
        if "USE-CANDIDATE" not in message.attributes:
            return
        current = connection._nominated.get(pair.component)
        if current is pair or (current is not None and _priority(pair) < _priority(current)):
            return
        pair.nominated = True
        connection._nominated[pair.component] = pair
        if not connection._check_list_done:
            connection._check_list_done = True
            connection._check_list_state.put_nowait(aioice.ice.ICE_COMPLETED)
        self._on_nominated(pair)


class PeerError(Exception):
    """The offer could not be applied (no common codec, unusable transport...)."""


class Peer:
    """One WebRTC session (publisher or subscriber) driven below aiortc's track API."""

    def __init__(
        self,
        *,
        on_rtp: RtpHandler,
        on_rtcp: RtcpHandler,
        on_ready: Callable[[], None],
        on_closed: Callable[[], None],
        on_message: MessageHandler | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self._clock = clock
        self.liveness = Liveness(_ice.peer_timeout, clock())
        """When the peer was last heard from; it is dropped after `peer_timeout` of silence."""
        self._liveness_timer: asyncio.TimerHandle | None = None
        self.ice_lite = False
        """This session answered as an ICE-lite agent."""
        self._connection: aioice.ice.Connection | None = None
        self._sctp_hooked = False
        self._on_rtp = on_rtp
        self._on_rtcp = on_rtcp
        self._on_ready = on_ready
        self._on_closed = on_closed
        self.on_message = on_message
        self._channels: list[RTCDataChannel] = []
        self._dtls: RTCDtlsTransport | None = None
        self._protect: Callable[[bytes], bytes] | None = None
        self._protect_rtcp: Callable[[bytes], bytes] | None = None
        self._sendto: Callable[[bytes, Any], None] | None = None
        self._addr: Any = None
        self._ready = False
        self.was_ready = False
        """ICE and DTLS came up at some point (stays true after close)."""
        self._closed = False
        self.media: list[NegotiatedMedia] = []
        self.answer_sdp = ""
        self.local_sdp = ""
        self.local_ufrag = ""
        self.remote_ufrag = ""
        self.cname = ""
        self.sent_packets = 0
        self.sent_bytes = 0
        self._pc.on("connectionstatechange", self._state_changed)
        self._pc.on("datachannel", self._add_channel)

    @property
    def state(self) -> str:
        """The RTCPeerConnectionState: new, connecting, connected, disconnected, failed, closed."""
        return str(self._pc.connectionState)

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def has_data_channel(self) -> bool:
        """The negotiated session has an SCTP (m=application) section."""
        return self._pc.sctp is not None

    async def accept(self, offer: str, *, send: bool, ssrcs: dict[str, tuple[int, int]]) -> str:
        """Apply the remote offer and return our answer (all candidates included).

        `send` makes every section sendonly (WHEP); otherwise recvonly (WHIP). `ssrcs` maps a
        kind to the (media, rtx) SSRCs our answer announces for it: every subscriber of a
        stream uses the same ones, so the forwarded bytes are the same for all of them.
        """
        pc = self._pc
        # Two lite agents cannot connect: an ice-lite offer gets a full-ICE answer.
        self.ice_lite = _ice.lite and not _offer_is_lite(offer)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        except Exception as exc:  # aiortc raises ValueError, OperationError and others
            message = str(exc) or type(exc).__name__
            if "description send parameters" in message:
                kind = "video" if "video" in message else "audio"
                names = ", ".join(m.split("/")[1] for m in FORWARDED_CODECS[kind])
                message = f"no {kind} codec in the offer that liveion forwards ({names})"
            raise PeerError(message) from exc
        for transceiver in pc.getTransceivers():
            transceiver.direction = "sendonly" if send else "recvonly"
            if transceiver.kind in ssrcs:
                transceiver.sender._ssrc, transceiver.sender._rtx_ssrc = ssrcs[transceiver.kind]
            # per-instance overrides: aiortc's __connect looks these up at call time
            setattr(transceiver.sender, "send", self._sender_ready)  # noqa: B010
            setattr(transceiver.receiver, "receive", self._receiver_ready)  # noqa: B010
            self._hook_transport(transceiver.receiver.transport)
        if pc.sctp is not None:
            self._hook_transport(pc.sctp.transport)
            self._hook_sctp()
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        sdp = _require_rtcp_mux(pc.localDescription.sdp)
        self.answer_sdp = self.local_sdp = _announce_lite(sdp) if self.ice_lite else sdp
        self._describe(offer)
        return self.answer_sdp

    async def offer(self, *, recv: bool, send: bool,
                    ssrcs: dict[str, tuple[int, int]] | None = None,
                    data_channel: str | None = None) -> str:
        """Offerer mode (cascade): an audio+video offer, all candidates included.

        `recv` asks the remote to send (a WHEP pull), `send` announces that we send (a WHIP
        push) with the (media, rtx) SSRCs in `ssrcs` per kind. Every format the forwarder
        carries is offered; nothing is ever decoded or encoded. `data_channel` opens a
        channel with that label. Follow with `apply_answer`.
        """
        pc = self._pc
        direction = "sendrecv" if recv and send else "sendonly" if send else "recvonly"
        for kind in ("audio", "video"):
            transceiver = pc.addTransceiver(kind, direction=direction)
            if ssrcs and kind in ssrcs:
                transceiver.sender._ssrc, transceiver.sender._rtx_ssrc = ssrcs[kind]
            setattr(transceiver.sender, "send", self._sender_ready)  # noqa: B010
            setattr(transceiver.receiver, "receive", self._receiver_ready)  # noqa: B010
        if data_channel is not None:
            self._add_channel(pc.createDataChannel(data_channel))
        # createOffer reads the module's CODECS table; it never suspends, so swapping the
        # table around it is seen by this call only.
        table = getattr(aiortc_pc, "CODECS")  # noqa: B009
        setattr(aiortc_pc, "CODECS", _offer_codecs())  # noqa: B010
        try:
            offer = await pc.createOffer()
        finally:
            setattr(aiortc_pc, "CODECS", table)  # noqa: B010
        await pc.setLocalDescription(offer)
        self.local_sdp = pc.localDescription.sdp
        return self.local_sdp

    async def apply_answer(self, answer: str) -> None:
        """Offerer mode: apply the remote answer; media flows once ICE and DTLS are up."""
        pc = self._pc
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        except Exception as exc:  # aiortc raises ValueError, OperationError and others
            raise PeerError(f"cannot use the remote answer: {exc or type(exc).__name__}") \
                from exc
        # BUNDLE is resolved by setRemoteDescription: hook the transport that survived,
        # before aiortc's connect task (scheduled, not yet run) starts DTLS on it.
        for transceiver in pc.getTransceivers():
            self._hook_transport(transceiver.receiver.transport)
        if pc.sctp is not None:
            self._hook_transport(pc.sctp.transport)
            self._hook_sctp()
        self._describe(answer)

    def _describe(self, remote_sdp: str) -> None:
        remote = SessionDescription.parse(remote_sdp)
        local = SessionDescription.parse(self.local_sdp)
        self.local_ufrag = _ufrag(local)
        self.remote_ufrag = _ufrag(remote)
        for transceiver in self._pc.getTransceivers():
            section = next(m for m in remote.media if m.rtp.muxId == transceiver.mid)
            rtx = {int(s) for g in section.ssrc_group if g.semantic == "FID"
                   for s in g.items[1:]}
            self.media.append(NegotiatedMedia(
                kind=transceiver.kind,
                mid=transceiver.mid or "",
                codecs=_codecs_of(transceiver._codecs),
                remote_ssrcs=tuple(s.ssrc for s in section.ssrc if s.ssrc not in rtx),
                remote_rtx_ssrcs=tuple(sorted(rtx)),
            ))
        self.cname = next((s.cname for m in local.media for s in m.ssrc if s.cname), "")

    def _hook_transport(self, dtls: RTCDtlsTransport) -> None:
        if self._dtls is dtls:
            return
        self._dtls = dtls
        on_rtp, on_rtcp = self._on_rtp, self._on_rtcp
        heard, clock = self.liveness.heard, self._clock

        # Both run once per received packet: one clock read and one store, nothing more.
        async def handle_rtp(data: bytes, arrival_time_ms: int) -> None:
            heard(clock())
            on_rtp(data)

        async def handle_rtcp(data: bytes) -> None:
            heard(clock())
            on_rtcp(data)

        setattr(dtls, "_handle_rtp_data", handle_rtp)  # noqa: B010
        setattr(dtls, "_handle_rtcp_data", handle_rtcp)  # noqa: B010
        self._hook_ice(dtls.transport._connection)

    def _hook_ice(self, connection: aioice.ice.Connection) -> None:
        """Per-instance ICE replacements (see the module docstring); before `connect` runs."""
        if self._connection is connection:
            return
        self._connection = connection
        heard, clock = self.liveness.heard, self._clock
        if self.ice_lite:
            lite = _LiteIce(connection, self._pair_nominated)
            inner = lite.check_incoming
            setattr(connection, "connect", lite.connect)  # noqa: B010
            setattr(connection, "add_remote_candidate", lite.add_remote_candidate)  # noqa: B010
        else:
            inner = connection.check_incoming
            setattr(connection, "query_consent",  # noqa: B010
                    lambda: self._query_consent(connection))

        def check_incoming(message: stun.Message, addr: tuple[str, int],
                           protocol: aioice.ice.StunProtocol) -> None:
            heard(clock())  # only authenticated binding requests get here
            inner(message, addr, protocol)

        setattr(connection, "check_incoming", check_incoming)  # noqa: B010

    def _hook_sctp(self) -> None:
        """Data-channel traffic (DTLS application data) counts as hearing from the peer."""
        sctp = self._pc.sctp
        if sctp is None or self._sctp_hooked:
            return
        self._sctp_hooked = True
        inner = sctp._handle_data
        heard, clock = self.liveness.heard, self._clock

        async def handle_data(data: bytes) -> None:
            heard(clock())
            await inner(data)

        setattr(sctp, "_handle_data", handle_data)  # noqa: B010

    async def _query_consent(self, connection: aioice.ice.Connection) -> None:
        """Full ICE: RFC 7675 consent checks every `consent_interval` (randomised 0.8-1.2x,
        as aioice does). An answer counts as hearing from the peer; a missing one closes
        nothing by itself, because a peer that keeps sending checks or media (FFmpeg
        answers none) is still there. The liveness timer decides."""
        assert connection.remote_password is not None
        key = connection.remote_password.encode("utf8")
        while True:
            await asyncio.sleep(_ice.consent_interval * (0.8 + 0.4 * random.random()))
            for pair in list(connection._nominated.values()):
                request = connection.build_request(pair, nominate=False)
                try:
                    await pair.protocol.request(request, pair.remote_addr, integrity_key=key,
                                                retransmissions=0)
                except stun.TransactionError:
                    continue
                self.liveness.heard(self._clock())

    def _pair_nominated(self, pair: aioice.ice.CandidatePair) -> None:
        """Lite: the peer nominated `pair`; once media flows, move our sending onto it."""
        if not self._ready or pair.protocol.transport is None:
            return
        logger.info("peer moved to %s:%s", *pair.remote_addr)
        self._sendto = pair.protocol.transport.sendto
        self._addr = pair.remote_addr

    async def _sender_ready(self, parameters: object) -> None:
        self._media_ready()

    async def _receiver_ready(self, parameters: object) -> None:
        self._media_ready()

    def _media_ready(self) -> None:
        """DTLS is up: bind the SRTP session and the nominated UDP pair for sync sending."""
        if self._ready or self._dtls is None:
            return
        dtls = self._dtls
        connection = dtls.transport._connection
        pair = connection._nominated.get(1)
        if pair is None or dtls._tx_srtp is None:
            logger.warning("media ready without a nominated pair or SRTP keys")
            return
        self._protect = dtls._tx_srtp.protect
        self._protect_rtcp = dtls._tx_srtp.protect_rtcp
        transport = pair.protocol.transport
        if transport is None:  # the server gathers host candidates only: never a relay
            logger.warning("nominated ICE pair has no UDP transport")
            return
        self._sendto = transport.sendto
        self._addr = pair.remote_addr
        self._ready = self.was_ready = True
        self._on_ready()

    def send_rtp(self, packet: bytes) -> None:
        """Protect and send one RTP packet now (hot path: no await, no allocation besides SRTP)."""
        if self._sendto is None or self._protect is None:
            return
        data = self._protect(packet)
        self._sendto(data, self._addr)
        self.sent_packets += 1
        self.sent_bytes += len(data)

    def send_rtcp(self, packet: bytes) -> None:
        if self._sendto is None or self._protect_rtcp is None:
            return
        try:
            self._sendto(self._protect_rtcp(packet), self._addr)
        except Exception as exc:  # a closed socket or an SRTP error must not break a timer loop
            logger.debug("RTCP send failed: %s", exc)

    async def add_candidates(self, fragment: SdpFragment) -> None:
        """Trickle ICE: add the peer's candidates (all sections share one bundled transport)."""
        transceivers = self._pc.getTransceivers()
        if not transceivers:
            return
        ice = transceivers[0].receiver.transport.transport
        for _mid, line in fragment.candidates:
            try:
                candidate = candidate_from_sdp(line)
            except (ValueError, IndexError):
                continue  # RFC 8840: unusable candidates are dropped, the rest processed
            candidate.sdpMid = transceivers[0].mid
            await ice.addRemoteCandidate(candidate)
        if fragment.end_of_candidates:
            await ice.addRemoteCandidate(None)

    # ---- data channels -------------------------------------------------------------------

    def _add_channel(self, channel: RTCDataChannel) -> None:
        """A channel the remote opened (or we created): relay its messages by label."""
        self._channels.append(channel)

        def message(data: str | bytes) -> None:
            if self.on_message is not None:
                self.on_message(channel.label, data)

        def opened() -> None:
            # A session with data channels only never starts RTP: it is up once SCTP is.
            if not self._ready and not self._pc.getTransceivers() and not self._closed:
                self._ready = self.was_ready = True
                self._on_ready()

        def closed() -> None:
            if channel in self._channels:
                self._channels.remove(channel)

        channel.on("message", message)
        channel.on("close", closed)
        if channel.readyState == "open":
            opened()
        else:
            channel.on("open", opened)

    def send_message(self, label: str, data: str | bytes) -> bool:
        """Send on the open channel named `label`, else on the first open one; False when
        this peer has no open channel (the message is dropped)."""
        open_channels = [c for c in self._channels if c.readyState == "open"]
        channel = next((c for c in open_channels if c.label == label),
                       open_channels[0] if open_channels else None)
        if channel is None or channel.bufferedAmount > MAX_CHANNEL_BUFFERED:
            return False
        try:
            channel.send(data)
        except Exception as exc:  # closing under us: the message is lost, the caller goes on
            logger.debug("data channel send failed: %s", exc)
            return False
        return True

    def _state_changed(self) -> None:
        state = self._pc.connectionState
        if state == "connected" and self._liveness_timer is None and not self._closed:
            self.liveness.heard(self._clock())
            self._liveness_timer = asyncio.get_running_loop().call_later(
                self.liveness.timeout, self._check_liveness)
        if state in ("failed", "closed") and not self._closed:
            self._closed = True
            self._stop_liveness()
            self._on_closed()

    def _check_liveness(self) -> None:
        """One timer per peer, re-armed for when it would expire: no per-packet work."""
        self._liveness_timer = None
        if self._closed:
            return
        now = self._clock()
        remaining = self.liveness.remaining(now)
        if remaining > 0:
            self._liveness_timer = asyncio.get_running_loop().call_later(
                remaining, self._check_liveness)
            return
        logger.info("nothing from the peer for %.1f s: it is gone",
                    now - self.liveness.last_heard)
        self._closed = True
        self._on_closed()

    def _stop_liveness(self) -> None:
        if self._liveness_timer is not None:
            self._liveness_timer.cancel()
            self._liveness_timer = None

    async def close(self) -> None:
        self._ready = False
        self._sendto = None
        self._closed = True
        self._stop_liveness()
        await self._pc.close()
