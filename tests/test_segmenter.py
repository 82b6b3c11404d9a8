"""The segmenter: where segments are cut, and real encoded media read back by ffprobe and PyAV."""

from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import pytest
from helpers.encode import (
    EncodedTrack,
    Recording,
    encode_opus,
    encode_video,
    encoder_available,
    parse_boxes,
    write_recording,
)

from liveion.recorder.media import TrackConfig
from liveion.recorder.segmenter import (
    Segment,
    TrackSegmenter,
    container_for,
    init_name,
    segment_name,
)

VIDEO = TrackConfig("video", "h264", "avc1.42c01e", 90000, b"\x01\x42\xc0\x1e\xff\xe1\x00\x00\x00",
                    width=320, height=240)
AUDIO = TrackConfig("audio", "opus", "opus", 48000, b"\x00\x02\x01\x38\x00\x00\xbb\x80\x00\x00\x00",
                    channels=2, sample_rate=48000)


def feed(segmenter: TrackSegmenter, frames: list[tuple[int, bool]]) -> list[Segment]:
    out: list[Segment] = []
    for dts, keyframe in frames:
        out += segmenter.add(b"f%d" % dts, dts, keyframe)
    return out


def tfdt_and_sequence(segment: Segment) -> tuple[int, int]:
    moof = parse_boxes(segment.data)[1]
    sequence = struct.unpack(">II", moof.find(b"mfhd").payload)[1]
    tfdt = struct.unpack(">IQ", moof.find(b"traf", b"tfdt").payload)[1]
    return tfdt, sequence


def trun_samples(segment: Segment) -> list[tuple[int, int, int]]:
    trun = parse_boxes(segment.data)[1].find(b"traf", b"trun").payload
    count = struct.unpack_from(">I", trun, 4)[0]
    values = struct.unpack_from(f">{3 * count}I", trun, 12)
    return [values[i: i + 3] for i in range(0, len(values), 3)]


def test_file_names_follow_the_recording_layout() -> None:
    assert init_name("video") == "v_init.m4s"
    assert init_name("audio") == "a_init.m4s"
    assert segment_name("video", 1) == "v_seg_0001.m4s"
    assert segment_name("audio", 12) == "a_seg_0012.m4s"
    with pytest.raises(ValueError, match="kind"):
        segment_name("data", 1)


def test_video_cuts_at_the_first_keyframe_after_the_segment_length() -> None:
    # 30 fps, a keyframe every 10 frames, 0.5 s segments: the keyframe at 0.33 s is too early,
    # the one at 0.67 s cuts.
    segmenter = TrackSegmenter(VIDEO, 1, 45000)
    frames = [(i * 3000, i % 10 == 0) for i in range(45)]
    assert feed(segmenter, frames[:16]) == [] and segmenter.needs_keyframe  # 0.5 s reached
    segments = feed(segmenter, frames[16:])
    assert [(s.number, s.start, s.duration) for s in segments] == [(1, 0, 60000),
                                                                   (2, 60000, 60000)]
    assert not segmenter.needs_keyframe
    assert all(s.keyframe_start for s in segments)
    (last,) = segmenter.finish()
    assert (last.number, last.start, last.duration) == (3, 120000, 5 * 3000)
    assert [tfdt_and_sequence(s) for s in [*segments, last]] == [(0, 1), (60000, 2), (120000, 3)]
    assert segmenter.timeline == [(0, 60000), (60000, 60000), (120000, 15000)]
    samples = trun_samples(segments[0])
    assert [flags for _, _, flags in samples] == [0x02000000] + [0x01010000] * 9 + [
        0x02000000] + [0x01010000] * 9


def test_sample_duration_is_the_distance_to_the_next_frame() -> None:
    segmenter = TrackSegmenter(VIDEO, 1, 90000)
    feed(segmenter, [(0, True), (3000, False), (9000, False), (10000, False)])
    (segment,) = segmenter.finish()
    # The last frame has no successor: it lasts as long as the one before it.
    assert [d for d, _, _ in trun_samples(segment)] == [3000, 6000, 1000, 1000]
    assert segment.duration == 11000


