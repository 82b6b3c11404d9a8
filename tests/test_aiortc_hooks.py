"""liveion/sfu/peer.py hooks into aiortc internals; this fails loudly if an upgrade moves them."""

from __future__ import annotations

import inspect
from importlib.metadata import version

import aioice.ice
import aiortc.rtcpeerconnection as aiortc_pc
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsTransport
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender


def test_pinned_versions() -> None:
    assert version("aiortc") == "1.16.0"
    assert version("aioice") == "0.13.0"


def test_hooked_attributes_exist() -> None:
    assert inspect.iscoroutinefunction(RTCDtlsTransport._handle_rtp_data)
    assert inspect.iscoroutinefunction(RTCDtlsTransport._handle_rtcp_data)
    assert inspect.iscoroutinefunction(RTCRtpSender.send)
    assert inspect.iscoroutinefunction(RTCRtpReceiver.receive)
    assert callable(RTCCertificate._create_ssl_context)
    assert callable(aiortc_pc.find_common_codecs)
    assert isinstance(aioice.ice.CONSENT_INTERVAL, int | float)
    assert callable(aioice.ice.get_host_addresses)


def test_aiortc_still_calls_what_we_replace() -> None:
    """The peer connection looks these up at call time, so per-instance overrides work."""
    source = inspect.getsource(aiortc_pc.RTCPeerConnection)
    assert "await transceiver.sender.send(" in source
    assert "await transceiver.receiver.receive(" in source
    assert "find_common_codecs(CODECS[media.kind], media.rtp.codecs)" in source
    dtls = inspect.getsource(RTCDtlsTransport)
    assert "await self._handle_rtp_data(data, arrival_time_ms=arrival_time_ms)" in dtls
    assert "await self._handle_rtcp_data(data)" in dtls
    assert "self._tx_srtp = Session(tx_policy)" in dtls
    ice = inspect.getsource(aioice.ice.Connection)
    assert "self._nominated" in ice and "CONSENT_INTERVAL" in ice
