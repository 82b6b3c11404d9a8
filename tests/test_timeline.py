"""Placing frames on a recording's timeline: sender reports align tracks; loss never shifts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from liveion.recorder.timeline import NTP_FRACTION, TrackClock, TrackTimeline


def ntp(seconds: float) -> int:
    return int(seconds * NTP_FRACTION)


def test_timestamps_unwrap_across_the_32_bit_boundary() -> None:
    clock = TrackClock(90000)
    assert clock.extend(0xFFFFF000) == 0xFFFFF000
    assert clock.extend(0x00000F00) == 0x1_00000F00
    assert clock.extend(0xFFFFFF00) == 0xFFFFFF00  # a late packet from before the wrap


def test_sender_reports_align_audio_and_video_with_unrelated_rtp_bases() -> None:
    video, audio = TrackClock(90000), TrackClock(48000)
    video.extend(1_000_000)
    audio.extend(7_000)
    # Both reports describe the same instant, 1000.0 s on the sender's clock.
    video.on_sender_report(ntp(1000.0), 1_000_000)
    audio.on_sender_report(ntp(1000.0), 7_000)
    v = TrackTimeline(video, 90000)
    a = TrackTimeline(audio, 48000)
    start = 1000.5
    v.start_at(1_000_000 + 45000, start, from_report=True)   # captured at 1000.5 s
    a.start_at(7_000 + 48000, start, from_report=True)       # captured at 1001.0 s
    assert v.dts(1_000_000 + 45000) == 0
    assert a.dts(7_000 + 48000) == 24000                      # half a second later


def test_audio_just_before_the_opening_keyframe_is_placed_at_zero_not_dropped() -> None:
    clock = TrackClock(48000)
    clock.extend(0)
    clock.on_sender_report(ntp(50.0), 0)
    timeline = TrackTimeline(clock, 48000)
    timeline.start_at(0, 50.01, from_report=True)
    assert timeline.dts(0) == 0
    assert timeline.dts(960) == 960


def test_without_reports_arrival_times_place_the_first_frame() -> None:
    clock = TrackClock(90000)
    clock.on_arrival(5000, 200.0)
    clock.extend(5000)
    assert clock.wall_time(5000, from_report=False) == 200.0
    assert clock.wall_time(5000, from_report=True) is None
    timeline = TrackTimeline(clock, 90000)
    timeline.start_at(5000 + 9000, 199.9, from_report=False)
    assert timeline.dts(5000 + 9000) == 18000  # 0.1 s arrival offset + 0.1 s of timestamps


@given(st.lists(st.booleans(), min_size=10, max_size=300), st.integers(0, 2**32 - 1))
def test_lost_frames_never_shift_the_frames_that_arrive(kept: list[bool], base: int) -> None:
    clock = TrackClock(90000)
    timeline: TrackTimeline | None = None
    for index, keep in enumerate(kept):
        if not keep:
            continue
        timestamp = (base + index * 3000) & 0xFFFFFFFF
        extended = clock.extend(timestamp)
        if timeline is None:
            timeline = TrackTimeline(clock, 90000)
            timeline.start_at(extended, 0.0, from_report=False)
            first = index
        assert timeline.dts(extended) == (index - first) * 3000
