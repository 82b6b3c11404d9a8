"""RTCP parsing and building (liveion.rtp.rtcp): golden bytes, aiortc cross-checks, round-trips
and fuzzing."""

from __future__ import annotations

import struct

import pytest
from aiortc import rtp as artp
from hypothesis import given
from hypothesis import strategies as st

from liveion.rtp.rtcp import (
    Bye,
    Fir,
    Nack,
    Pli,
    ReceiverReport,
    Remb,
    ReportBlock,
    RtcpError,
    SenderReport,
    Unknown,
    build_fir,
    build_nack,
    build_pli,
    build_remb,
    build_rr,
    build_sdes_cname,
    build_sr,
    ntp_from_unix,
    ntp_middle32,
    parse_compound,
    unix_from_ntp,
)

u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
seq16 = st.integers(0, 0xFFFF)
blocks = st.builds(
    ReportBlock,
    ssrc=u32,
    fraction_lost=st.integers(0, 255),
    cumulative_lost=st.integers(-(2**23), 2**23 - 1),
    highest_seq=u32,
    jitter=u32,
    lsr=u32,
    dlsr=u32,
)
block_lists = st.lists(blocks, max_size=6)

BLOCK = ReportBlock(
    ssrc=0xDEADBEEF,
    fraction_lost=0x40,
    cumulative_lost=-1,
    highest_seq=0x00010005,
    jitter=17,
    lsr=0x12345678,
    dlsr=0x00010000,
)
BLOCK_HEX = "deadbeef 40ffffff 00010005 00000011 12345678 00010000"


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# --- golden bytes ------------------------------------------------------------------------


def test_sr_golden() -> None:
    data = build_sr(0x01020304, 0x0102030405060708, 0x11111111, 5, 1000)
    assert data == h("80c80006 01020304 0102030405060708 11111111 00000005 000003e8")
    assert parse_compound(data) == [
        SenderReport(0x01020304, 0x0102030405060708, 0x11111111, 5, 1000, ())
    ]


def test_sr_with_block_golden() -> None:
    data = build_sr(1, 2, 3, 4, 5, [BLOCK])
    assert data == h("81c8000c 00000001 0000000000000002 00000003 00000004 00000005 " + BLOCK_HEX)


def test_rr_golden() -> None:
    data = build_rr(0x0A0B0C0D, [BLOCK])
    assert data == h("81c90007 0a0b0c0d " + BLOCK_HEX)
    assert parse_compound(data) == [ReceiverReport(0x0A0B0C0D, (BLOCK,))]
    assert build_rr(7, []) == h("80c90001 00000007")


def test_pli_golden() -> None:
    data = build_pli(0x11223344, 0x55667788)
    assert data == h("81ce0002 11223344 55667788")
    assert parse_compound(data) == [Pli(0x11223344, 0x55667788)]


def test_fir_golden() -> None:
    data = build_fir(1, 2, 3)
    assert data == h("84ce0004 00000001 00000000 00000002 03000000")
    assert parse_compound(data) == [Fir(1, ((2, 3),))]
    assert build_fir(1, 2, 0x1FF)[-4:] == h("ff000000")  # seq nr is 8 bits


def test_nack_golden() -> None:
    data = build_nack(1, 2, [118, 100, 103, 101, 117, 100])
    assert data == h("81cd0004 00000001 00000002 00640005 00750001")
    assert parse_compound(data) == [Nack(1, 2, (100, 101, 103, 117, 118))]


def test_nack_golden_wraparound() -> None:
    data = build_nack(1, 2, [0, 65535, 1, 65534])
    assert data == h("81cd0003 00000001 00000002 fffe0007")
    assert parse_compound(data) == [Nack(1, 2, (65534, 65535, 0, 1))]


def test_nack_golden_blp_edge() -> None:
    # PID + 16 is the last one a BLP can carry; PID + 17 starts a new pair.
    assert build_nack(0, 0, [10, 26])[-4:] == h("000a8000")
    assert build_nack(0, 0, [10, 27])[-8:] == h("000a0000 001b0000")


def test_remb_golden() -> None:
    data = build_remb(1, 1_000_000, [0xAABBCCDD])
    # 1_000_000 = 250_000 << 2: exponent 2, mantissa 0x3d090.
    assert data == h("8fce0005 00000001 00000000 52454d42 010bd090 aabbccdd")
    assert parse_compound(data) == [Remb(1, 1_000_000, (0xAABBCCDD,))]


