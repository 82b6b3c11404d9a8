"""NACK generation (receiver side) and the retransmission buffer (sender side)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from liveion.rtp.nack import NackGenerator, RetransmissionBuffer

# --- NackGenerator --------------------------------------------------------------------------


def test_in_order_stream_never_nacks() -> None:
    gen = NackGenerator()
    for i in range(100):
        assert gen.on_packet(i, i / 100) == []
    assert gen.missing_count == 0
    assert gen.poll(5.0) == []


def test_gap_is_nacked_at_once() -> None:
    gen = NackGenerator()
    assert gen.on_packet(10, 0.0) == []
    assert gen.on_packet(14, 0.01) == [11, 12, 13]
    assert gen.missing_count == 3
    assert gen.on_packet(12, 0.02) == []  # retransmission arrives
    assert gen.missing_count == 2
    assert gen.poll(0.05) == []  # not yet due
    assert gen.poll(0.11) == [11, 13]


def test_reordered_packet_cancels() -> None:
    gen = NackGenerator()
    gen.on_packet(0, 0.0)
    assert gen.on_packet(2, 0.0) == [1]
    assert gen.on_packet(1, 0.001) == []
    assert gen.missing_count == 0
    assert gen.poll(1.0) == []


def test_duplicates_and_stale_packets_are_ignored() -> None:
    gen = NackGenerator()
    gen.on_packet(100, 0.0)
    assert gen.on_packet(100, 0.0) == []
    assert gen.on_packet(50, 0.0) == []  # old, never tracked
    assert gen.missing_count == 0
    assert gen.on_packet(101, 0.0) == []


def test_wraparound() -> None:
    gen = NackGenerator()
    gen.on_packet(65533, 0.0)
    assert gen.on_packet(2, 0.0) == [65534, 65535, 0, 1]
    assert gen.on_packet(0, 0.01) == []
    assert gen.missing_count == 3
    assert gen.poll(0.1) == [65534, 65535, 1]
    assert gen.on_packet(4, 0.1) == [3]


def test_retry_timing_and_max_retries() -> None:
    gen = NackGenerator(retry_interval=0.1, max_retries=3, max_age=10.0)
    gen.on_packet(0, 0.0)
    assert gen.on_packet(2, 0.0) == [1]
    assert gen.poll(0.05) == []
    assert gen.poll(0.1) == [1]  # retry 1
    assert gen.poll(0.15) == []
    assert gen.poll(0.2) == [1]  # retry 2 (0.2 - 0.1 is not exactly 0.1 in floats)
    assert gen.poll(0.3) == [1]  # retry 3
    assert gen.missing_count == 1
    assert gen.poll(0.4) == []  # retries exhausted: given up
    assert gen.missing_count == 0


def test_retries_follow_the_last_nack_not_a_fixed_grid() -> None:
    gen = NackGenerator(retry_interval=0.1)
    gen.on_packet(0, 0.0)
    gen.on_packet(2, 0.0)
    assert gen.poll(0.17) == [1]
    assert gen.poll(0.2) == []  # only 0.03 since the last NACK
    assert gen.poll(0.27) == [1]


def test_max_age_expiry() -> None:
    gen = NackGenerator(retry_interval=0.1, max_retries=10, max_age=0.25)
    gen.on_packet(0, 0.0)
    gen.on_packet(2, 0.0)
    assert gen.poll(0.1) == [1]
    assert gen.poll(0.2) == [1]
    assert gen.poll(0.25) == []  # as old as max_age: dropped
    assert gen.missing_count == 0
    assert gen.on_packet(1, 0.3) == []


def test_zero_retries_only_initial_nack() -> None:
    gen = NackGenerator(max_retries=0)
    gen.on_packet(0, 0.0)
    assert gen.on_packet(3, 0.0) == [1, 2]
    assert gen.poll(1.0) == []
    assert gen.missing_count == 0


def test_big_forward_jump_resets() -> None:
    gen = NackGenerator()
    gen.on_packet(0, 0.0)
    assert gen.on_packet(5, 0.0) == [1, 2, 3, 4]
    assert gen.on_packet(5 + 3001, 0.1) == []
    assert gen.missing_count == 0
    assert gen.poll(0.2) == []
    assert gen.on_packet(5 + 3003, 0.2) == [5 + 3002]  # continues from the new position


def test_jump_of_exactly_max_is_a_gap() -> None:
    gen = NackGenerator(max_missing=5000)
    gen.on_packet(0, 0.0)
    assert gen.on_packet(3000, 0.0) == list(range(1, 3000))


def test_big_backward_jump_resets() -> None:
    gen = NackGenerator()
    gen.on_packet(10_000, 0.0)
    gen.on_packet(10_003, 0.0)
    assert gen.on_packet(100, 0.1) == []
    assert gen.missing_count == 0
    assert gen.on_packet(102, 0.1) == [101]


def test_max_missing_keeps_newest() -> None:
    gen = NackGenerator(max_missing=10)
    gen.on_packet(0, 0.0)
    assert gen.on_packet(100, 0.0) == list(range(90, 100))
    assert gen.missing_count == 10
    assert gen.on_packet(105, 0.0) == [101, 102, 103, 104]
    assert gen.missing_count == 10
    assert gen.poll(0.1) == [94, 95, 96, 97, 98, 99, 101, 102, 103, 104]


def test_reset() -> None:
    gen = NackGenerator()
    gen.on_packet(0, 0.0)
    gen.on_packet(3, 0.0)
    gen.reset()
    assert gen.missing_count == 0
    assert gen.on_packet(40_000, 0.0) == []
    assert gen.on_packet(40_002, 0.0) == [40_001]


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        NackGenerator(max_missing=0)
    with pytest.raises(ValueError):
        NackGenerator(retry_interval=0)
    with pytest.raises(ValueError):
        NackGenerator(max_retries=-1)


@given(
    st.integers(0, 0xFFFF),
    st.lists(st.integers(1, 40), min_size=1, max_size=200),
    st.data(),
)
def test_nacks_exactly_the_missing(start: int, steps: list[int], data: st.DataObject) -> None:
    gen = NackGenerator(max_missing=10_000, max_age=100.0, max_retries=1000)
    ext = start
    gen.on_packet(ext & 0xFFFF, 0.0)
    nacked: list[int] = []
    skipped: list[int] = []
    for step in steps:
        skipped.extend((ext + k) & 0xFFFF for k in range(1, step))
        ext += step
        nacked.extend(gen.on_packet(ext & 0xFFFF, 0.0))
    assert nacked == skipped
    assert gen.missing_count == len(skipped)
    # Some of them arrive late; the retry lists exactly the rest, oldest first.
    recovered = data.draw(st.sets(st.sampled_from(skipped))) if skipped else set()
    for seq in recovered:
        assert gen.on_packet(seq, 0.05) == []
    assert gen.poll(0.2) == [s for s in skipped if s not in recovered]


# --- RetransmissionBuffer -------------------------------------------------------------------


def test_buffer_put_get() -> None:
    buf = RetransmissionBuffer(16)
    assert buf.capacity == 16
    assert buf.get(5) is None  # never stored
    buf.put(5, b"five")
    assert buf.get(5) == b"five"
    assert buf.get(6) is None


def test_buffer_eviction() -> None:
    buf = RetransmissionBuffer(8)
    for seq in range(16):
        buf.put(seq, bytes([seq]))
    assert [buf.get(s) for s in range(8)] == [None] * 8
    assert [buf.get(s) for s in range(8, 16)] == [bytes([s]) for s in range(8, 16)]


def test_buffer_wrong_seq_in_slot() -> None:
    buf = RetransmissionBuffer(16)
    buf.put(3, b"three")
    assert buf.get(3 + 16) is None  # same slot, different sequence number
    assert buf.get(3 + 65536) == b"three"  # sequence numbers are 16-bit


def test_buffer_wraparound() -> None:
    buf = RetransmissionBuffer(16)
    seqs = [*range(65530, 65536), *range(6)]
    for seq in seqs:
        buf.put(seq, seq.to_bytes(2, "big"))
    assert all(buf.get(s) == s.to_bytes(2, "big") for s in seqs)
    assert buf.get(65529) is None


def test_buffer_clear() -> None:
    buf = RetransmissionBuffer(4)
    buf.put(1, b"x")
    buf.clear()
    assert buf.get(1) is None
    buf.put(1, b"y")
    assert buf.get(1) == b"y"


@pytest.mark.parametrize("capacity", [0, 3, 1000, 1 << 17, -8])
def test_buffer_capacity_must_be_power_of_two(capacity: int) -> None:
    with pytest.raises(ValueError):
        RetransmissionBuffer(capacity)


@given(
    st.sampled_from([1, 2, 16, 64, 1024]),
    st.integers(0, 0xFFFF),
    st.integers(1, 3000),
    st.lists(st.integers(-100, 3100), max_size=50),
)
def test_buffer_matches_model(capacity: int, start: int, count: int, probes: list[int]) -> None:
    buf = RetransmissionBuffer(capacity)
    for i in range(count):
        buf.put((start + i) & 0xFFFF, i.to_bytes(2, "big"))
    for i in probes:
        got = buf.get((start + i) & 0xFFFF)
        if max(0, count - capacity) <= i < count:
            assert got == i.to_bytes(2, "big")
        else:
            assert got is None
