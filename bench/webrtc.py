"""aiortc plumbing shared by the benchmark publisher and subscribers.

Like liveion/sfu/peer.py, this reaches below aiortc's track API (private attributes of
aiortc 1.16.0 / aioice 0.13.0, pinned in pyproject.toml): the load generator must neither
encode nor decode.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
)
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.rtcdtlstransport import RTCDtlsTransport

SDP_TYPE = "application/sdp"


class SignalingError(RuntimeError):
    """The server refused an offer."""


def new_peer_connection() -> RTCPeerConnection:
    """One ICE transport for everything (max-bundle): fewer sockets per benchmark peer."""
    return RTCPeerConnection(RTCConfiguration(iceServers=[],
                                              bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))


def prefer_codecs(transceiver: RTCRtpTransceiver, sending: bool) -> None:
    """H264 (packetization-mode 1) for video, Opus for audio; no RTX, no other codec."""
    kind = transceiver.kind
    capabilities = (RTCRtpSender if sending else RTCRtpReceiver).getCapabilities(kind)
    if capabilities is None:
        raise ValueError(f"aiortc has no {kind} codecs")
    if kind == "video":
        codecs = [c for c in capabilities.codecs if c.mimeType.lower() == "video/h264"
                  and c.parameters.get("packetization-mode") == "1"]
        codecs.sort(key=lambda c: c.parameters.get("profile-level-id") != "42e01f")
        if sending:
            codecs = codecs[:1]
    else:
        codecs = [c for c in capabilities.codecs if c.mimeType.lower() == "audio/opus"]
    transceiver.setCodecPreferences(codecs)


def dtls_transports(pc: RTCPeerConnection) -> list[RTCDtlsTransport]:
    found: list[RTCDtlsTransport] = []
    for transceiver in pc.getTransceivers():
        dtls = transceiver.receiver.transport
        if all(dtls is not other for other in found):
            found.append(dtls)
    return found


def stun_protocols(pc: RTCPeerConnection) -> list[Any]:
    """The aioice `StunProtocol`s (one per gathered UDP socket) under a peer connection."""
    protocols: list[Any] = []
    for dtls in dtls_transports(pc):
        protocols.extend(dtls.transport._connection._protocols)
    return protocols


@dataclass(frozen=True, slots=True)
class SrtpSender:
    """Synchronous send path of a connected DTLS transport (what liveion's Peer does)."""

    protect: Callable[[bytes], bytes]
    sendto: Callable[[bytes, Any], None]
    addr: Any

    @classmethod
    def of(cls, dtls: RTCDtlsTransport) -> SrtpSender:
        pair = dtls.transport._connection._nominated[1]
        return cls(dtls._tx_srtp.protect, pair.protocol.transport.sendto, pair.remote_addr)

    def send(self, packet: bytes) -> int:
        data = self.protect(packet)
        self.sendto(data, self.addr)
        return len(data)


def set_receive_buffer(protocol: Any, size: int) -> None:
    """Give a generator socket room for bursts (e.g. a keyframe to many subscribers)."""
    import socket

    sock = protocol.transport.get_extra_info("socket")
    if sock is not None and size > 0:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


async def post_offer(client: httpx.AsyncClient, path: str, sdp: str) -> tuple[str, str]:
    """POST an offer (WHIP or WHEP); returns (answer SDP, Location)."""
    response = await client.post(path, content=sdp, headers={"Content-Type": SDP_TYPE})
    if response.status_code != 201:
        raise SignalingError(f"POST {path}: {response.status_code} {response.text[:200]}")
    return response.text, response.headers["location"]


async def delete_session(client: httpx.AsyncClient, location: str) -> None:
    with contextlib.suppress(httpx.HTTPError):  # the server may be gone at teardown
        await client.delete(location)
