"""Is a peer still there? Judged by when it was last heard from (sans-IO: the caller passes
`now`, in seconds on any monotonic clock).

What counts as hearing from the peer is the glue's choice (liveion/sfu/peer.py): an
authenticated STUN binding request, an RTP/RTCP packet that passed SRTP, DTLS data, or in
full ICE an answer to our RFC 7675 consent check. Recording one is a single attribute store,
cheap enough for every received packet. A peer that keeps sending is never dropped; one that
goes silent for `timeout` seconds is gone.
"""

from __future__ import annotations


class Liveness:
    """The last time a peer was heard from, and whether that is now too long ago."""

    __slots__ = ("last_heard", "timeout")

    def __init__(self, timeout: float, now: float) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.timeout = timeout
        self.last_heard = now
        """Starts at `now`: a peer just connected has just been heard from."""

    def heard(self, now: float) -> None:
        """Something authentic arrived from the peer at `now`."""
        if now > self.last_heard:
            self.last_heard = now

    def remaining(self, now: float) -> float:
        """Seconds until the peer counts as gone if nothing more arrives (<= 0: gone)."""
        return self.last_heard + self.timeout - now

    def expired(self, now: float) -> bool:
        """Nothing has arrived for `timeout` seconds."""
        return self.remaining(now) <= 0
