"""Keyframe detection on RTP payloads (liveion.rtp.codecs), from hand-built payloads."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from liveion.rtp.codecs import av1, h264, h265, keyframe_detector, vp8, vp9


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# --- H.264 (RFC 6184) -------------------------------------------------------------------------

H264_CASES = [
    ("sps", "67 42 00 1f e9 40", True),
    ("idr", "65 88 84 00 33", True),
    ("idr nri 0", "05 88 84", True),
    ("pps", "68 ce 3c 80", False),
    ("non-idr slice", "41 9a 02 10", False),
    ("sei", "06 05 ff", False),
    ("aud", "09 f0", False),
    ("stap-a sps+pps", "78 0004 6742001f 0002 68ce", True),
    ("stap-a aud then idr", "78 0002 09f0 0003 658884", True),
    ("stap-a no key", "78 0002 419a 0002 0605", False),
    ("stap-a size past end", "78 0010 6742", False),
    ("stap-a zero size", "78 0000 0004 6742001f", False),
    ("stap-a header only", "78", False),
    ("stap-b idr", "79 1234 0003 658884", True),
    ("fu-a idr start", "7c 85 88 84", True),
    ("fu-a idr middle", "7c 05 11 22", False),
    ("fu-a idr end", "7c 45 11 22", False),
    ("fu-a non-idr start", "7c 81 9a 02", False),
    ("fu-a truncated", "7c", False),
    ("fu-b idr start", "7d 85 0001 88", True),
    ("empty", "", False),
    ("one byte idr", "65", False),
]


@pytest.mark.parametrize(("name", "payload", "expected"), H264_CASES)
def test_h264(name: str, payload: str, expected: bool) -> None:
    assert h264.is_keyframe_start(h(payload)) is expected, name
    assert h264.is_keyframe_start(memoryview(h(payload))) is expected, name


# --- VP8 (RFC 7741) ---------------------------------------------------------------------------

KEY = "50 42 00 9d 01 2a"  # VP8 payload header with P=0, then the key frame start code
INTER = "51 42 00"  # P=1

VP8_CASES = [
    ("minimal key", "10 " + KEY, True),
    ("minimal inter", "10 " + INTER, False),
    ("not start of partition", "00 " + KEY, False),
    ("partition index 1", "11 " + KEY, False),
    ("N bit set still key", "30 " + KEY, True),
    ("7-bit picture id", "90 80 12 " + KEY, True),
    # 7-bit id followed by a key frame; read as 15-bit it would look at 0x01 (P=1).
    ("7-bit picture id, not misread", "90 80 12 50 01", True),
    ("15-bit picture id", "90 80 81 23 " + KEY, True),
    # 15-bit id whose low byte has bit 0 set: read as 7-bit it would look at 0x23.
    ("15-bit picture id inter", "90 80 81 23 " + INTER, False),
    ("I L T K", "90 f0 80 01 05 20 " + KEY, True),
    ("K only skips the TID/KEYIDX byte", "90 10 01 50", True),
    ("T only skips the TID/KEYIDX byte", "90 20 01 50", True),
    ("L only", "90 40 01 50", True),
    ("X without fields", "90 00 " + KEY, True),
    ("X but S=0", "80 80 81 23 " + KEY, False),
    ("descriptor only", "10", False),
    ("extension byte missing", "90", False),
    ("picture id missing", "90 80", False),
    ("15-bit picture id truncated", "90 80 80", False),
    ("payload header missing after extensions", "90 f0 80 01 05 20", False),
    ("empty", "", False),
]


@pytest.mark.parametrize(("name", "payload", "expected"), VP8_CASES)
def test_vp8(name: str, payload: str, expected: bool) -> None:
    assert vp8.is_keyframe_start(h(payload)) is expected, name


# --- VP9 (RFC 9628) ---------------------------------------------------------------------------
# Descriptor bits: I 0x80, P 0x40, L 0x20, F 0x10, B 0x08, E 0x04, V 0x02, Z 0x01.

VP9_CASES = [
    ("key, 15-bit picture id, single packet", "8c 80 01 82 49 83 42", True),
    ("key, 7-bit picture id", "88 05 82 49", True),
    ("key, no picture id", "08 82 49", True),
    ("inter frame", "cc 80 01 86 00", False),
    ("key, middle packet", "80 80 01 11 22", False),
    ("key, last packet", "84 80 01 11 22", False),
    ("key with scalability structure", "8a 05 18 02 80 01 e0 04 ff", True),
    ("layered non-flexible, SID 0", "a8 05 00 03 82 49", True),
    ("layered non-flexible, SID 1", "a8 05 02 03 82 49", False),
    ("layered non-flexible, SID 2 inter-layer only", "a9 05 04 03 82 49", False),
    ("layered flexible, SID 0", "b8 05 00 82 49", True),
    ("layered flexible, SID 1", "b8 05 02 82 49", False),
    # 15-bit picture id with a low byte of 0x02: read as 7-bit, 0x02 would be SID 1.
    ("layered, 15-bit picture id", "a8 80 02 00 03 82", True),
    ("layered, 15-bit picture id, SID 1", "a8 80 00 02 03 82", False),
    ("layer byte missing", "a8 05", False),
    ("TL0PICIDX missing", "a8 05 00", False),
    ("picture id missing", "88", False),
    ("15-bit picture id truncated", "88 80", False),
    ("empty", "", False),
]


@pytest.mark.parametrize(("name", "payload", "expected"), VP9_CASES)
def test_vp9(name: str, payload: str, expected: bool) -> None:
    assert vp9.is_keyframe_start(h(payload)) is expected, name


# --- AV1 --------------------------------------------------------------------------------------
# Aggregation header: Z 0x80, Y 0x40, W 0x30, N 0x08.

AV1_CASES = [
    ("new sequence, one OBU element", "18 0a 0b 00 00 00 24 c4", True),
    ("new sequence, W=0 with sizes", "08 0c 0a 0b 00 00 00 24 c4", True),
    ("new sequence with Y set", "58 0a 0b", True),
    ("no new sequence", "10 32 10 00", False),
    ("continues an OBU (Z=1)", "98 0a 0b", False),
    ("header only", "18", False),
    ("empty", "", False),
]


@pytest.mark.parametrize(("name", "payload", "expected"), AV1_CASES)
def test_av1(name: str, payload: str, expected: bool) -> None:
    assert av1.is_keyframe_start(h(payload)) is expected, name


# --- H.265 (RFC 7798) -------------------------------------------------------------------------
# NAL unit header: F | type (6 bits) | layer id (6) | tid (3); first byte is type << 1.

H265_CASES = [
    ("vps", "40 01 0c 01 ff", True),
    ("idr_w_radl", "26 01 af 00", True),
    ("idr_n_lp", "28 01 af 00", True),
    ("cra", "2a 01 af 00", True),
    ("sps alone", "42 01 01 01", False),
    ("trail_r", "02 01 d0 00", False),
    ("ap with vps", "60 01 0004 40010c01 0003 420101", True),
    ("ap with idr second", "60 01 0003 020100 0003 260100", True),
    ("ap without key", "60 01 0003 020100 0003 440100", False),
    ("ap size past end", "60 01 0010 4001", False),
    ("fu idr start", "62 01 93 af 00", True),
    ("fu cra start", "62 01 95 af 00", True),
    ("fu idr middle", "62 01 13 af 00", False),
    ("fu idr end", "62 01 53 af 00", False),
    ("fu trail start", "62 01 81 af 00", False),
    ("fu truncated", "62 01", False),
    ("empty", "", False),
]


@pytest.mark.parametrize(("name", "payload", "expected"), H265_CASES)
def test_h265(name: str, payload: str, expected: bool) -> None:
    assert h265.is_keyframe_start(h(payload)) is expected, name


# --- dispatch and robustness ------------------------------------------------------------------


def test_keyframe_detector_lookup() -> None:
    assert keyframe_detector("video/H264") is h264.is_keyframe_start
    assert keyframe_detector("video/h264") is h264.is_keyframe_start
    assert keyframe_detector("VIDEO/VP8") is vp8.is_keyframe_start
    assert keyframe_detector("video/VP9") is vp9.is_keyframe_start
    assert keyframe_detector("video/AV1") is av1.is_keyframe_start
    assert keyframe_detector("video/H265") is h265.is_keyframe_start
    assert keyframe_detector("audio/opus") is None
    assert keyframe_detector("video/rtx") is None
    assert keyframe_detector("") is None


DETECTORS: list[Callable[[bytes | memoryview], bool]] = [
    h264.is_keyframe_start,
    h265.is_keyframe_start,
    vp8.is_keyframe_start,
    vp9.is_keyframe_start,
    av1.is_keyframe_start,
]


@given(st.binary(max_size=64))
def test_detectors_never_raise(payload: bytes) -> None:
    for detect in DETECTORS:
        assert detect(payload) in (True, False)
        assert detect(memoryview(payload)) is detect(payload)


@given(st.lists(st.binary(min_size=0, max_size=20), max_size=6), st.integers(0, 0xFF))
def test_stap_a_finds_idr_anywhere(nals: list[bytes], nri: int) -> None:
    """A well-formed STAP-A is a keyframe start iff one of its NAL units is IDR or SPS."""
    nals = [n for n in nals if n]
    payload = bytes([0x60 & nri | 24]) + b"".join(len(n).to_bytes(2, "big") + n for n in nals)
    expected = any(n[0] & 0x1F in (5, 7) for n in nals)
    assert h264.is_keyframe_start(payload) is expected