def test_lone_frame_gets_the_default_duration() -> None:
    video = TrackSegmenter(VIDEO, 1, 90000)
    video.add(b"k", 0, True)
    audio = TrackSegmenter(AUDIO, 2, 48000)
    audio.add(b"a", 0, True)
    assert video.finish()[0].duration == 3000
    assert audio.finish()[0].duration == 960


def test_video_before_the_first_keyframe_is_dropped() -> None:
    segmenter = TrackSegmenter(VIDEO, 1, 90000)
    assert feed(segmenter, [(0, False), (3000, False), (6000, True), (9000, False)]) == []
    (segment,) = segmenter.finish()
    assert (segment.start, segment.keyframe_start, segmenter.dropped) == (6000, True, 2)
    assert len(trun_samples(segment)) == 2


def test_audio_cuts_on_length_alone() -> None:
    segmenter = TrackSegmenter(AUDIO, 2, 48000)
    segments = feed(segmenter, [(i * 960, False) for i in range(120)])
    assert [(s.start, s.duration) for s in segments] == [(0, 48000), (48000, 48000)]
    assert [len(trun_samples(s)) for s in segments] == [50, 50]


def test_repeated_timestamps_are_repaired() -> None:
    video = TrackSegmenter(VIDEO, 1, 90000)
    feed(video, [(0, True), (3000, False), (3000, False), (2000, False), (9000, False)])
    (segment,) = video.finish()
    assert [d for d, _, _ in trun_samples(segment)] == [3000, 1, 1, 5998, 5998]
    assert video.adjusted == 2
    audio = TrackSegmenter(AUDIO, 2, 48000)
    feed(audio, [(0, True), (960, True), (960, True), (1920, True)])
    (segment,) = audio.finish()
    assert len(trun_samples(segment)) == 3 and audio.dropped == 1


def test_numbering_continues_after_finish_and_keeps_the_gap() -> None:
    segmenter = TrackSegmenter(VIDEO, 1, 90000)
    feed(segmenter, [(0, True), (3000, False)])
    first = segmenter.finish()
    feed(segmenter, [(900000, False), (903000, True), (906000, False)])
    second = segmenter.finish()
    assert [(s.number, s.start) for s in first + second] == [(1, 0), (2, 903000)]


def test_bandwidth_is_bits_per_second_of_written_segments() -> None:
    segmenter = TrackSegmenter(AUDIO, 2, 48000)
    assert segmenter.bandwidth == 0
    for i in range(100):
        segmenter.add(b"\x00" * 100, i * 960, True)
    segments = segmenter.finish()
    total = sum(len(s.data) for s in segments)
    seconds = sum(s.duration for s in segments) / 48000
    assert segmenter.bandwidth == int(total * 8 / seconds)
    assert 100 * 8 * 50 < segmenter.bandwidth < 1.2 * 100 * 8 * 50  # payload plus boxes


def test_vp8_goes_in_webm() -> None:
    config = TrackConfig("video", "vp8", "vp08.00.10.08", 90000, b"", width=64, height=64)
    segmenter = TrackSegmenter(config, 1, 90000)
    assert container_for(config) == "webm"
    assert segmenter.init.startswith(b"\x1a\x45\xdf\xa3")  # EBML
    segmenter.add(b"\x10\x02\x00", 0, True)
    (segment,) = segmenter.finish()
    assert segment.data.startswith(b"\x1f\x43\xb6\x75")  # Cluster


# ---- real encoded media, read back by ffprobe and PyAV -----------------------------------

FFPROBE = shutil.which("ffprobe")
VIDEO_CODECS = ["h264", "vp8", "vp9", "av1"]


def available(codec: str) -> None:
    if not encoder_available(codec):
        pytest.skip(f"no {codec} encoder in this PyAV")


def record(tmp_path: Path, codec: str) -> Recording:
    tracks: dict[str, EncodedTrack] = {"video": encode_video(codec), "audio": encode_opus()}
    return write_recording(tmp_path / codec, tracks, segment_seconds=0.5)