def test_remb_small_bitrate_exact() -> None:
    data = build_remb(9, 0x3FFFF, [])
    assert data[-4:] == h("0003ffff")
    assert parse_compound(data) == [Remb(9, 0x3FFFF, ())]


def test_sdes_cname_golden() -> None:
    data = build_sdes_cname(0x01020304, "abc")
    assert data == h("81ca0003 01020304 01036162 63000000")
    assert parse_compound(data) == [Unknown(202, 1)]
    # An item ending exactly on a word boundary still gets a null terminator word.
    data = build_sdes_cname(1, "ab")
    assert data == h("81ca0003 00000001 01026162 00000000")


def test_bye_parse_golden() -> None:
    assert parse_compound(h("82cb0002 01020304 05060708")) == [Bye((0x01020304, 0x05060708))]
    assert parse_compound(h("80cb0000")) == [Bye(())]
    # A reason string after the SSRC list is ignored.
    assert parse_compound(h("81cb0002 01020304 02686900")) == [Bye((0x01020304,))]


def test_unknown_types() -> None:
    twcc = h("8fcd0005 00000001 00000002 00010002 20020000 00000000")
    app = h("83cc0003 00000001 6e616d65 00000000")
    afb_other = h("8fce0003 00000001 00000000 41424344")
    xr = h("80cf0001 00000001")
    sli = h("82ce0003 00000001 00000002 00000000")
    data = twcc + app + afb_other + xr + sli
    assert parse_compound(data) == [
        Unknown(205, 15),
        Unknown(204, 3),
        Unknown(206, 15),
        Unknown(207, 0),
        Unknown(206, 2),
    ]


# --- compound, padding, memoryview --------------------------------------------------------


def test_compound_and_memoryview() -> None:
    packets = build_rr(1, [BLOCK]) + build_sdes_cname(1, "x") + build_pli(1, 2)
    expected = [ReceiverReport(1, (BLOCK,)), Unknown(202, 1), Pli(1, 2)]
    assert parse_compound(packets) == expected
    buf = bytearray(b"\xff" * 3 + packets + b"\xee")
    assert parse_compound(memoryview(buf)[3:-1]) == expected


def test_padding_tolerated() -> None:
    # PLI with the P bit and 4 octets of padding (last octet: padding count).
    data = h("a1ce0003 00000001 00000002 00000004")
    assert parse_compound(data) == [Pli(1, 2)]
    # Padding on the last packet of a compound.
    assert parse_compound(build_rr(5, []) + data) == [ReceiverReport(5), Pli(1, 2)]
    # Padding that leaves a NACK FCI intact.
    nack = h("a1cd0004 00000001 00000002 000a0001 00000004")
    assert parse_compound(nack) == [Nack(1, 2, (10, 11))]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        h("00c90001 00000001"),  # version 0
        h("c1c90001 00000001"),  # version 3
        h("80c90002 00000001"),  # length runs past the data
        h("80c90001 00000001 80"),  # trailing garbage
        h("a1ce0002 00000001 00000000"),  # padding count 0
        h("a1ce0002 00000001 000000ff"),  # padding longer than the packet
        h("81c90001 00000001"),  # RR announces a block that is not there
        h("80c80001 00000001"),  # SR without sender info
        h("81ce0001 00000001"),  # PLI without media SSRC
        h("81cd0002 00000001 00000002"),  # NACK without FCI
        h("82cb0001 00000001"),  # BYE announces 2 SSRCs, has 1
        h("8fce0004 00000001 00000000 52454d42 01000001"),  # REMB announces 1 SSRC, has 0
        h("8fce0003 00000001 00000000 52454d42"),  # REMB without bitrate word
    ],
)
def test_malformed_raises(data: bytes) -> None:
    with pytest.raises(RtcpError):
        parse_compound(data)


def test_rtcp_error_is_value_error() -> None:
    assert issubclass(RtcpError, ValueError)


# --- builder validation -------------------------------------------------------------------


