"""Reception statistics for one incoming RTP stream (RFC 3550 appendix A.1, A.3 and A.8).

Sans-IO: the caller feeds sequence numbers, RTP timestamps and arrival times (seconds on a
monotonic clock) and asks for a :class:`~liveion.rtp.rtcp.ReportBlock` when it sends RTCP.
"""

from __future__ import annotations

from array import array
from typing import Final

from liveion.rtp.rtcp import ReportBlock, ntp_middle32

__all__ = ["ReceiveStatistics"]

MAX_DROPOUT: Final = 3000  # a forward jump up to this is a gap, beyond it a possible restart
MAX_MISORDER: Final = 100  # a backward step up to this is a late (reordered) packet
_SEQ_MOD: Final = 1 << 16
_CUM_LOST_MIN: Final = -(1 << 23)
_CUM_LOST_MAX: Final = (1 << 23) - 1
_U32_MAX: Final = 0xFFFFFFFF
_HALF_TS: Final = float(1 << 31)
_TS_MOD: Final = float(1 << 32)

# Recently seen extended sequence numbers, for dropping duplicates. A late packet is at most
# MAX_MISORDER behind the highest one, so a ring larger than that never loses one that can
# still be accepted as late.
_SEEN_SIZE: Final = 256
_SEEN_MASK: Final = _SEEN_SIZE - 1
_NEVER: Final = -(1 << 62)  # an empty slot (extended numbers of late packets can be negative)


class ReceiveStatistics:
    """Loss, extended highest sequence number, interarrival jitter and LSR/DLSR for one SSRC.

    * Sequence numbers wrap at 2**16 (the cycle count is kept).
    * A packet up to ``MAX_MISORDER`` behind the highest one is counted as late (reordered).
    * A packet seen already (within the recent window) is a duplicate and is not counted.
    * A jump by more than ``MAX_DROPOUT`` is ignored, unless the next packet continues from
      it: then the sender restarted and the statistics start over (RFC 3550 A.1).
    """

    __slots__ = (
        "_bad_seq",
        "_base_ext",
        "_clock_rate",
        "_cycles",
        "_expected_prior",
        "_jitter",
        "_last_sr_arrival",
        "_last_transit",
        "_lsr",
        "_max_seq",
        "_received",
        "_received_prior",
        "_seen",
        "_started",
    )

    def __init__(self, clock_rate: int) -> None:
        if clock_rate <= 0:
            raise ValueError(f"clock rate must be positive, got {clock_rate}")
        self._clock_rate = float(clock_rate)
        self._seen = array("q", [_NEVER]) * _SEEN_SIZE
        self._lsr = 0
        self._last_sr_arrival: float | None = None
        self._reset(0)
        self._started = False

    def _reset(self, seq: int) -> None:
        self._started = True
        self._base_ext = seq
        self._max_seq = seq
        self._cycles = 0
        self._bad_seq = -1
        self._received = 0
        self._expected_prior = 0
        self._received_prior = 0
        self._jitter = 0.0
        self._last_transit: float | None = None
        seen = self._seen
        for i in range(_SEEN_SIZE):
            seen[i] = _NEVER

    # -- input --------------------------------------------------------------------------

    def add(self, seq: int, rtp_ts: int, arrival: float) -> None:
        """Account for one received packet (``arrival`` in seconds)."""
        seq &= 0xFFFF
        if not self._started:
            self._reset(seq)
            ext = seq
        else:
            max_seq = self._max_seq
            delta = (seq - max_seq) & 0xFFFF
            if delta == 0:
                return  # duplicate of the highest packet
            if delta < MAX_DROPOUT:
                if seq < max_seq:
                    self._cycles += _SEQ_MOD
                self._max_seq = seq
                ext = self._cycles + seq
            elif delta <= _SEQ_MOD - MAX_MISORDER:
                # A very large jump: wait for the next packet to tell a restart from garbage.
                if seq != self._bad_seq:
                    self._bad_seq = (seq + 1) & 0xFFFF
                    return
                self._reset(seq)
                ext = seq
            else:
                ext = self._cycles + max_seq - (_SEQ_MOD - delta)  # late packet
                if ext < self._base_ext:
                    self._base_ext = ext
        slot = ext & _SEEN_MASK
        if self._seen[slot] == ext:
            return  # duplicate
        self._seen[slot] = ext
        self._received += 1
        self._update_jitter(rtp_ts, arrival)

    def _update_jitter(self, rtp_ts: int, arrival: float) -> None:
        transit = arrival * self._clock_rate - rtp_ts
        last = self._last_transit
        self._last_transit = transit
        if last is None:
            return
        d = transit - last
        if d >= _HALF_TS or d < -_HALF_TS:  # the RTP timestamp wrapped
            d = (d + _HALF_TS) % _TS_MOD - _HALF_TS
        if d < 0:
            d = -d
        self._jitter += (d - self._jitter) / 16.0

    def on_sender_report(self, ntp: int, arrival: float) -> None:
        """Remember an SR from this source, for LSR and DLSR in the next report blocks."""
        self._lsr = ntp_middle32(ntp)
        self._last_sr_arrival = arrival

    # -- output -------------------------------------------------------------------------

    @property
    def packets_received(self) -> int:
        return self._received

    @property
    def extended_highest_seq(self) -> int:
        return self._cycles + self._max_seq

    @property
    def expected(self) -> int:
        if not self._started:
            return 0
        return self.extended_highest_seq - self._base_ext + 1

    @property
    def lost(self) -> int:
        """Cumulative packets lost (may be negative after restarts of the base; unclamped)."""
        return self.expected - self._received

    @property
    def jitter(self) -> float:
        """Interarrival jitter in RTP timestamp units."""
        return self._jitter

    def report_block(self, ssrc: int, now: float) -> ReportBlock:
        """The report block for this source; the loss fraction covers the time since the
        previous call."""
        expected = self.expected
        received = self._received
        expected_interval = expected - self._expected_prior
        lost_interval = expected_interval - (received - self._received_prior)
        self._expected_prior = expected
        self._received_prior = received
        if expected_interval <= 0 or lost_interval <= 0:
            fraction = 0
        else:
            fraction = min((lost_interval << 8) // expected_interval, 0xFF)
        cumulative = min(max(expected - received, _CUM_LOST_MIN), _CUM_LOST_MAX)
        if self._last_sr_arrival is None:
            lsr = dlsr = 0
        else:
            lsr = self._lsr
            dlsr = min(max(int((now - self._last_sr_arrival) * 65536.0), 0), _U32_MAX)
        return ReportBlock(
            ssrc=ssrc,
            fraction_lost=fraction,
            cumulative_lost=cumulative,
            highest_seq=self.extended_highest_seq & _U32_MAX,
            jitter=min(int(self._jitter), _U32_MAX),
            lsr=lsr,
            dlsr=dlsr,
        )
