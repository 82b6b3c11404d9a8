"""The fragmented MP4 writer: golden bytes, box trees that add up, and ffprobe reading them."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from helpers.encode import (
    build_vpcc_for_test,
    encode_opus,
    encode_video,
    encoder_available,
    parse_boxes,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from liveion.recorder import fmp4
from liveion.recorder.media import TrackConfig

GOLDEN_SEGMENT = bytes.fromhex("""
    00000018 73747970 6d736468 00000000 6d736468 64617368
    00000070 6d6f6f66
      00000010 6d666864 00000000 00000007
      00000058 74726166
        00000010 74666864 00020000 00000001
        00000014 74666474 01000000 00000001 00000002
        0000002c 7472756e 00000701 00000002 00000078
          00000bb8 00000003 02000000
          000005dc 00000001 01010000
    0000000c 6d646174 aabbcc dd
""")
"""styp; moof(mfhd seq 7; traf(tfhd default-base-is-moof track 1; tfdt v1 2^32+2;
trun data-offset|duration|size|flags, 2 samples, data offset = moof 112 + mdat header 8));
mdat."""


def test_media_segment_golden_bytes() -> None:
    samples = [(b"\xaa\xbb\xcc", 3000, True), (b"\xdd", 1500, False)]
    assert fmp4.media_segment(7, 1, (1 << 32) + 2, samples) == GOLDEN_SEGMENT


def test_tfhd_says_default_base_is_moof() -> None:
    """Live777 writes 0x000200 here; the default-base-is-moof flag is 0x020000."""
    traf = parse_boxes(fmp4.media_segment(1, 5, 0, [(b"x", 1, True)]))[1].find(b"traf")
    version_flags, track_id = struct.unpack(">II", traf.find(b"tfhd").payload)
    assert (version_flags, track_id) == (0x00020000, 5)


def _h264_config(record: bytes = b"\x01\x42\xc0\x1e\xff\xe1\x00\x00\x01\x00\x00") -> TrackConfig:
    return TrackConfig("video", "h264", "avc1.42c01e", 90000, record, width=640, height=360)


def _opus_config(channels: int = 2) -> TrackConfig:
    dops = struct.pack(">BBHIhB", 0, channels, 312, 48000, 0, 0)
    return TrackConfig("audio", "opus", "opus", 48000, dops, channels=channels,
                       sample_rate=48000)


def test_h264_init_segment_tree() -> None:
    config = _h264_config()
    top = parse_boxes(fmp4.init_segment(config, 1))
    assert [b.kind for b in top] == [b"ftyp", b"moov"]
    major, _minor, *compatible = struct.unpack(f">4sI{(len(top[0].payload) - 8) // 4 * '4s'}",
                                               top[0].payload)
    assert major == b"iso6" and {b"iso6", b"isom", b"dash", b"avc1"} <= set(compatible)
    moov = top[1]
    assert [b.kind for b in moov.children] == [b"mvhd", b"trak", b"mvex"]
    assert struct.unpack_from(">I", moov.find(b"mvhd").payload, 96)[0] == 2  # next_track_ID
    tkhd = moov.find(b"trak", b"tkhd").payload
    assert struct.unpack_from(">I", tkhd, 0)[0] & 0xFFFFFF == 3  # enabled, in movie
    assert struct.unpack_from(">I", tkhd, 12)[0] == 1
    assert struct.unpack_from(">II", tkhd, 76) == (640 << 16, 360 << 16)
    mdhd = moov.find(b"trak", b"mdia", b"mdhd").payload
    assert struct.unpack_from(">I", mdhd, 12)[0] == 90000
    assert moov.find(b"trak", b"mdia", b"hdlr").payload[8:12] == b"vide"
    stbl = moov.find(b"trak", b"mdia", b"minf", b"stbl")
    assert [b.kind for b in stbl.children] == [b"stsd", b"stts", b"stsc", b"stsz", b"stco"]
    for empty in stbl.children[1:]:
        assert not any(empty.payload), f"{empty.kind!r} must be empty"
    stsd = stbl.find(b"stsd").payload
    assert struct.unpack_from(">I", stsd, 4)[0] == 1
    entry = parse_boxes(stsd[8:])[0]
    assert entry.kind == b"avc1"
    assert struct.unpack_from(">HH", entry.payload, 24) == (640, 360)
    avcc = parse_boxes(entry.payload[78:])[0]
    assert (avcc.kind, avcc.payload) == (b"avcC", config.config_record)
    trex = moov.find(b"mvex", b"trex").payload
    assert struct.unpack(">IIIIII", trex)[1:3] == (1, 1)  # track_ID, sample description 1


def test_opus_init_segment_keeps_stereo() -> None:
    config = _opus_config(channels=2)
    moov = parse_boxes(fmp4.init_segment(config, 2))[1]
    minf = moov.find(b"trak", b"mdia", b"minf")
    assert minf.children[0].kind == b"smhd"
    assert moov.find(b"trak", b"mdia", b"hdlr").payload[8:12] == b"soun"
    stsd = minf.find(b"stbl", b"stsd").payload
    entry = parse_boxes(stsd[8:])[0]
    assert entry.kind == b"Opus"
    channels, sample_size, _, _, rate = struct.unpack_from(">HHHHI", entry.payload, 16)
    assert (channels, sample_size, rate) == (2, 16, 48000 << 16)
    dops = parse_boxes(entry.payload[28:])[0]
    assert (dops.kind, dops.payload) == (b"dOps", config.config_record)


def test_vpcc_without_fullbox_header_gets_version_1() -> None:
    body = build_vpcc_for_test(profile=0, level=31)
    short = TrackConfig("video", "vp9", "vp09.00.31.08", 90000, body[4:], width=64, height=64)
    full = TrackConfig("video", "vp9", "vp09.00.31.08", 90000, body, width=64, height=64)
    assert fmp4.init_segment(short, 1) == fmp4.init_segment(full, 1)
    stsd = parse_boxes(fmp4.init_segment(full, 1))[1].find(
        b"trak", b"mdia", b"minf", b"stbl", b"stsd").payload
    entry = parse_boxes(stsd[8:])[0]
    assert entry.kind == b"vp09"
    assert parse_boxes(entry.payload[78:])[0].payload[:6] == b"\x01\x00\x00\x00\x00\x1f"


@pytest.mark.parametrize(("codecs", "entry"), [("hev1.1.6.L93.B0", b"hev1"),
                                                 ("hvc1.1.6.L93.B0", b"hvc1")])
def test_h265_sample_entry_follows_codecs_string(codecs: str, entry: bytes) -> None:
    config = TrackConfig("video", "h265", codecs, 90000, b"\x01" * 23, width=64, height=64)
    stsd = parse_boxes(fmp4.init_segment(config, 1))[1].find(
        b"trak", b"mdia", b"minf", b"stbl", b"stsd").payload
    assert parse_boxes(stsd[8:])[0].kind == entry


def test_unknown_codec_is_refused() -> None:
    config = TrackConfig("audio", "pcmu", "pcmu", 8000, b"")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pcmu"):
        fmp4.init_segment(config, 1)


samples_strategy = st.lists(
    st.tuples(st.binary(max_size=300), st.integers(1, 0xFFFFFFFF), st.booleans()),
    min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(samples=samples_strategy, sequence=st.integers(1, 0xFFFFFFFF),
       track_id=st.integers(1, 0xFFFFFFFF), base=st.integers(0, (1 << 64) - 1))
def test_media_segment_boxes_add_up(samples: list[fmp4.Sample], sequence: int, track_id: int,
                                    base: int) -> None:
    data = fmp4.media_segment(sequence, track_id, base, samples)
    top = parse_boxes(data)  # asserts every size fits its parent
    assert [b.kind for b in top] == [b"styp", b"moof", b"mdat"]
    assert sum(b.size for b in top) == len(data)
    moof, mdat = top[1], top[2]
    assert [b.kind for b in moof.children] == [b"mfhd", b"traf"]
    assert sum(b.size for b in moof.children) + 8 == moof.size
    assert struct.unpack(">II", moof.find(b"mfhd").payload) == (0, sequence)
    traf = moof.find(b"traf")
    assert [b.kind for b in traf.children] == [b"tfhd", b"tfdt", b"trun"]
    assert struct.unpack(">IQ", traf.find(b"tfdt").payload) == (0x01000000, base)
    trun = traf.find(b"trun").payload
    flags, count, offset = struct.unpack_from(">IIi", trun)
    assert (flags, count) == (0x000701, len(samples))
    moof_start = len(fmp4.STYP)
    assert data[moof_start + offset:] == mdat.payload  # data offset is from the moof start
    entries = struct.unpack_from(f">{3 * count}I", trun, 12)
    assert len(trun) == 12 + 12 * count
    expected: list[int] = []
    for sample_data, duration, sync in samples:
        expected += (duration, len(sample_data), 0x02000000 if sync else 0x01010000)
    assert list(entries) == expected
    assert mdat.payload == b"".join(s[0] for s in samples)


# ---- read back by ffprobe ---------------------------------------------------------------

FFPROBE = shutil.which("ffprobe")
needs_ffprobe = pytest.mark.skipif(FFPROBE is None, reason="ffprobe not installed")


def ffprobe_streams(path: Path) -> list[dict[str, object]]:
    assert FFPROBE is not None
    done = subprocess.run(
        [FFPROBE, "-v", "error", "-count_frames", "-show_streams", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    streams: list[dict[str, object]] = json.loads(done.stdout)["streams"]
    return streams


@needs_ffprobe
@pytest.mark.parametrize("codec", ["h264", "vp9", "av1"])
def test_ffprobe_reads_one_fragment_file(codec: str, tmp_path: Path) -> None:
    if not encoder_available(codec):
        pytest.skip(f"no {codec} encoder in this PyAV")
    track = encode_video(codec)
    samples = [(f.data, 3000, f.keyframe) for f in track.frames]
    path = tmp_path / "video.mp4"
    path.write_bytes(fmp4.init_segment(track.config, 1) + fmp4.media_segment(1, 1, 0, samples))
    (stream,) = ffprobe_streams(path)
    assert stream["codec_name"] == codec
    assert (stream["width"], stream["height"]) == (320, 240)
    assert int(str(stream["nb_read_frames"])) == len(track.frames)


@needs_ffprobe
def test_ffprobe_reads_stereo_opus(tmp_path: Path) -> None:
    track = encode_opus(channels=2)
    samples = [(f.data, 960, True) for f in track.frames]
    path = tmp_path / "audio.mp4"
    path.write_bytes(fmp4.init_segment(track.config, 2) + fmp4.media_segment(1, 2, 0, samples))
    (stream,) = ffprobe_streams(path)
    assert (stream["codec_name"], stream["channels"], stream["sample_rate"]) == (
        "opus", 2, "48000")
    assert int(str(stream["nb_read_frames"])) == len(track.frames)
