"""Puts RTP packets back in sequence order and reports gaps (sans-IO)."""

from __future__ import annotations

from typing import Final, Generic, TypeVar

__all__ = ["SequenceWindow"]

T = TypeVar("T")

# A packet this far behind the expected number is not late: the sender restarted its
# sequence (new publisher, SSRC change), so start over from it.
_RESTART_DISTANCE: Final = 1024


class SequenceWindow(Generic[T]):
    """Releases items in 16-bit sequence order, each with a flag saying whether packets
    may be missing right before it.

    In-order packets pass straight through. After a gap, up to ``depth`` later packets are
    held so a reordered packet can still fill it; once more are waiting, the missing ones
    are declared lost. Packets older than what was already released (late or duplicate)
    are dropped, so they can never corrupt a frame assembled without them. The very first
    packet is flagged too: whatever preceded it was never seen.
    """

    __slots__ = ("_depth", "_held", "_next")

    def __init__(self, depth: int = 3) -> None:
        if depth < 0:
            raise ValueError(f"depth must not be negative, got {depth}")
        self._depth = depth
        self._next: int | None = None
        self._held: dict[int, T] = {}

    def push(self, sequence: int, item: T) -> list[tuple[bool, T]]:
        """Feed one packet; returns the packets now released, as (gap_before, item)."""
        sequence &= 0xFFFF
        expected = self._next
        if expected is None:
            self._next = (sequence + 1) & 0xFFFF
            return [(True, item)]
        ahead = (sequence - expected) & 0xFFFF
        if ahead == 0 and not self._held:  # the common case: next in line, nothing waiting
            self._next = (sequence + 1) & 0xFFFF
            return [(False, item)]
        out: list[tuple[bool, T]] = []
        if ahead >= 0x8000:
            if 0x10000 - ahead <= _RESTART_DISTANCE:
                return out  # late or duplicate: its slot was already released or skipped
            self._release_all(out)
            self._next = (sequence + 1) & 0xFFFF
            out.append((True, item))
            return out
        if sequence in self._held:
            return out  # duplicate of a held packet
        self._held[sequence] = item
        self._drain(out, gap=False)
        while len(self._held) > self._depth:
            self._skip_to_earliest()
            self._drain(out, gap=True)
        return out

    def _skip_to_earliest(self) -> None:
        expected = self._next
        assert expected is not None
        self._next = min(self._held, key=lambda seq: (seq - expected) & 0xFFFF)

    def _drain(self, out: list[tuple[bool, T]], gap: bool) -> None:
        held = self._held
        expected = self._next
        assert expected is not None
        while expected in held:
            out.append((gap, held.pop(expected)))
            gap = False
            expected = (expected + 1) & 0xFFFF
        self._next = expected

    def _release_all(self, out: list[tuple[bool, T]]) -> None:
        while self._held:
            self._skip_to_earliest()
            self._drain(out, gap=True)
