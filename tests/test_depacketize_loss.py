"""Depacketizers under packet loss, reordering and garbage: what comes out always decodes.

Real clips (see tests/test_depacketize.py) with packets dropped, swapped, delayed or
corrupted; every frame that comes out must decode to exactly the picture the encoder's own
packet decodes to, and nothing may raise.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_depacketize import (
    SEQ_START,
    VIDEO_CODECS,
    Clip,
    Packet,
    assert_decodes_like_reference,
    clip_packets,
    codec_marks,
    depacketize,
    encode,
    h264_fu_a_for_test,
    new_depacketizer,
    rtp,
)

from liveion.recorder.codecs.sequence import SequenceWindow
from liveion.recorder.depacketize import depacketizer_for
from liveion.recorder.media import Frame

# ---- SequenceWindow -------------------------------------------------------------------------


def window_run(sequence: Sequence[int], depth: int = 3) -> list[tuple[bool, int]]:
    window: SequenceWindow[int] = SequenceWindow(depth)
    out: list[tuple[bool, int]] = []
    for seq in sequence:
        out += window.push(seq, seq)
    return out


def test_window_passes_in_order_packets_and_flags_the_first() -> None:
    assert window_run([7, 8, 9]) == [(True, 7), (False, 8), (False, 9)]


def test_window_wraps_at_65535() -> None:
    assert window_run([65534, 65535, 0, 1]) == [(True, 65534), (False, 65535), (False, 0),
                                                (False, 1)]


def test_window_reorders_within_depth() -> None:
    assert window_run([1, 3, 4, 2, 5]) == [(True, 1), (False, 2), (False, 3), (False, 4),
                                           (False, 5)]
    assert window_run([65535, 1, 0]) == [(True, 65535), (False, 0), (False, 1)]


def test_window_declares_loss_once_depth_is_exceeded() -> None:
    out = window_run([1, 3, 4, 5])
    assert out == [(True, 1)]
    out = window_run([1, 3, 4, 5, 6])
    assert out == [(True, 1), (True, 3), (False, 4), (False, 5), (False, 6)]


def test_window_drops_late_and_duplicate_packets() -> None:
    assert window_run([1, 3, 4, 5, 6, 2, 6, 7]) == [
        (True, 1), (True, 3), (False, 4), (False, 5), (False, 6), (False, 7)]
    assert window_run([1, 3, 3, 2]) == [(True, 1), (False, 2), (False, 3)]


def test_window_depth_zero_never_holds() -> None:
    assert window_run([1, 3, 2, 4], depth=0) == [(True, 1), (True, 3), (False, 4)]


def test_window_follows_a_sequence_restart() -> None:
    """A new sender far behind the old numbers: start over instead of dropping forever."""
    assert window_run([40000, 40001, 30000, 30001]) == [
        (True, 40000), (False, 40001), (True, 30000), (False, 30001)]
    # far ahead: an ordinary gap, given up on once the window is full
    assert window_run([100, 101, 30000, 30001, 30002, 30003]) == [
        (True, 100), (False, 101), (True, 30000), (False, 30001), (False, 30002),
        (False, 30003)]


# ---- loss and reordering on real clips --------------------------------------------------------


def fragmented_h264() -> tuple[Clip, list[Packet]]:
    """A clip whose every frame spans several packets (FU-A, 60-byte fragments)."""
    clip = encode("h264")
    payloads = [h264_fu_a_for_test(p, 60) for p in clip.packets]
    assert min(len(p) for p in payloads) >= 3
    return clip, rtp(payloads, [clip.timestamp(i) for i in range(len(clip.packets))])


def frame_index(clip: Clip, timestamp: int) -> int:
    return next(i for i in range(len(clip.packets)) if clip.timestamp(i) == timestamp)


def run(clip: Clip, packets: Sequence[Packet]) -> list[Frame]:
    dep = new_depacketizer(clip.codec)
    frames = depacketize(dep, packets)
    if frames:
        assert dep.config is not None
        assert_decodes_like_reference(clip, dep.config, frames)
    return frames


@codec_marks("h264")
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_loss_drops_the_frame_and_resumes_at_next_keyframe(where: str) -> None:
    clip, packets = fragmented_h264()
    in_frame = [i for i, p in enumerate(packets) if p[1] == clip.timestamp(3)]
    drop = {"first": in_frame[0], "middle": in_frame[1], "last": in_frame[-1]}[where]
    frames = run(clip, packets[:drop] + packets[drop + 1:])
    assert [frame_index(clip, f.timestamp) for f in frames] == [0, 1, 2, *range(10, 30)]
    assert frames[3].keyframe


@codec_marks("h264")
def test_loss_of_a_keyframes_first_packet_waits_for_the_next_keyframe() -> None:
    clip, packets = fragmented_h264()
    drop = next(i for i, p in enumerate(packets) if p[1] == clip.timestamp(10))
    frames = run(clip, packets[:drop] + packets[drop + 1:])
    assert [frame_index(clip, f.timestamp) for f in frames] == [*range(10), *range(20, 30)]


@codec_marks("h264")
def test_reordered_packets_lose_nothing() -> None:
    clip, packets = fragmented_h264()
    shuffled = list(packets)
    for i in range(5, len(shuffled) - 3, 5):  # move every fifth packet two places later
        shuffled[i:i + 3] = [shuffled[i + 1], shuffled[i + 2], shuffled[i]]
    assert shuffled != packets
    frames = run(clip, shuffled)
    assert [f.data for f in frames] == [f.data for f in depacketize(new_depacketizer("h264"),
                                                                    packets)]


@codec_marks("h264")
def test_a_packet_later_than_the_window_does_not_corrupt_output() -> None:
    clip, packets = fragmented_h264()
    late = next(i for i, p in enumerate(packets) if p[1] == clip.timestamp(5)) + 1
    delayed = packets[:late] + packets[late + 1:late + 10] + [packets[late]] + packets[late + 10:]
    frames = run(clip, delayed)
    assert [frame_index(clip, f.timestamp) for f in frames] == [*range(5), *range(10, 30)]


@codec_marks("h264")
def test_duplicated_packets_are_ignored() -> None:
    clip, packets = fragmented_h264()
    doubled = [p for packet in packets for p in (packet, packet)]
    assert len(run(clip, doubled)) == 30


@codec_marks("h264")
def test_sequence_numbers_wrap_inside_the_clip() -> None:
    clip, packets = fragmented_h264()
    sequences = [p[2] for p in packets]
    assert 65535 in sequences and 0 in sequences
    assert len(run(clip, packets)) == 30
    # and far from the wrap the same
    frames = run(clip, [(p, ts, (seq - SEQ_START + 1000) & 0xFFFF, m) for p, ts, seq, m in packets])
    assert len(frames) == 30


# ---- property: random loss and reordering ------------------------------------------------------


@st.composite
def impairments(draw: st.DrawFn, count: int) -> tuple[set[int], set[int]]:
    drops = draw(st.sets(st.integers(0, count - 1), max_size=6))
    swaps = draw(st.sets(st.integers(0, count - 2), max_size=6))
    return drops, swaps


def property_clip(codec: str) -> tuple[Clip, list[Packet]]:
    """320x240, so keyframes (and some other frames) span several packets."""
    clip = encode(codec, width=320, height=240)
    return clip, clip_packets(clip)


def impaired(packets: Sequence[Packet], drops: set[int],
             swaps: set[int]) -> tuple[list[Packet], list[Packet]]:
    """(packets with neighbours swapped and some dropped, the packets lost)."""
    out = list(packets)
    last = -2
    for i in sorted(swaps):
        if i > last + 1:  # disjoint pairs: a packet moves by one place at most
            out[i], out[i + 1] = out[i + 1], out[i]
            last = i
    lost = [p for i, p in enumerate(out) if i in drops]
    if out[0] is not packets[0] and packets[0] not in lost:
        lost.append(packets[0])  # arriving second, the very first packet looks late
    return [p for i, p in enumerate(out) if i not in drops], lost


def dropped_frames_of(clip: Clip, lost: Sequence[Packet]) -> set[int]:
    return {frame_index(clip, p[1]) for p in lost}


@pytest.mark.parametrize("codec", [pytest.param(c, marks=codec_marks(c)) for c in VIDEO_CODECS])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_loss_and_reordering_always_decode(codec: str, data: st.DataObject) -> None:
    clip, packets = property_clip(codec)
    drops, swaps = data.draw(impairments(len(packets)))
    arriving, lost = impaired(packets, drops, swaps)
    frames = run(clip, arriving)  # every frame decodes exactly like the encoder's packet
    indices = [frame_index(clip, f.timestamp) for f in frames]
    assert indices == sorted(set(indices))  # in order, no duplicates
    assert not dropped_frames_of(clip, lost) & set(indices)  # incomplete frames never out
    if frames:
        assert frames[0].keyframe
    # Nothing is lost needlessly: a whole GOP none of whose packets was dropped comes out,
    # except at the very end, where a gap may still be waiting for its packet.
    dropped_frames = dropped_frames_of(clip, lost)
    keys = [i for i, k in enumerate(clip.keyframes) if k] + [len(clip.packets)]
    for start, end in zip(keys[:-2] if lost else keys, keys[1:], strict=False):
        if not dropped_frames & set(range(start, end)):
            assert set(range(start, end)) <= set(indices), f"GOP at {start} lost"


# ---- fuzz: garbage never raises ---------------------------------------------------------------

MIMES = ["video/H264", "video/H265", "video/VP8", "video/VP9", "video/AV1", "audio/opus"]

packets_strategy = st.lists(
    st.tuples(st.binary(max_size=48), st.sampled_from([0, 3000, 6000, 0xFFFFFFFF]),
              st.integers(0, 12), st.booleans()),
    max_size=40)


@pytest.mark.parametrize("mime", MIMES)
@settings(max_examples=200, deadline=None)
@given(packets=packets_strategy)
def test_random_bytes_never_raise(mime: str, packets: list[Packet]) -> None:
    dep = depacketizer_for(mime, 90000, 2, {})
    assert dep is not None
    for payload, ts, seq, marker in packets:
        for frame in dep.push(payload, ts, seq, marker):
            assert isinstance(frame.data, bytes)
        dep.config  # noqa: B018  (must not raise either)


@pytest.mark.parametrize("codec", [pytest.param(c, marks=codec_marks(c)) for c in VIDEO_CODECS])
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_corrupted_real_packets_never_raise(codec: str, data: st.DataObject) -> None:
    _, packets = property_clip(codec)
    damaged = list(packets)
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(damaged) - 1))
        payload, ts, seq, marker = damaged[i]
        how = data.draw(st.sampled_from(["flip", "truncate", "extend"]))
        if how == "flip" and payload:
            at = data.draw(st.integers(0, min(len(payload), 64) - 1))
            payload = payload[:at] + bytes((payload[at] ^ data.draw(st.integers(1, 255)),)) + \
                payload[at + 1:]
        elif how == "truncate":
            payload = payload[:data.draw(st.integers(0, len(payload)))]
        else:
            payload = payload + data.draw(st.binary(min_size=1, max_size=16))
        damaged[i] = (payload, ts, seq, marker)
    dep = new_depacketizer(codec)
    depacketize(dep, damaged)
    dep.config  # noqa: B018