def test_builder_validation() -> None:
    with pytest.raises(ValueError):
        build_nack(1, 2, [])
    with pytest.raises(ValueError):
        build_rr(1, [BLOCK] * 32)
    with pytest.raises(ValueError):
        build_pli(2**32, 1)
    with pytest.raises(ValueError):
        build_remb(1, -1, [])
    with pytest.raises(ValueError):
        build_remb(1, 1 << 90, [])
    with pytest.raises(ValueError):
        build_remb(1, 1, [0] * 256)
    with pytest.raises(ValueError):
        build_sdes_cname(1, "x" * 256)
    with pytest.raises(ValueError):
        build_rr(1, [ReportBlock(1, 256, 0, 0, 0, 0, 0)])
    with pytest.raises(ValueError):
        build_sr(-1, 0, 0, 0, 0)


def test_cumulative_lost_clamped_when_building() -> None:
    big = ReportBlock(1, 0, 10**9, 0, 0, 0, 0)
    small = ReportBlock(1, 0, -(10**9), 0, 0, 0, 0)
    (rr,) = parse_compound(build_rr(1, [big, small]))
    assert isinstance(rr, ReceiverReport)
    assert [b.cumulative_lost for b in rr.reports] == [2**23 - 1, -(2**23)]


# --- NTP helpers --------------------------------------------------------------------------


def test_ntp_conversions() -> None:
    assert ntp_from_unix(0.0) == 2_208_988_800 << 32
    assert ntp_from_unix(1.5) == ((2_208_988_801 << 32) | 0x80000000)
    assert unix_from_ntp(ntp_from_unix(1_700_000_000.25)) == 1_700_000_000.25
    assert ntp_middle32(0x0102030405060708) == 0x03040506
    # Era 1 (after 2036-02-07): seconds wrap, the top bit is clear, and it still round-trips.
    t = float(2**32 - 2_208_988_800 + 10)  # ten seconds past the era boundary (Unix time)
    assert unix_from_ntp(ntp_from_unix(t)) == t
    assert ntp_from_unix(t) >> 63 == 0


@given(st.floats(min_value=0, max_value=4_000_000_000, allow_nan=False))
def test_ntp_roundtrip(seconds: float) -> None:
    ntp = ntp_from_unix(seconds)
    assert 0 <= ntp < 2**64
    assert abs(unix_from_ntp(ntp) - seconds) < 1e-6


# --- aiortc cross-checks (aiortc is used here only, never by the cores) ---------------------


def _aiortc_block(b: ReportBlock) -> artp.RtcpReceiverInfo:
    return artp.RtcpReceiverInfo(
        ssrc=b.ssrc,
        fraction_lost=b.fraction_lost,
        packets_lost=b.cumulative_lost,
        highest_sequence=b.highest_seq,
        jitter=b.jitter,
        lsr=b.lsr,
        dlsr=b.dlsr,
    )


def test_aiortc_parses_ours() -> None:
    data = (
        build_sr(0x11, 0x0102030405060708, 99, 7, 1400, [BLOCK])
        + build_rr(0x22, [BLOCK])
        + build_sdes_cname(0x11, "liveion")
        + build_pli(0x22, 0x33)
        + build_nack(0x22, 0x33, [65535, 0, 5, 40])
        + build_remb(0x22, 2_500_000, [0x33, 0x44])
    )
    sr, rr, sdes, pli, nack, remb = artp.RtcpPacket.parse(data)
    assert isinstance(sr, artp.RtcpSrPacket)
    assert sr.ssrc == 0x11
    assert sr.sender_info == artp.RtcpSenderInfo(0x0102030405060708, 99, 7, 1400)
    assert sr.reports == [_aiortc_block(BLOCK)]
    assert isinstance(rr, artp.RtcpRrPacket)
    assert rr.ssrc == 0x22
    assert rr.reports == [_aiortc_block(BLOCK)]
    assert isinstance(sdes, artp.RtcpSdesPacket)
    assert sdes.chunks[0].ssrc == 0x11
    assert sdes.chunks[0].items == [(1, b"liveion")]
    assert isinstance(pli, artp.RtcpPsfbPacket)
    assert (pli.fmt, pli.ssrc, pli.media_ssrc, pli.fci) == (1, 0x22, 0x33, b"")
    assert isinstance(nack, artp.RtcpRtpfbPacket)
    assert (nack.fmt, nack.ssrc, nack.media_ssrc) == (1, 0x22, 0x33)
    # aiortc does not wrap BLP offsets past 65535; compare modulo 2**16.
    assert [s & 0xFFFF for s in nack.lost] == [65535, 0, 5, 40]
    assert isinstance(remb, artp.RtcpPsfbPacket)
    assert remb.fmt == 15
    assert artp.unpack_remb_fci(remb.fci) == (2_500_000, [0x33, 0x44])


