"""Receive statistics (liveion.rtp.stats): RFC 3550 A.1/A.3/A.8 behaviour."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from liveion.rtp.rtcp import ntp_middle32
from liveion.rtp.stats import ReceiveStatistics

RATE = 90_000


def feed(stats: ReceiveStatistics, seqs: list[int], start: float = 0.0) -> None:
    for i, seq in enumerate(seqs):
        stats.add(seq & 0xFFFF, (seq * 3000) & 0xFFFFFFFF, start + i / 30)


def test_no_loss() -> None:
    stats = ReceiveStatistics(RATE)
    feed(stats, list(range(100)))
    block = stats.report_block(0x1234, now=4.0)
    assert block.ssrc == 0x1234
    assert (block.fraction_lost, block.cumulative_lost, block.highest_seq) == (0, 0, 99)
    assert stats.packets_received == 100
    assert stats.expected == 100
    assert stats.lost == 0


def test_fresh_statistics_report_zeroes() -> None:
    stats = ReceiveStatistics(RATE)
    block = stats.report_block(1, now=0.0)
    assert (block.fraction_lost, block.cumulative_lost, block.jitter) == (0, 0, 0)
    assert (block.lsr, block.dlsr) == (0, 0)
    assert stats.expected == 0


def test_loss_fraction_per_interval() -> None:
    stats = ReceiveStatistics(RATE)
    dropped = {5, 17, 33, 34, 35, 50, 61, 70, 88, 97}
    feed(stats, [s for s in range(100) if s not in dropped])
    block = stats.report_block(1, now=1.0)
    assert block.cumulative_lost == 10
    assert block.fraction_lost == (10 << 8) // 100  # 25
    assert block.highest_seq == 99
    # Next interval without loss: fraction back to 0, cumulative unchanged.
    feed(stats, list(range(100, 200)))
    block = stats.report_block(1, now=2.0)
    assert (block.fraction_lost, block.cumulative_lost) == (0, 10)
    # Nothing received at all in an interval: fraction 0 (nothing expected either).
    block = stats.report_block(1, now=3.0)
    assert block.fraction_lost == 0


def test_heavy_loss_fraction_fits_8_bits() -> None:
    stats = ReceiveStatistics(RATE)
    stats.add(0, 0, 0.0)
    stats.report_block(1, now=0.0)
    stats.add(2000, 0, 1.0)  # 1999 lost, 1 received in this interval
    block = stats.report_block(1, now=1.0)
    assert block.fraction_lost == (1999 << 8) // 2000
    assert block.fraction_lost <= 255


def test_retransmission_recovers_loss() -> None:
    stats = ReceiveStatistics(RATE)
    feed(stats, [0, 1, 2, 4, 5])
    assert stats.lost == 1
    stats.add(3, 9000, 1.0)  # the retransmission arrives late
    assert stats.lost == 0
    assert stats.report_block(1, now=1.0).fraction_lost == 0


def test_reordering() -> None:
    stats = ReceiveStatistics(RATE)
    feed(stats, [0, 1, 3, 2, 4, 6, 5])
    assert stats.packets_received == 7
    assert stats.lost == 0
    assert stats.report_block(1, now=1.0).highest_seq == 6


def test_first_packet_late() -> None:
    stats = ReceiveStatistics(RATE)
    feed(stats, [5, 4, 6])
    assert (stats.expected, stats.lost) == (3, 0)


def test_duplicates_not_counted() -> None:
    stats = ReceiveStatistics(RATE)
    feed(stats, [0, 1, 1, 2, 2, 0, 3])
    assert stats.packets_received == 4
    assert stats.lost == 0


def test_wraparound_extended_seq() -> None:
    stats = ReceiveStatistics(RATE)
    feed(stats, [*range(65530, 65536), *range(6)])
    block = stats.report_block(1, now=1.0)
    assert block.highest_seq == 65536 + 5
    assert stats.expected == 12
    assert block.cumulative_lost == 0
    # Late packet from before the wrap, and another full cycle.
    stats.add(65535, 0, 2.0)  # duplicate across the wrap
    assert stats.packets_received == 12
    ext = 65541
    while ext < 2 * 65536 + 10:
        ext += 1000
        stats.add(ext & 0xFFFF, 0, 3.0)
    assert ext > 2 * 65536
    assert stats.extended_highest_seq == ext


def test_wraparound_with_reorder_across_the_wrap() -> None:
    stats = ReceiveStatistics(RATE)
    feed(stats, [65534, 0, 65535, 1])
    assert stats.extended_highest_seq == 65537
    assert (stats.expected, stats.lost) == (4, 0)


def test_single_wild_jump_is_ignored() -> None:
    stats = ReceiveStatistics(RATE)
    feed(stats, list(range(10)))
    stats.add(30_000, 0, 1.0)
    stats.add(10, 30_000, 1.1)
    assert stats.extended_highest_seq == 10
    assert stats.packets_received == 11
    assert stats.lost == 0


def test_restart_after_two_sequential_packets() -> None:
    stats = ReceiveStatistics(RATE)
    feed(stats, list(range(10)))
    stats.report_block(1, now=1.0)
    stats.add(20_000, 0, 2.0)
    stats.add(20_001, 3000, 2.03)  # continues from the jump: the source restarted
    assert stats.extended_highest_seq == 20_001
    assert stats.lost == 0
    stats.add(20_002, 6000, 2.06)
    block = stats.report_block(1, now=3.0)
    assert (block.cumulative_lost, block.fraction_lost, block.highest_seq) == (0, 0, 20_002)


def test_cumulative_lost_clamped_to_24_bits() -> None:
    stats = ReceiveStatistics(RATE)
    seq = 0
    for _ in range(2900):  # 2900 gaps of 2998 packets: about 8.7M lost
        stats.add(seq & 0xFFFF, 0, 0.0)
        seq += 2999
    assert stats.lost > 2**23
    assert stats.report_block(1, now=1.0).cumulative_lost == 2**23 - 1


def test_jitter_zero_for_constant_delay() -> None:
    stats = ReceiveStatistics(RATE)
    for i in range(500):
        rtp_ts = (4_294_000_000 + i * 3000) & 0xFFFFFFFF  # the RTP timestamp wraps too
        stats.add(i, rtp_ts, 100.0 + i / 30 + 0.045)
    assert stats.jitter < 1e-3
    assert stats.report_block(1, now=200.0).jitter == 0


def test_jitter_converges_to_delay_variation() -> None:
    stats = ReceiveStatistics(RATE)
    for i in range(2000):
        delay = 0.01 if i % 2 else 0.0  # transit alternates by 10 ms = 900 units
        stats.add(i & 0xFFFF, i * 3000, i / 30 + delay)
    assert stats.jitter == pytest.approx(900, rel=1e-3)
    assert stats.report_block(1, now=100.0).jitter in (899, 900)


def test_lsr_dlsr() -> None:
    stats = ReceiveStatistics(RATE)
    feed(stats, list(range(10)))
    ntp = 0xE1234567_89ABCDEF
    stats.on_sender_report(ntp, arrival=5.0)
    block = stats.report_block(1, now=6.5)
    assert block.lsr == ntp_middle32(ntp) == 0x456789AB
    assert block.dlsr == int(1.5 * 65536)
    # Clock going backwards never produces a negative DLSR.
    assert stats.report_block(1, now=4.0).dlsr == 0


def test_invalid_clock_rate() -> None:
    with pytest.raises(ValueError):
        ReceiveStatistics(0)


@st.composite
def arrival_orders(draw: st.DrawFn) -> tuple[int, list[int], list[int]]:
    """(start, sorted distinct offsets, arrival order with local reordering and duplicates)."""
    start = draw(st.integers(0, 0xFFFF))
    gaps = draw(st.lists(st.integers(1, 20), min_size=1, max_size=300))
    offsets = [0]
    for gap in gaps:
        offsets.append(offsets[-1] + gap)
    order = list(offsets)
    for i in draw(st.sets(st.integers(0, (len(order) - 2) // 2), max_size=30)):
        order[2 * i], order[2 * i + 1] = order[2 * i + 1], order[2 * i]  # disjoint swaps
    for i in draw(st.lists(st.integers(0, len(order) - 1), max_size=10)):
        order.insert(i + 1, order[i])  # an immediate duplicate
    return start, offsets, order


@given(arrival_orders())
def test_counts_match_model(case: tuple[int, list[int], list[int]]) -> None:
    start, offsets, order = case
    stats = ReceiveStatistics(RATE)
    for i, off in enumerate(order):
        stats.add((start + off) & 0xFFFF, off * 3000, i / 100)
    first_seen = order[0]
    lowest = min(offsets)
    assert first_seen - lowest <= 20
    expected = offsets[-1] - lowest + 1
    assert stats.expected == expected
    assert stats.packets_received == len(offsets)
    assert stats.lost == expected - len(offsets)
    first_seq = (start + first_seen) & 0xFFFF
    assert stats.extended_highest_seq == first_seq + offsets[-1] - first_seen
    block = stats.report_block(7, now=10.0)
    assert block.cumulative_lost == expected - len(offsets)
    assert block.highest_seq & 0xFFFF == (start + offsets[-1]) & 0xFFFF
