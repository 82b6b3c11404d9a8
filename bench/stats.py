"""Small statistics helpers: a fixed-bin latency histogram and percentiles of samples."""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence

BIN_SECONDS = 0.0001
"""0.1 ms bins."""
BINS = 100_000
"""Up to 10 s; slower packets land in the last bin."""


class Histogram:
    __slots__ = ("bins", "count", "recording")

    def __init__(self) -> None:
        self.bins = array("q", bytes(8 * BINS))
        self.count = 0
        self.recording = False

    def add(self, seconds: float) -> None:
        index = int(seconds / BIN_SECONDS)
        if index < 0:
            index = 0
        elif index >= BINS:
            index = BINS - 1
        self.bins[index] += 1
        self.count += 1

    def sparse(self) -> dict[int, int]:
        """Non-empty bins, to ship between processes."""
        return {i: n for i, n in enumerate(self.bins) if n}


def merge(parts: Iterable[dict[int, int]]) -> dict[int, int]:
    total: dict[int, int] = {}
    for part in parts:
        for index, count in part.items():
            total[index] = total.get(index, 0) + count
    return total


def histogram_percentile(bins: dict[int, int], fraction: float) -> float | None:
    """The `fraction` quantile in milliseconds (upper edge of its bin), None when empty."""
    count = sum(bins.values())
    if not count:
        return None
    rank = fraction * count
    seen = 0
    for index in sorted(bins):
        seen += bins[index]
        if seen >= rank:
            return (index + 1) * BIN_SECONDS * 1000
    return None


def percentile(samples: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of raw samples, None when there are none."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))
    return ordered[rank]