def test_we_parse_aiortc() -> None:
    sr = artp.RtcpSrPacket(
        ssrc=0x11,
        sender_info=artp.RtcpSenderInfo(0x0A0B0C0D01020304, 12345, 10, 2000),
        reports=[_aiortc_block(BLOCK)],
    )
    rr = artp.RtcpRrPacket(ssrc=0x22, reports=[_aiortc_block(BLOCK)])
    sdes = artp.RtcpSdesPacket(chunks=[artp.RtcpSourceInfo(ssrc=0x11, items=[(1, b"cn")])])
    bye = artp.RtcpByePacket(sources=[0x11, 0x22])
    pli = artp.RtcpPsfbPacket(fmt=1, ssrc=0x22, media_ssrc=0x33)
    fir = artp.RtcpPsfbPacket(fmt=4, ssrc=0x22, media_ssrc=0, fci=struct.pack("!IB3x", 0x33, 9))
    nack = artp.RtcpRtpfbPacket(fmt=1, ssrc=0x22, media_ssrc=0x33, lost=[3, 4, 19, 20, 21])
    remb = artp.RtcpPsfbPacket(
        fmt=15, ssrc=0x22, media_ssrc=0, fci=artp.pack_remb_fci(123_456_789, [0x33])
    )
    data = b"".join(bytes(p) for p in (sr, rr, sdes, bye, pli, fir, nack, remb))
    expected_bitrate = (123_456_789 >> 9) << 9  # 27 significant bits -> exponent 9
    assert parse_compound(data) == [
        SenderReport(0x11, 0x0A0B0C0D01020304, 12345, 10, 2000, (BLOCK,)),
        ReceiverReport(0x22, (BLOCK,)),
        Unknown(202, 1),
        Bye((0x11, 0x22)),
        Pli(0x22, 0x33),
        Fir(0x22, ((0x33, 9),)),
        Nack(0x22, 0x33, (3, 4, 19, 20, 21)),
        Remb(0x22, expected_bitrate, (0x33,)),
    ]


@given(st.integers(0, 2**40))
def test_remb_encoding_matches_aiortc(bitrate: int) -> None:
    ours = build_remb(1, bitrate, [2])[12:]
    assert ours == artp.pack_remb_fci(bitrate, [2])


# --- round-trips ----------------------------------------------------------------------------


@given(u32, u64, u32, u32, u32, block_lists)
def test_sr_roundtrip(
    ssrc: int, ntp: int, rtp_ts: int, packets: int, octets: int, reports: list[ReportBlock]
) -> None:
    data = build_sr(ssrc, ntp, rtp_ts, packets, octets, reports)
    assert len(data) == 28 + 24 * len(reports)
    assert parse_compound(data) == [
        SenderReport(ssrc, ntp, rtp_ts, packets, octets, tuple(reports))
    ]


@given(u32, block_lists)
def test_rr_roundtrip(ssrc: int, reports: list[ReportBlock]) -> None:
    assert parse_compound(build_rr(ssrc, reports)) == [ReceiverReport(ssrc, tuple(reports))]


@given(u32, u32)
def test_pli_roundtrip(sender: int, media: int) -> None:
    assert parse_compound(build_pli(sender, media)) == [Pli(sender, media)]


@given(u32, u32, st.integers(0, 255))
def test_fir_roundtrip(sender: int, media: int, seq_nr: int) -> None:
    assert parse_compound(build_fir(sender, media, seq_nr)) == [Fir(sender, ((media, seq_nr),))]


@given(u32, st.integers(0, 2**81 - 1), st.lists(u32, max_size=10))
def test_remb_roundtrip(sender: int, bitrate: int, ssrcs: list[int]) -> None:
    (remb,) = parse_compound(build_remb(sender, bitrate, ssrcs))
    assert isinstance(remb, Remb)
    assert remb.sender_ssrc == sender
    assert remb.ssrcs == tuple(ssrcs)
    exponent = max(0, bitrate.bit_length() - 18)
    assert remb.bitrate == (bitrate >> exponent) << exponent
    assert 0 <= bitrate - remb.bitrate < (1 << exponent)
    # Re-encoding the decoded value is exact.
    assert parse_compound(build_remb(sender, remb.bitrate, ssrcs)) == [remb]


