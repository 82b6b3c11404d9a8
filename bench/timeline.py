"""How subscribers find the publisher's send time of what they receive (for latency).

The publisher gives video frame number `g` (counted since it started, across loops of the
clip) the RTP timestamp

    ts(g) = base + U(g) * step          (mod 2**32, step = 90000 / fps)

where the "unit" U(g) advances by 1 per frame, or by 2 at frames where a hash of `g` says
so (one in four): the frame rate stays 30 fps on the wire, the timestamps skip a slot now
and then. Decoders do not care, and the pattern of skips is a fingerprint that survives
what servers do to timestamps:

- an SFU adds a constant (liveion rewrites timestamps by a per-publisher offset);
- the aiortc baseline re-encodes: its receiver subtracts the first timestamp it saw, its
  sender adds a random origin, and PyAV rescales frames shared through MediaRelay to the
  encoder's 1/30 s time base in place (so every subscriber but the first to encode a frame
  gets timestamps rounded to whole frame slots). Timestamps that are whole slots survive
  all of that exactly; a sub-slot fingerprint would not.

A subscriber takes its first 40 distinct video timestamps, finds the publisher frame `g0`
whose next 39 unit steps match theirs (a wrong alignment matches 39 steps with probability
~1e-8), and from then on maps each timestamp to its frame with one subtraction, one
division and a bisection. The publisher writes each frame's send time (CLOCK_MONOTONIC,
the same clock in every process) into a shared-memory ring indexed by `g`; latency =
arrival - send time of the frame the packet belongs to.
"""

from __future__ import annotations

import bisect
import struct
from multiprocessing import shared_memory

MASK32 = 0xFFFFFFFF
MAX_UNITS_AHEAD = 1 << 16
RING = 4096
"""Frames kept (over two minutes at 30 fps)."""
_HEADER = struct.Struct("<IIq")  # base timestamp, step, last frame number written


def _mix(value: int) -> int:
    """MurmurHash3's 32-bit finalizer: neighbouring inputs give unrelated outputs."""
    h = value & MASK32
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & MASK32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & MASK32
    return h ^ (h >> 16)


class FrameClock:
    """RTP timestamps of video frames: whole frame slots, with a known pattern of skips."""

    def __init__(self, base: int, step: int) -> None:
        self.base = base & MASK32
        self.step = step
        self._units = [0]

    def _extend(self, frames: int) -> None:
        units = self._units
        while len(units) < frames:
            g = len(units)
            units.append(units[-1] + (2 if _mix(g) % 4 == 0 else 1))

    def unit(self, g: int) -> int:
        self._extend(g + 1)
        return self._units[g]

    def timestamp(self, g: int) -> int:
        return (self.base + self.unit(g) * self.step) & MASK32

    def frame_at(self, unit: int) -> int:
        """The frame with this unit, or -1 (a skipped slot, or not a frame's timestamp)."""
        units = self._units
        if unit < 0 or unit > units[-1] + MAX_UNITS_AHEAD:
            return -1
        while units[-1] < unit:
            self._extend(len(units) + 256)
        g = bisect.bisect_left(units, unit)
        return g if g < len(units) and units[g] == unit else -1


class SendLog:
    """Frame send times in shared memory: written by the publisher, read by subscribers."""

    def __init__(self, shm: shared_memory.SharedMemory, owner: bool) -> None:
        self._shm = shm
        self._owner = owner
        self._clock: FrameClock | None = None
        buf = shm.buf
        assert buf is not None
        self._header = buf[: _HEADER.size]
        start = _HEADER.size
        self._times = buf[start : start + 8 * RING].cast("d")
        self._frames = buf[start + 8 * RING : start + 16 * RING].cast("q")

    @classmethod
    def create(cls, base: int, step: int) -> SendLog:
        shm = shared_memory.SharedMemory(create=True, size=_HEADER.size + 16 * RING)
        log = cls(shm, owner=True)
        for i in range(RING):
            log._frames[i] = -1
        _HEADER.pack_into(log._header, 0, base & MASK32, step, -1)
        return log

    @classmethod
    def attach(cls, name: str) -> SendLog:
        # Processes spawned by one orchestrator share its resource tracker, which already
        # knows the segment from the publisher: attaching registers nothing new, and the
        # publisher's unlink is the one that unregisters it.
        return cls(shared_memory.SharedMemory(name=name), owner=False)

    @property
    def name(self) -> str:
        return self._shm.name

    def clock(self) -> FrameClock:
        """The publisher's frame clock (one instance per log, shared by its readers)."""
        if self._clock is None:
            base, step, _ = _HEADER.unpack_from(self._header)
            self._clock = FrameClock(base, step)
        return self._clock

    @property
    def last_frame(self) -> int:
        return int(_HEADER.unpack_from(self._header)[2])

    def record(self, g: int, sent_at: float) -> None:
        slot = g % RING
        self._times[slot] = sent_at
        self._frames[slot] = g
        struct.pack_into("<q", self._header, 8, g)

    def sent_at(self, g: int) -> float | None:
        slot = g % RING
        if self._frames[slot] != g:
            return None
        return float(self._times[slot])

    def close(self) -> None:
        self._header.release()
        self._times.release()
        self._frames.release()
        self._shm.close()
        if self._owner:
            self._shm.unlink()


class OffsetFinder:
    """Learns where a subscriber's video timestamps sit on the publisher's frame timeline."""

    FRAMES = 40
    SEARCH_FRAMES = 900
    """How far back (30 s at 30 fps) the first received frame may be."""

    def __init__(self, clock: FrameClock) -> None:
        self.clock = clock
        self.samples: list[int] = []

    def add(self, timestamp: int, last_frame: int) -> int | None:
        """Feed the next distinct received timestamp; once the alignment is known, returns
        the received timestamp that unit 0 would have (`origin`), else None."""
        samples = self.samples
        samples.append(timestamp)
        if len(samples) < self.FRAMES:
            return None
        clock, step = self.clock, self.clock.step
        first = samples[0]
        relative = [(ts - first) & MASK32 for ts in samples]
        if all(r % step == 0 for r in relative):
            steps = [r // step for r in relative]
            newest = last_frame - self.FRAMES + 1
            for g0 in range(newest, max(-1, newest - self.SEARCH_FRAMES), -1):
                u0 = clock.unit(g0)
                if all(clock.unit(g0 + i) - u0 == steps[i] for i in range(1, self.FRAMES)):
                    return (first - u0 * step) & MASK32
        samples.pop(0)  # a lost frame or an odd timestamp in the window: slide on
        return None
