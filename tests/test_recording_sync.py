"""Ten minutes of a publisher's audio and video through the recording pipeline (sans-IO, in
simulated time): the tracks stay aligned within 100 ms, whatever the RTP timestamp bases,
network jitter and packet loss."""

from __future__ import annotations

import random

from aiortc.codecs.h264 import H264Encoder
from helpers.encode import encode_opus, encode_video

from liveion.recorder.paths import record_path
from liveion.recorder.pipeline import CodecKey, FileOut, StreamRecording
from liveion.recorder.recover import segment_timing
from liveion.rtp.rtcp import ntp_from_unix

H264 = CodecKey("video/H264", 90000, None, (("packetization-mode", "1"),))
OPUS = CodecKey("audio/opus", 48000, 2, ())
MINUTES = 10
FPS = 30
START = 1_800_000_000.0  # the sender's wall clock at capture of the first video frame


def nal_units(sample: bytes) -> list[bytes]:
    out, at = [], 0
    while at < len(sample):
        size = int.from_bytes(sample[at:at + 4], "big")
        out.append(sample[at + 4:at + 4 + size])
        at += 4 + size
    return out


def parameter_sets(avcc: bytes) -> list[bytes]:
    """SPS and PPS from an avcC record: publishers send them in-band before each IDR."""
    out, at = [], 5
    for _ in range(2):
        count = avcc[at] & 0x1F
        at += 1
        for _ in range(count):
            size = int.from_bytes(avcc[at:at + 2], "big")
            out.append(avcc[at + 2:at + 2 + size])
            at += 2 + size
    return out


def test_audio_and_video_stay_aligned_for_ten_minutes() -> None:
    rng = random.Random(7)
    gop = encode_video("h264", frames=FPS, width=64, height=48, gop=FPS)
    opus = encode_opus(seconds=1.0)
    video_base, audio_base = rng.getrandbits(32), rng.getrandbits(32)
    audio_lead = 0.35  # the microphone started 350 ms after the camera
    seconds = MINUTES * 60

    events: list[tuple[float, str, object]] = []
    video_seq, audio_seq = rng.getrandbits(16), rng.getrandbits(16)
    for index in range(seconds * FPS):
        capture = index / FPS
        frame = gop.frames[index % FPS]
        nals = (parameter_sets(gop.config.config_record) if frame.keyframe else []) \
            + nal_units(frame.data)
        payloads = H264Encoder._packetize(nals)
        for number, payload in enumerate(payloads):
            events.append((capture + 0.02 + rng.random() * 0.03, "video",
                           (payload, (video_base + index * 3000) & 0xFFFFFFFF,
                            video_seq, number == len(payloads) - 1)))
            video_seq = (video_seq + 1) & 0xFFFF
    for index in range(int((seconds - audio_lead) / 0.02)):
        capture = audio_lead + index * 0.02
        events.append((capture + 0.005 + rng.random() * 0.01, "audio",
                       (opus.frames[index % len(opus.frames)].data,
                        (audio_base + index * 960) & 0xFFFFFFFF, audio_seq + index & 0xFFFF,
                        True)))
    for second in range(seconds):  # sender reports from the one sender clock
        events.append((second + 0.001, "sr", second))
    events.sort(key=lambda e: e[0])

    recording = StreamRecording(record_path("sync", int(START)), segment_seconds=10)
    arrival_offset = 12345.678  # our clock and the sender's are unrelated
    files: dict[str, bytes] = {}
    for at, kind, item in events:
        now = START + arrival_offset + at
        if kind == "sr":
            assert isinstance(item, int)
            recording.on_sender_report("video", ntp_from_unix(START + item),
                                       (video_base + item * 90000) & 0xFFFFFFFF)
            recording.on_sender_report("audio", ntp_from_unix(START + item),
                                       (audio_base + round((item - audio_lead) * 48000))
                                       & 0xFFFFFFFF)
            continue
        payload, timestamp, sequence, marker = item  # type: ignore[misc]
        if kind == "audio" and rng.random() < 0.01:
            continue  # 1% audio loss must not shift the timeline
        for output in recording.on_rtp(kind, H264 if kind == "video" else OPUS, payload,
                                       timestamp, sequence, marker, now):
            if isinstance(output, FileOut):
                files[output.path] = output.data
    for output in recording.close_part(START + arrival_offset + seconds):
        if isinstance(output, FileOut):
            files[output.path] = output.data

    def track_span(prefix: str, timescale: int) -> tuple[float, float]:
        names = sorted(p for p in files if p.rsplit("/", 1)[-1].startswith(f"{prefix}_seg_"))
        first = segment_timing(files[names[0]])
        last = segment_timing(files[names[-1]])
        return first[0] / timescale, (last[0] + last[1]) / timescale

    video_start, video_end = track_span("v", 90000)
    audio_start, audio_end = track_span("a", 48000)
    # The recording opened on a video keyframe (one per second) in the first seconds; which
    # one depends on the jitter. Every frame sits where its capture time says, relative to it.
    assert video_start == 0.0
    true_video_end = seconds
    true_audio_end = audio_lead + int((seconds - audio_lead) / 0.02) * 0.02
    opened_at = round(true_video_end - video_end)
    assert opened_at in (0, 1, 2)
    assert abs(video_end - (true_video_end - opened_at)) < 1e-6
    assert abs(audio_end - (true_audio_end - opened_at)) < 0.1, (audio_end, opened_at)
    expected_audio_start = max(0.0, audio_lead - opened_at)
    assert abs(audio_start - expected_audio_start) < 0.1, (audio_start, opened_at)
