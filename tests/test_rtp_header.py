"""RTP header view and rewrite: golden bytes and property tests."""

from __future__ import annotations

import struct

import pytest
from aiortc.rtp import RtpPacket
from hypothesis import given
from hypothesis import strategies as st

from liveion.rtp.header import (
    RtpError,
    build_forwarded,
    build_rtx,
    find_extension,
    parse_rtp,
    sequence_of,
    unwrap_rtx,
)

GOLDEN = bytes.fromhex(
    "90e1"        # V=2, X=1, M=1, PT=97
    "1234"        # seq
    "0000abcd"    # ts
    "deadbeef"    # ssrc
    "bede0002"    # one-byte extensions, 2 words
    "10" "61"     # id 1 len 1: "a"
    "22" "616263" # id 2 len 3: "abc"
    "0000"        # padding
    "cafe"        # payload
)


def test_parse_golden_packet() -> None:
    header = parse_rtp(GOLDEN)
    assert (header.marker, header.payload_type, header.sequence) == (True, 97, 0x1234)
    assert (header.timestamp, header.ssrc) == (0xABCD, 0xDEADBEEF)
    assert GOLDEN[header.payload_offset : header.payload_end] == b"\xca\xfe"
    assert find_extension(GOLDEN, header, 1) == b"a"
    assert find_extension(GOLDEN, header, 2) == b"abc"
    assert find_extension(GOLDEN, header, 3) is None


def test_forwarded_packet_drops_extensions_and_rewrites_fields() -> None:
    header = parse_rtp(GOLDEN)
    out = build_forwarded(GOLDEN, header, 102, 7, 99, 0x01020304)
    assert out == bytes.fromhex("80e6" "0007" "00000063" "01020304" "cafe")
    parsed = RtpPacket.parse(out)  # an independent parser agrees
    assert (parsed.payload_type, parsed.sequence_number, parsed.ssrc) == (102, 7, 0x01020304)
    assert parsed.marker == 1 and parsed.payload == b"\xca\xfe"


def test_rtx_wraps_and_unwraps() -> None:
    media = build_forwarded(GOLDEN, parse_rtp(GOLDEN), 96, 500, 1000, 11)
    rtx = build_rtx(media, 97, 3, 22)
    parsed = parse_rtp(rtx)
    fields = (parsed.payload_type, parsed.sequence, parsed.ssrc, parsed.timestamp)
    assert fields == (97, 3, 22, 1000)
    assert rtx[parsed.payload_offset : parsed.payload_offset + 2] == struct.pack("!H", 500)
    assert unwrap_rtx(rtx, parsed, 96, 11) == media
    assert sequence_of(media) == 500


@pytest.mark.parametrize("data", [b"", b"\x80" * 11, b"\x00" * 12,
                                  bytes.fromhex("9000000100000001000000010000"),
                                  bytes.fromhex("a00000010000000100000001")])
def test_malformed_packets_raise_rtp_error(data: bytes) -> None:
    with pytest.raises(RtpError):
        parse_rtp(data)


@given(st.binary(max_size=64))
def test_parse_never_raises_anything_but_rtp_error(data: bytes) -> None:
    try:
        header = parse_rtp(data)
    except RtpError:
        return
    assert 12 <= header.payload_offset <= header.payload_end <= len(data)
    find_extension(data, header, 1)


@given(pt=st.integers(0, 127), seq=st.integers(0, 0xFFFF), ts=st.integers(0, 0xFFFFFFFF),
       ssrc=st.integers(0, 0xFFFFFFFF), marker=st.booleans(), payload=st.binary(max_size=200))
def test_rewrite_round_trips_through_aiortc(pt: int, seq: int, ts: int, ssrc: int,
                                            marker: bool, payload: bytes) -> None:
    source = RtpPacket(payload_type=96, marker=int(marker), sequence_number=1, timestamp=2,
                       ssrc=3, payload=payload).serialize()
    out = build_forwarded(source, parse_rtp(source), pt, seq, ts, ssrc)
    parsed = RtpPacket.parse(out)
    assert (parsed.payload_type, parsed.sequence_number, parsed.timestamp, parsed.ssrc) \
        == (pt, seq, ts, ssrc)
    assert parsed.marker == int(marker) and parsed.payload == payload
