"""liveion/sfu/peer.py hooks into aiortc internals; this fails loudly if an upgrade moves them."""

from __future__ import annotations

import asyncio
import inspect
from importlib.metadata import version

import aioice.ice
import aiortc.rtcpeerconnection as aiortc_pc
from aioice.candidate import Candidate
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsTransport
from aiortc.rtcicetransport import RTCIceTransport
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtcsctptransport import RTCSctpTransport


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
    assert callable(aioice.ice.get_host_addresses)
    assert inspect.iscoroutinefunction(RTCSctpTransport._handle_data)


def test_aioice_connection_members_the_ice_hooks_use() -> None:
    """ICE-lite and the receive-side liveness replace or read these per Connection."""
    connection = aioice.ice.Connection(ice_controlling=False)
    for name in ("connect", "query_consent", "add_remote_candidate"):
        assert inspect.iscoroutinefunction(getattr(connection, name)), name
    assert callable(connection.check_incoming) and callable(connection.build_request)
    assert connection._nominated == {} and connection._early_checks_done is False
    assert len(connection._early_checks) == 0 and connection._check_list_done is False
    assert isinstance(connection._check_list_state, asyncio.Queue)
    assert connection._protocols == []
    assert (aioice.ice.ICE_COMPLETED, aioice.ice.ICE_FAILED) == (1, 2)
    assert aioice.ice.CandidatePair.State.SUCCEEDED.name == "SUCCEEDED"
    pair_init = inspect.signature(aioice.ice.CandidatePair)
    assert list(pair_init.parameters) == ["protocol", "remote_candidate"]
    assert "_network_host" in inspect.getsource(Candidate.__init__)


def test_aioice_still_calls_what_the_ice_hooks_replace() -> None:
    ice = inspect.getsource(aioice.ice.Connection)
    # request_received authenticates, answers, then hands the check on at call time
    assert "self.check_incoming(message, addr, protocol)" in ice
    assert "message.check_message_integrity(self.local_password" in ice
    assert "self._query_consent_task = asyncio.create_task(self.query_consent())" in ice
    # close() ends a connect() that is still waiting for a nomination
    assert "self._check_list_state.put_nowait(ICE_FAILED)" in ice
    assert "self._nominated.clear()" in ice
    stun_protocol = inspect.getsource(aioice.ice.StunProtocol)
    assert "self.receiver.request_received(message, addr, self)" in stun_protocol
    ice_transport = inspect.getsource(RTCIceTransport)
    assert "await self._connection.connect()" in ice_transport
    assert "await self._connection.add_remote_candidate(" in ice_transport
    assert "self._connection.remote_password = remoteParameters.password" in ice_transport
    dtls = inspect.getsource(RTCDtlsTransport)
    assert "await self._data_receiver._handle_data(data)" in dtls
    assert "connectionState" in inspect.getsource(aiortc_pc.RTCPeerConnection)


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
    assert "self._nominated" in ice
