"""The DASH manifest: attributes while recording and after, timelines, ffprobe reading it."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers.encode import encode_opus, encode_video, write_recording

from liveion.recorder.media import TrackConfig
from liveion.recorder.mpd import MpdTrack, render_mpd, timeline_entries

NS = {"d": "urn:mpeg:dash:schema:mpd:2011"}
VIDEO = TrackConfig("video", "h264", "avc1.42c01e", 90000, b"", width=1280, height=720)
AUDIO = TrackConfig("audio", "opus", "opus", 48000, b"", channels=2, sample_rate=48000)
START = 1_762_842_203.0  # 2025-11-11T06:23:23Z


def tracks() -> list[MpdTrack]:
    return [
        MpdTrack(AUDIO, 64000, [(0, 480000), (480000, 480000), (960000, 62400)]),
        MpdTrack(VIDEO, 1_500_000, [(0, 900000), (900000, 927000), (1827000, 90000)],
                 frame_rate=30.0),
    ]


def test_timeline_compresses_runs_and_marks_gaps() -> None:
    assert timeline_entries([]) == []
    assert timeline_entries([(0, 10), (10, 10), (20, 10), (30, 5)]) == [
        '<S t="0" d="10" r="2"/>', '<S d="5"/>']
    # A gap (the publisher paused) or an overlap restarts with an explicit t.
    assert timeline_entries([(100, 10), (110, 10), (500, 10), (510, 10), (515, 10)]) == [
        '<S t="100" d="10" r="1"/>', '<S t="500" d="10" r="1"/>', '<S t="515" d="10"/>']
    assert timeline_entries([(0, 7), (7, 8), (15, 8)]) == ['<S t="0" d="7"/>', '<S d="8" r="1"/>']


def expand(timeline: ET.Element) -> list[tuple[int, int]]:
    """The (start, duration) list a player reads out of a SegmentTimeline."""
    out: list[tuple[int, int]] = []
    t = 0
    for s in timeline.findall("d:S", NS):
        t = int(s.get("t", t))
        for _ in range(int(s.get("r", "0")) + 1):
            out.append((t, int(s.attrib["d"])))
            t += int(s.attrib["d"])
    return out


def test_static_manifest_after_the_recording() -> None:
    root = ET.fromstring(render_mpd(tracks(), dynamic=False, availability_start=START))
    assert root.get("type") == "static"
    assert root.get("profiles") == "urn:mpeg:dash:profile:isoff-live:2011"
    assert root.get("mediaPresentationDuration") == "PT21.300S"  # video ends at 1917000/90000
    assert root.get("availabilityStartTime") is None and root.get("minimumUpdatePeriod") is None
    assert root.get("maxSegmentDuration") == "PT10.300S"
    (period,) = root.findall("d:Period", NS)
    assert period.get("start") == "PT0S"
    video, audio = period.findall("d:AdaptationSet", NS)  # video first
    assert (video.get("contentType"), video.get("mimeType")) == ("video", "video/mp4")
    assert video.get("startWithSAP") == "1" and video.get("segmentAlignment") == "true"
    rep = video.find("d:Representation", NS)
    assert rep is not None
    assert {k: rep.get(k) for k in ("codecs", "bandwidth", "width", "height", "frameRate")} == {
        "codecs": "avc1.42c01e", "bandwidth": "1500000", "width": "1280", "height": "720",
        "frameRate": "30"}
    template = rep.find("d:SegmentTemplate", NS)
    assert template is not None
    assert {k: template.get(k) for k in ("timescale", "initialization", "media",
                                         "startNumber")} == {
        "timescale": "90000", "initialization": "v_init.m4s",
        "media": "v_seg_$Number%04d$.m4s", "startNumber": "1"}
    timeline = template.find("d:SegmentTimeline", NS)
    assert timeline is not None and expand(timeline) == tracks()[1].segments
    assert audio.get("mimeType") == "audio/mp4"
    arep = audio.find("d:Representation", NS)
    assert arep is not None
    assert (arep.get("codecs"), arep.get("audioSamplingRate")) == ("opus", "48000")
    channels = arep.find("d:AudioChannelConfiguration", NS)
    assert channels is not None and channels.get("value") == "2"
    atemplate = arep.find("d:SegmentTemplate", NS)
    assert atemplate is not None and atemplate.get("media") == "a_seg_$Number%04d$.m4s"


def test_dynamic_manifest_while_recording() -> None:
    text = render_mpd(tracks(), dynamic=True, availability_start=START,
                      publish_time=START + 22.5, minimum_update_period=2)
    root = ET.fromstring(text)
    assert root.get("type") == "dynamic"
    assert root.get("availabilityStartTime") == "2025-11-11T06:23:23.000Z"
    assert root.get("publishTime") == "2025-11-11T06:23:45.500Z"
    assert root.get("minimumUpdatePeriod") == "PT2S"
    assert root.get("mediaPresentationDuration") is None
    # No timeShiftBufferDepth: the whole recording stays seekable.
    assert root.get("timeShiftBufferDepth") is None
    assert root.get("suggestedPresentationDelay") == "PT20.600S"  # two of the longest segment


def test_publish_time_defaults_to_the_end_of_the_newest_segment() -> None:
    root = ET.fromstring(render_mpd(tracks(), dynamic=True, availability_start=START))
    assert root.get("publishTime") == "2025-11-11T06:23:44.300Z"


def test_values_are_escaped() -> None:
    odd = TrackConfig("video", "h264", 'avc1"&<x>', 90000, b"", width=2, height=2)
    text = render_mpd([MpdTrack(odd, 0, [(0, 1)])], dynamic=False, availability_start=0)
    rep = ET.fromstring(text).find("d:Period/d:AdaptationSet/d:Representation", NS)
    assert rep is not None
    assert rep.get("codecs") == 'avc1"&<x>'
    assert rep.get("bandwidth") == "1"  # a bandwidth is required, even before it is known


def test_vp8_track_is_webm() -> None:
    vp8 = TrackConfig("video", "vp8", "vp08.00.10.08", 90000, b"", width=640, height=480)
    text = render_mpd([MpdTrack(vp8, 1000, [(0, 90000)])], dynamic=False, availability_start=0)
    aset = ET.fromstring(text).find("d:Period/d:AdaptationSet", NS)
    assert aset is not None and aset.get("mimeType") == "video/webm"
    rep = aset.find("d:Representation", NS)
    assert rep is not None and rep.get("codecs") == "vp8"


FFPROBE = shutil.which("ffprobe")


@pytest.mark.skipif(FFPROBE is None, reason="ffprobe not installed")
@pytest.mark.parametrize("codec", ["h264", "vp9"])
def test_ffprobe_reads_the_manifest(codec: str, tmp_path: Path) -> None:
    recording = write_recording(tmp_path, {"video": encode_video(codec),
                                           "audio": encode_opus(channels=2)})
    assert FFPROBE is not None
    done = subprocess.run(
        [FFPROBE, "-v", "error", "-show_streams", "-show_format", "-of", "json",
         str(recording.mpd_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    probe = json.loads(done.stdout)
    assert probe["format"]["format_name"] == "dash"
    video, audio = sorted(probe["streams"], key=lambda s: s["codec_type"] != "video")
    assert (video["codec_name"], video["width"], video["height"]) == (codec, 320, 240)
    assert (audio["codec_name"], audio["channels"]) == ("opus", 2)
    # The longer track (the audio) sets the duration; FFmpeg's DASH demuxer keeps whole
    # seconds of mediaPresentationDuration.
    audio_end = recording.segmenters["audio"].end / 48000
    assert audio_end > recording.segmenters["video"].end / 90000
    assert float(probe["format"]["duration"]) == int(audio_end)
