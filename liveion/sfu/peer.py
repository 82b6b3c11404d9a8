"""The aiortc adapter: the only module that reaches into aiortc's internals.

aiortc supplies ICE, DTLS, SRTP and SDP. Its track API decodes and encodes frames, so
we use it below that layer:

- each transceiver's `sender.send` / `receiver.receive` are replaced per instance, so
  aiortc never starts its encode/decode loops nor its own RTCP (its sender reports would
  carry zero timestamps);
- the bundled DTLS transport's `_handle_rtp_data` / `_handle_rtcp_data` hand plaintext
  packets straight to our handlers;
- sending protects with the transport's SRTP session and writes to the nominated ICE
  pair's UDP socket synchronously: no task and no await per packet.

A peer normally answers a WHIP/WHEP offer (`accept`). For cascading between nodes it can
also offer (`offer` then `apply_answer`): the same hooks apply, only the order differs.
Data channels (SCTP) are aiortc's own; the peer exposes their messages by label.

aiortc is pinned exactly in pyproject.toml; `tests/test_aiortc_hooks.py` fails loudly if an
upgrade moves anything used here.
"""

from __future__ import annotations

import copy
import ipaddress
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aioice.ice
import aiortc.rtcpeerconnection as aiortc_pc
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcdatachannel import RTCDataChannel
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsTransport, SRTPProtectionProfile
from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpCodecParameters
from aiortc.sdp import SessionDescription, candidate_from_sdp
from OpenSSL import SSL

from .codec import FORWARDED_CODECS, SUPPORTED_FEEDBACK, Codec
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


def install(
    *,
    ice_udp_addrs: Iterable[str] = ("auto",),
    consent_interval_ms: int = 5000,
    policy: CodecPolicy | None = None,
) -> None:
    """Apply the process-wide aiortc/aioice settings; called once at startup."""
    global _policy
    _policy = policy or CodecPolicy()
    aiortc_pc.find_common_codecs = _find_common_codecs
    setattr(RTCCertificate, "_create_ssl_context", _create_ssl_context)  # noqa: B010
    setattr(aioice.ice, "CONSENT_INTERVAL", consent_interval_ms / 1000)  # noqa: B010
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
    ) -> None:
        self._pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
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
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        self.answer_sdp = self.local_sdp = _require_rtcp_mux(pc.localDescription.sdp)
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

        async def handle_rtp(data: bytes, arrival_time_ms: int) -> None:
            on_rtp(data)

        async def handle_rtcp(data: bytes) -> None:
            on_rtcp(data)

        setattr(dtls, "_handle_rtp_data", handle_rtp)  # noqa: B010
        setattr(dtls, "_handle_rtcp_data", handle_rtcp)  # noqa: B010

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
        if self._pc.connectionState in ("failed", "closed") and not self._closed:
            self._closed = True
            self._on_closed()

    async def close(self) -> None:
        self._ready = False
        self._sendto = None
        self._closed = True
        await self._pc.close()
