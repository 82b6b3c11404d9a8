"""The per-track fan-out (sans-IO): groups, keyframe gating, continuity, NACK answers."""

from __future__ import annotations

from aiortc.rtp import RtpPacket

from liveion.rtp.header import parse_rtp
from liveion.rtp.rtcp import SenderReport, parse_compound
from liveion.sfu.codec import Codec
from liveion.sfu.forwarder import Leg, TrackForwarder

H264 = Codec(102, "video/H264", 90000, fmtp={"packetization-mode": "1",
                                              "profile-level-id": "42e01f"},
             rtx_payload_type=103)
VP8 = Codec(96, "video/VP8", 90000, rtx_payload_type=97)
IDR = bytes([0x65, 0x88])
DELTA = bytes([0x41, 0x9A])


def packet(seq: int, ts: int, payload: bytes, pt: int = 102, ssrc: int = 5) -> bytes:
    return RtpPacket(payload_type=pt, sequence_number=seq, timestamp=ts, ssrc=ssrc,
                     payload=payload).serialize()


def feed(track: TrackForwarder, data: bytes, now: float = 0.0) -> None:
    track.on_packet(data, parse_rtp(data), now)


def make_leg(codecs: tuple[Codec, ...], sink: list[bytes]) -> Leg:
    return Leg("s", codecs, sink.append)


def test_same_payload_type_subscribers_share_one_group_and_bytes() -> None:
    track = TrackForwarder("video", ssrc=1000, rtx_ssrc=2000)
    track.attach_source((H264,))
    sinks: list[list[bytes]] = [[], [], []]
    sub_h264 = Codec(125, "video/H264", 90000, fmtp=dict(H264.fmtp))
    legs = [make_leg((sub_h264,), sinks[0]), make_leg((sub_h264,), sinks[1]),
            make_leg((Codec(100, "video/H264", 90000, fmtp=dict(H264.fmtp)),), sinks[2])]
    for leg in legs:
        track.add_leg(leg)
    assert len(track.groups) == 2
    feed(track, packet(10, 900, DELTA))  # before a keyframe: nothing for new legs
    assert all(not sink for sink in sinks)
    feed(track, packet(11, 3900, IDR))
    feed(track, packet(12, 6900, DELTA))
    assert sinks[0] == sinks[1] and len(sinks[0]) == 2
    assert sinks[0][0] is sinks[1][0], "one rewrite shared by the group"
    assert [parse_rtp(p).payload_type for p in sinks[2]] == [100, 100]
    assert {parse_rtp(p).ssrc for p in sinks[0] + sinks[2]} == {1000}


def test_subscriber_without_the_codec_receives_nothing() -> None:
    track = TrackForwarder("video", 1, 2)
    track.attach_source((H264,))
    sink: list[bytes] = []
    leg = make_leg((Codec(96, "video/VP8", 90000),), sink)
    track.add_leg(leg)
    feed(track, packet(1, 0, IDR))
    assert sink == [] and leg in track.unassigned


def test_sequence_and_timeline_continue_across_a_new_source() -> None:
    track = TrackForwarder("video", 1, 2)
    track.attach_source((H264,))
    sink: list[bytes] = []
    track.add_leg(make_leg((H264, VP8), sink))
    feed(track, packet(100, 5000, IDR), now=0.0)
    feed(track, packet(101, 8000, DELTA), now=0.033)
    track.attach_source((VP8,))
    feed(track, packet(40000, 123, b"\x10\x00\x9d\x01\x2a", pt=96, ssrc=9), now=1.0)
    seqs = [parse_rtp(p).sequence for p in sink]
    stamps = [parse_rtp(p).timestamp for p in sink]
    assert seqs == [100, 101, 102]
    assert stamps[2] - stamps[1] >= 0.9 * 90000
    assert parse_rtp(sink[2]).payload_type == 96


def test_nack_is_answered_from_the_buffer_as_rtx() -> None:
    track = TrackForwarder("video", 1, 2)
    track.attach_source((H264,))
    sink: list[bytes] = []
    leg = make_leg((H264,), sink)
    track.add_leg(leg)
    feed(track, packet(7, 0, IDR))
    feed(track, packet(8, 0, DELTA))
    sink.clear()
    track.retransmit(leg, (8, 999))
    assert len(sink) == 1
    rtx = parse_rtp(sink[0])
    assert (rtx.payload_type, rtx.ssrc) == (103, 2)
    assert sink[0][rtx.payload_offset : rtx.payload_offset + 2] == (8).to_bytes(2, "big")


def test_sender_report_follows_the_publishers_clock() -> None:
    track = TrackForwarder("video", 1, 2)
    track.attach_source((H264,))
    leg = make_leg((H264,), [])
    track.add_leg(leg)
    feed(track, packet(1, 1000, IDR), now=10.0)
    track.on_sender_report(ntp=5 << 32, rtp_ts=1000, now=10.0)
    report = parse_compound(track.sender_report(leg, now=11.0, wall=0.0) or b"")[0]
    assert isinstance(report, SenderReport)
    assert report.ntp == 6 << 32 and report.rtp_ts == 1000 + 90000
    assert report.packets == 1
