"""Peers whose DTLS server uses an RSA certificate (GStreamer webrtcbin, devices) connect.

aiortc alone offers only ECDSA cipher suites. The publisher below stands in for such a peer:
it is an aiortc client with an RSA certificate whose cipher list allows RSA suites.
"""

from __future__ import annotations

from aiortc.rtcdtlstransport import RTCCertificate, generate_certificate
from clients import play, publish
from conftest import LiveionProcess
from cryptography.hazmat.primitives.asymmetric import rsa

from liveion.sfu.peer import DTLS_CIPHERS


def rsa_certificate(cls: type[RTCCertificate]) -> RTCCertificate:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return cls(key=key, cert=generate_certificate(key))


async def test_publisher_with_rsa_certificate(liveion: LiveionProcess, monkeypatch) -> None:
    monkeypatch.setattr(RTCCertificate, "generateCertificate", classmethod(rsa_certificate))
    original = RTCCertificate._create_ssl_context

    def rsa_capable(self, srtp_profiles):  # type: ignore[no-untyped-def]
        ctx = original(self, srtp_profiles)
        ctx.set_cipher_list(DTLS_CIPHERS)
        return ctx

    monkeypatch.setattr(RTCCertificate, "_create_ssl_context", rsa_capable)
    publisher = await publish(liveion.url, "rsa")  # offer actpass: we become the DTLS client
    assert "a=setup:active" in publisher.response.text
    player = await play(liveion.url, "rsa")
    try:
        assert await player.wait_frames("video", 20) >= 20, liveion.log()
    finally:
        await player.close()
        await publisher.close()
