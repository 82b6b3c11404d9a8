"""NACK-based retransmission (RFC 4585 generic NACK), both sides, sans-IO.

* :class:`NackGenerator` runs on the receiving side of a publisher's stream: it watches the
  sequence numbers and says which ones to NACK now and which ones to NACK again later.
* :class:`RetransmissionBuffer` runs on the sending side towards a subscriber: it keeps the
  last packets sent, by sequence number, so a NACK from the subscriber can be answered.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

__all__ = ["NackGenerator", "RetransmissionBuffer"]

MAX_JUMP: Final = 3000  # a sequence jump larger than this (either way) is a stream restart
_SEQ_MASK: Final = 0xFFFF
_HALF: Final = 0x8000
_EPSILON: Final = 1e-9  # slack for float time arithmetic (0.3 - 0.2 < 0.1)


class _Missing:
    __slots__ = ("detected", "last_sent", "retries")

    def __init__(self, now: float) -> None:
        self.detected = now
        self.last_sent = now
        self.retries = 0


class NackGenerator:
    """Tracks missing sequence numbers of one incoming stream.

    A missing number is NACKed at once when the gap is seen (returned by :meth:`on_packet`),
    then re-NACKed by :meth:`poll` every ``retry_interval`` seconds, at most ``max_retries``
    times after the first NACK, for as long as it is younger than ``max_age`` seconds. At
    most ``max_missing`` numbers are tracked; beyond that the oldest are given up.
    """

    __slots__ = (
        "_highest",
        "_max_age",
        "_max_missing",
        "_max_retries",
        "_missing",
        "_retry_interval",
    )

    def __init__(
        self,
        *,
        max_missing: int = 500,
        retry_interval: float = 0.1,
        max_retries: int = 3,
        max_age: float = 1.0,
    ) -> None:
        if max_missing < 1:
            raise ValueError(f"max_missing must be at least 1, got {max_missing}")
        if retry_interval <= 0 or max_age <= 0:
            raise ValueError("retry_interval and max_age must be positive")
        if max_retries < 0:
            raise ValueError(f"max_retries must not be negative, got {max_retries}")
        self._max_missing = max_missing
        self._retry_interval = retry_interval
        self._max_retries = max_retries
        self._max_age = max_age
        self._highest: int | None = None  # extended sequence number
        self._missing: OrderedDict[int, _Missing] = OrderedDict()  # ascending extended seqs

    @property
    def missing_count(self) -> int:
        return len(self._missing)

    def reset(self) -> None:
        """Forget everything (e.g. a new publisher)."""
        self._highest = None
        self._missing.clear()

    def on_packet(self, seq: int, now: float) -> list[int]:
        """Record a received packet; return the sequence numbers newly found missing."""
        seq &= _SEQ_MASK
        highest = self._highest
        if highest is None:
            self._highest = seq
            return []
        delta = (seq - highest) & _SEQ_MASK
        if delta == 0:
            return []
        missing = self._missing
        if delta < _HALF:
            new_highest = highest + delta
            self._highest = new_highest
            if delta > MAX_JUMP:
                missing.clear()
                return []
            first = max(highest + 1, new_highest - self._max_missing)
            if first == new_highest:
                return []
            for ext in range(first, new_highest):
                missing[ext] = _Missing(now)
            while len(missing) > self._max_missing:
                missing.popitem(last=False)
            return [ext & _SEQ_MASK for ext in range(first, new_highest)]
        back = 0x10000 - delta
        if back > MAX_JUMP:
            self._highest = highest - back
            missing.clear()
            return []
        missing.pop(highest - back, None)  # a late or retransmitted packet
        return []

    def poll(self, now: float) -> list[int]:
        """Return the sequence numbers due for another NACK; give up on expired ones."""
        missing = self._missing
        if not missing:
            return []
        due: list[int] = []
        expired: list[int] = []
        max_age = self._max_age - _EPSILON
        retry_at = self._retry_interval - _EPSILON
        max_retries = self._max_retries
        for ext, entry in missing.items():
            if entry.retries >= max_retries or now - entry.detected >= max_age:
                expired.append(ext)
            elif now - entry.last_sent >= retry_at:
                entry.retries += 1
                entry.last_sent = now
                due.append(ext & _SEQ_MASK)
        for ext in expired:
            del missing[ext]
        return due


class RetransmissionBuffer:
    """The last ``capacity`` packets by sequence number, in a ring indexed by ``seq & mask``."""

    __slots__ = ("_mask", "_packets", "_seqs")

    def __init__(self, capacity: int = 1024) -> None:
        if capacity < 1 or capacity > 0x10000 or capacity & (capacity - 1):
            raise ValueError(f"capacity must be a power of two up to 65536, got {capacity}")
        self._mask = capacity - 1
        self._packets: list[bytes | None] = [None] * capacity
        self._seqs: list[int] = [-1] * capacity

    @property
    def capacity(self) -> int:
        return self._mask + 1

    def put(self, seq: int, packet: bytes) -> None:
        seq &= _SEQ_MASK
        index = seq & self._mask
        self._seqs[index] = seq
        self._packets[index] = packet

    def get(self, seq: int) -> bytes | None:
        seq &= _SEQ_MASK
        index = seq & self._mask
        if self._seqs[index] != seq:
            return None
        return self._packets[index]

    def clear(self) -> None:
        capacity = self._mask + 1
        self._packets[:] = [None] * capacity
        self._seqs[:] = [-1] * capacity