@given(u32, u32, seq16, st.sets(st.integers(0, 0x7FFF), min_size=1, max_size=300))
def test_nack_roundtrip_in_window(sender: int, media: int, start: int, offsets: set[int]) -> None:
    seqs = [(start + o) & 0xFFFF for o in offsets]
    expected = tuple((start + o) & 0xFFFF for o in sorted(offsets))
    data = build_nack(sender, media, seqs)
    assert parse_compound(data) == [Nack(sender, media, expected)]


@given(st.sets(seq16, min_size=1, max_size=500))
def test_nack_roundtrip_any_set(seqs: set[int]) -> None:
    (nack,) = parse_compound(build_nack(1, 2, seqs))
    assert isinstance(nack, Nack)
    assert sorted(nack.lost) == sorted(seqs)


@given(seq16, st.integers(1, 2000))
def test_nack_consecutive_run_is_compact(start: int, count: int) -> None:
    seqs = [(start + i) & 0xFFFF for i in range(count)]
    data = build_nack(0, 0, seqs)
    pairs = -(-count // 17)
    assert len(data) == 12 + 4 * pairs


@given(st.lists(st.sampled_from(["sr", "rr", "pli", "nack", "sdes", "remb", "fir"]), max_size=8))
def test_compound_roundtrip(kinds: list[str]) -> None:
    makers = {
        "sr": (build_sr(1, 2, 3, 4, 5, [BLOCK]), SenderReport(1, 2, 3, 4, 5, (BLOCK,))),
        "rr": (build_rr(6, [BLOCK, BLOCK]), ReceiverReport(6, (BLOCK, BLOCK))),
        "pli": (build_pli(7, 8), Pli(7, 8)),
        "nack": (build_nack(7, 8, [1, 2, 40]), Nack(7, 8, (1, 2, 40))),
        "sdes": (build_sdes_cname(7, "name"), Unknown(202, 1)),
        "remb": (build_remb(7, 300_000, [8]), Remb(7, 300_000, (8,))),
        "fir": (build_fir(7, 8, 1), Fir(7, ((8, 1),))),
    }
    data = b"".join(makers[k][0] for k in kinds)
    if not kinds:
        with pytest.raises(RtcpError):
            parse_compound(data)
        return
    assert parse_compound(data) == [makers[k][1] for k in kinds]


# --- fuzzing --------------------------------------------------------------------------------


def _parse_or_rtcp_error(data: bytes) -> None:
    try:
        packets = parse_compound(data)
    except RtcpError:
        return
    assert packets


@given(st.binary(max_size=256))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    _parse_or_rtcp_error(data)


@given(
    st.lists(
        st.tuples(st.integers(0, 0x3F), st.integers(192, 210), st.binary(max_size=64)),
        min_size=1,
        max_size=4,
    ),
    st.booleans(),
)
def test_fuzz_plausible_headers(parts: list[tuple[int, int, bytes]], honest: bool) -> None:
    """Version-2 headers over random bodies, with honest or random length fields."""
    data = bytearray()
    for low_bits, pt, body in parts:
        padded = body + bytes(-len(body) % 4)
        length = len(padded) // 4 if honest else low_bits
        data += bytes((0x80 | low_bits, pt)) + length.to_bytes(2, "big") + padded
    _parse_or_rtcp_error(bytes(data))


_VALID = (
    build_sr(1, 2, 3, 4, 5, [BLOCK])
    + build_nack(1, 2, [5, 6, 90])
    + build_remb(1, 10**6, [3, 4])
    + build_fir(1, 2, 3)
)


@given(st.lists(st.tuples(st.integers(0, len(_VALID) - 1), st.integers(0, 255)), max_size=6))
def test_fuzz_mutated_valid(mutations: list[tuple[int, int]]) -> None:
    data = bytearray(_VALID)
    for index, value in mutations:
        data[index] = value
    _parse_or_rtcp_error(bytes(data))


@given(st.integers(0, len(_VALID)))
def test_fuzz_truncated_valid(cut: int) -> None:
    _parse_or_rtcp_error(_VALID[:cut])