def ffprobe_packets(path: Path) -> tuple[dict[str, object], list[dict[str, str]]]:
    assert FFPROBE is not None
    done = subprocess.run(
        [FFPROBE, "-v", "error", "-show_streams", "-show_packets", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    parsed = json.loads(done.stdout)
    (stream,) = parsed["streams"]
    return stream, parsed["packets"]


@pytest.mark.skipif(FFPROBE is None, reason="ffprobe not installed")
@pytest.mark.parametrize("codec", VIDEO_CODECS)
def test_ffprobe_reads_every_segment(codec: str, tmp_path: Path) -> None:
    """Each segment, played from its init segment, starts where the MPD says, on a keyframe,
    and lasts as long as the MPD says."""
    available(codec)
    recording = record(tmp_path, codec)
    for kind in ("video", "audio"):
        init = recording.init_path(kind).read_bytes()
        segments = recording.segments[kind]
        assert len(segments) >= 4
        for segment, path in zip(segments, recording.segment_paths(kind), strict=True):
            probe = tmp_path / f"probe-{path.name}"
            probe.write_bytes(init + path.read_bytes())
            stream, packets = ffprobe_packets(probe)
            if kind == "video":
                assert (stream["codec_name"], stream["width"], stream["height"]) == (
                    codec, 320, 240)
                assert "K" in packets[0]["flags"], f"{path.name} starts without a keyframe"
            else:
                assert (stream["codec_name"], stream["channels"]) == ("opus", 2)
            time_base = Fraction(str(stream["time_base"]))
            scale = recording.tracks[kind].config.timescale
            assert int(packets[0]["pts"]) * time_base == Fraction(segment.start, scale)
            end = Fraction(segment.start + segment.duration, scale)
            if "duration_ts" in stream:  # MP4: the track ends at tfdt + the trun durations
                assert int(str(stream["duration_ts"])) * time_base == end, path.name
            else:  # WebM: the last block's BlockDuration, in milliseconds
                last = packets[-1]
                last_end = (int(last["pts"]) + int(last["duration"])) * time_base
                assert abs(last_end - end) <= Fraction(1, 1000), path.name


@pytest.mark.parametrize("codec", VIDEO_CODECS)
def test_pyav_decodes_every_frame_and_tracks_agree(codec: str, tmp_path: Path) -> None:
    available(codec)
    recording = record(tmp_path, codec)
    ends: dict[str, float] = {}
    for kind in ("video", "audio"):
        data = recording.init_path(kind).read_bytes() + b"".join(
            path.read_bytes() for path in recording.segment_paths(kind))
        with av.open(io.BytesIO(data)) as container:
            stream = container.streams[0]
            decoded = 0
            end = 0.0
            for frame in container.decode(stream):
                decoded += 1
                assert frame.pts is not None and frame.time_base is not None
                end = max(end, float(frame.pts * frame.time_base))
            if kind == "video":
                assert (stream.codec_context.width, stream.codec_context.height) == (320, 240)
                assert decoded == len(recording.tracks[kind].frames)
        last = recording.segments[kind][-1]
        ends[kind] = (last.start + last.duration) / recording.tracks[kind].config.timescale
        assert end < ends[kind]
    assert abs(ends["video"] - ends["audio"]) <= 0.1


def test_long_webm_segment_splits_into_clusters_that_decode() -> None:
    """A segment longer than a Cluster can span (32.767 s of 16-bit block offsets), as when a
    VP8 publisher sends keyframes rarely, still decodes with the right timestamps."""
    track = encode_video("vp8")
    segmenter = TrackSegmenter(track.config, 1, 90000 * 60)
    for index, frame in enumerate(track.frames):
        segmenter.add(frame.data, index * 63000, index == 0)  # 0.7 s apart: 42 s in all
    (segment,) = segmenter.finish()
    clusters = segment.data.count(b"\x1f\x43\xb6\x75")
    assert clusters == 2
    with av.open(io.BytesIO(segmenter.init + segment.data)) as container:
        stream = container.streams.video[0]
        pts = [float(f.pts * f.time_base) for f in container.decode(stream)
               if f.pts is not None and f.time_base is not None]
    assert pts == [pytest.approx(i * 0.7, abs=0.001) for i in range(len(track.frames))]
