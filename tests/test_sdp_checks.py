"""Offer checks and trickle fragments (sans-IO)."""

from __future__ import annotations

import pytest

from liveion.sfu.sdp import Role, SdpError, check_offer, parse_sdpfrag

SESSION = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n"
AUDIO = ("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:u1\r\n"
         "a=ice-pwd:p1p1p1p1p1p1p1p1p1p1p1\r\na=fingerprint:sha-256 AA\r\na={dir}\r\n"
         "a=msid:s1 a\r\na=rtpmap:111 opus/48000/2\r\n")
VIDEO = ("m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=ice-ufrag:u1\r\n"
         "a=ice-pwd:p1p1p1p1p1p1p1p1p1p1p1\r\na=fingerprint:sha-256 AA\r\na={dir}\r\n"
         "a=msid:{stream} v\r\na=rtpmap:96 VP8/90000\r\n")


def offer(audio: str = "sendonly", video: str = "sendonly", stream: str = "s1") -> str:
    return SESSION + AUDIO.format(dir=audio) + VIDEO.format(dir=video, stream=stream)


def test_valid_publish_and_subscribe_offers() -> None:
    summary = check_offer(offer(), Role.PUBLISH)
    assert [m.kind for m in summary.media] == ["audio", "video"]
    assert (summary.ice_ufrag, summary.ice_pwd) == ("u1", "p1p1p1p1p1p1p1p1p1p1p1")
    check_offer(offer("recvonly", "recvonly"), Role.SUBSCRIBE)


@pytest.mark.parametrize(("text", "role", "status"), [
    ("", Role.PUBLISH, 400),
    ("hello", Role.PUBLISH, 400),
    (SESSION + "garbage line\r\n", Role.PUBLISH, 400),
    (SESSION, Role.PUBLISH, 422),
    (offer("recvonly", "recvonly"), Role.PUBLISH, 422),
    (offer("inactive", "sendonly"), Role.PUBLISH, 422),
    (offer(stream="other"), Role.PUBLISH, 422),
    (SESSION + VIDEO.format(dir="sendonly", stream="s") * 2, Role.PUBLISH, 422),
    (offer(), Role.SUBSCRIBE, 422),
    (offer().replace("a=ice-ufrag:u1\r\n", ""), Role.PUBLISH, 400),
    (offer().replace("a=fingerprint:sha-256 AA\r\n", ""), Role.PUBLISH, 400),
    (offer().replace("m=video 9", "m=video 0"), Role.PUBLISH, 422),
], ids=["empty", "not-sdp", "bad-line", "no-media", "whip-recvonly", "whip-inactive",
        "two-msids", "two-videos", "whep-sendonly", "no-ufrag", "no-fingerprint", "port-0"])
def test_refused_offers(text: str, role: Role, status: int) -> None:
    with pytest.raises(SdpError) as refused:
        check_offer(text, role)
    assert refused.value.status == status and refused.value.reason


def test_sdpfrag_candidates_and_restart_credentials() -> None:
    fragment = parse_sdpfrag(
        "a=ice-ufrag:new\r\na=ice-pwd:pw\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n"
        "a=candidate:1 1 udp 2113937151 127.0.0.1 5000 typ host\r\na=end-of-candidates\r\n")
    assert fragment.ice_ufrag == "new" and fragment.end_of_candidates
    assert fragment.candidates == [("0", "1 1 udp 2113937151 127.0.0.1 5000 typ host")]
    with pytest.raises(SdpError):
        parse_sdpfrag("a=candidate:1 1 udp\r\n")
