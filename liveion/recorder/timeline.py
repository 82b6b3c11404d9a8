"""Where each frame sits on a recording's timeline (sans-IO).

A track's first frame is placed by wall-clock time: the publisher's sender reports map its
RTP timestamps to NTP time, which is what keeps audio and video aligned (both tracks' reports
come from the same sender clock). Until a track's first report arrives, the arrival time of
its packets stands in. Every later frame is placed by its RTP timestamp distance from the
track's first frame, so packet loss, gaps and jitter never shift the timeline.
"""

from __future__ import annotations

from dataclasses import dataclass

NTP_FRACTION = 1 << 32


def ntp_to_seconds(ntp: int) -> float:
    return ntp / NTP_FRACTION


@dataclass(slots=True)
class _ClockMapping:
    """RTP timestamp `rtp` was taken at wall time `seconds` (NTP seconds)."""

    rtp: int
    seconds: float


class TrackClock:
    """Unwraps one track's 32-bit RTP timestamps and maps them to wall time."""

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self._last: int | None = None
        self._extended = 0
        self._report: _ClockMapping | None = None
        self._arrival: _ClockMapping | None = None

    def extend(self, timestamp: int) -> int:
        """The 64-bit timestamp of a 32-bit one, assuming no jump above 2^31 ticks."""
        if self._last is None:
            self._extended = timestamp
        else:
            delta = (timestamp - self._last) & 0xFFFFFFFF
            self._extended += delta - (1 << 32) if delta >= 1 << 31 else delta
        self._last = timestamp
        return self._extended

    def on_sender_report(self, ntp: int, rtp_ts: int) -> None:
        self._report = _ClockMapping(self._unwrap_near(rtp_ts), ntp_to_seconds(ntp))

    def on_arrival(self, timestamp: int, seconds: float) -> None:
        """A packet with `timestamp` arrived at wall time `seconds` (NTP seconds)."""
        if self._arrival is None:
            self._arrival = _ClockMapping(self._unwrap_near(timestamp), seconds)

    @property
    def has_report(self) -> bool:
        return self._report is not None

    def wall_time(self, extended: int, from_report: bool) -> float | None:
        """Wall time of `extended` from the sender's clock (its reports) or from ours
        (arrival times). Tracks are only comparable when both use the same one."""
        mapping = self._report if from_report else self._arrival
        if mapping is None:
            return None
        return mapping.seconds + (extended - mapping.rtp) / self.clock_rate

    def _unwrap_near(self, timestamp: int) -> int:
        """`timestamp` unwrapped relative to the last one seen (reports may lag packets)."""
        if self._last is None:
            return timestamp
        delta = (timestamp - self._last) & 0xFFFFFFFF
        if delta >= 1 << 31:
            delta -= 1 << 32
        return self._extended + delta


class TrackTimeline:
    """Decode times of one track, in its timescale, relative to the recording's start."""

    def __init__(self, clock: TrackClock, timescale: int) -> None:
        self.clock = clock
        self.timescale = timescale
        self._first: int | None = None
        self._first_dts = 0
        self.last_dts = -1

    @property
    def started(self) -> bool:
        return self._first is not None

    def start_at(self, extended: int, start_seconds: float, from_report: bool) -> None:
        """Anchor the track: the frame at `extended` is placed by its wall time.

        A frame a few ms before the recording's start (audio captured just before the video
        keyframe that opened it) is placed at 0 rather than dropped."""
        wall = self.clock.wall_time(extended, from_report)
        offset = 0.0 if wall is None else wall - start_seconds
        self._first = extended
        self._first_dts = max(0, round(offset * self.timescale))

    def dts(self, extended: int) -> int:
        assert self._first is not None, "start_at() first"
        ticks = (extended - self._first) * self.timescale // self.clock.clock_rate
        return self._first_dts + ticks
