"""Offer checks and trickle fragments (sans-IO)."""

from __future__ import annotations

import pytest

from liveion.sfu.sdp import Role, SdpError, check_offer, parse_sdpfrag, sdp_number

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


# ---- one section per kind, numbers in ASCII (issue 11) ------------------------------------

APPLICATION = ("m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n"
               "a=mid:2\r\na=ice-ufrag:u1\r\na=ice-pwd:p1p1p1p1p1p1p1p1p1p1p1\r\n"
               "a=fingerprint:sha-256 AA\r\na=sctp-port:5000\r\n")


@pytest.mark.parametrize(("text", "role", "kind"), [
    (SESSION + VIDEO.format(dir="recvonly", stream="s") * 2, Role.SUBSCRIBE, "video"),
    (SESSION + AUDIO.format(dir="recvonly") * 2 + VIDEO.format(dir="recvonly", stream="s"),
     Role.SUBSCRIBE, "audio"),
    (offer("recvonly", "recvonly") + APPLICATION * 2, Role.SUBSCRIBE, "application"),
    (offer() + APPLICATION * 2, Role.PUBLISH, "application"),
    (SESSION + VIDEO.format(dir="recvonly", stream="s") * 200, Role.SUBSCRIBE, "video"),
], ids=["whep-two-videos", "whep-two-audios", "whep-two-data", "whip-two-data",
        "whep-200-videos"])
def test_at_most_one_section_of_each_kind(text: str, role: Role, kind: str) -> None:
    """Two sections of one kind kept a whole peer connection alive after DELETE (one leg
    per kind was stored), and 200 of them cost ~26 MiB: one bound for every offer."""
    with pytest.raises(SdpError) as refused:
        check_offer(text, role)
    assert refused.value.status == 422
    assert f"{kind} section" in refused.value.reason and "at most one" in refused.value.reason


def test_unknown_section_kinds_are_refused() -> None:
    text = offer("recvonly", "recvonly") + "m=text 9 RTP/AVP 98\r\na=mid:3\r\n"
    with pytest.raises(SdpError) as refused:
        check_offer(text, Role.SUBSCRIBE)
    assert refused.value.status == 422 and "m=text" in refused.value.reason


def test_simulcast_uses_one_video_section_and_is_accepted() -> None:
    simulcast = offer().replace("a=rtpmap:96 VP8/90000\r\n", "a=rtpmap:96 VP8/90000\r\n"
                                "a=rid:h send\r\na=rid:l send\r\na=simulcast:send h;l\r\n")
    assert [m.kind for m in check_offer(simulcast, Role.PUBLISH).media] == ["audio", "video"]
    check_offer(offer("recvonly", "recvonly") + APPLICATION, Role.SUBSCRIBE)


@pytest.mark.parametrize("port", ["\u00b2", "\u0663", "\uff19", "9\u00b2", "-9", "+9", "",
                                  "99999999999999999999", "65536"])
def test_sdp_numbers_are_ascii_digits_only(port: str) -> None:
    """`'²'.isdigit()` is true and `int('²')` raises: a 500 before; `int('٣')` is 3."""
    text = offer().replace("m=video 9 ", f"m=video {port} ")
    with pytest.raises(SdpError) as refused:
        check_offer(text, Role.PUBLISH)
    assert refused.value.status == 400 and "m= line" in refused.value.reason


@pytest.mark.parametrize("formats", ["\u0669\u0666", "96 x", "96 256", ""])
def test_payload_types_in_the_m_line_are_numbers(formats: str) -> None:
    text = offer().replace("SAVPF 96\r\n", f"SAVPF {formats}\r\n")
    with pytest.raises(SdpError) as refused:
        check_offer(text, Role.PUBLISH)
    assert refused.value.status == 400 and "m= line" in refused.value.reason


def test_sdp_number_parser() -> None:
    assert sdp_number("0", 9) == 0 and sdp_number("65535", 65535) == 65535
    for bad in ("\u00b2", "\u0663", "", " 1", "1 ", "1_0", "0x1", "65536", "9" * 5000):
        assert sdp_number(bad, 65535) is None, bad
