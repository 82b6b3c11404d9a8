"""Merging and throttling of keyframe requests (PLI) towards a publisher, sans-IO."""

from __future__ import annotations

from typing import Final

__all__ = ["KeyframeRequester"]

_EPSILON: Final = 1e-9


class KeyframeRequester:
    """Turns keyframe requests from any number of subscribers into upstream PLIs.

    At most one PLI goes upstream per ``min_interval`` seconds. A request that arrives
    sooner is remembered, and all such requests are merged into one PLI that :meth:`poll`
    releases once the interval has passed.
    """

    __slots__ = ("_last_sent", "_min_interval", "_pending")

    def __init__(self, min_interval: float = 0.5) -> None:
        if min_interval < 0:
            raise ValueError(f"min_interval must not be negative, got {min_interval}")
        self._min_interval = min_interval
        self._last_sent: float | None = None
        self._pending = False

    @property
    def pending(self) -> bool:
        """Whether a deferred request is waiting for :meth:`poll`."""
        return self._pending

    def _due(self, now: float) -> bool:
        last = self._last_sent
        return last is None or now - last >= self._min_interval - _EPSILON

    def request(self, now: float) -> bool:
        """A subscriber wants a keyframe. True: send a PLI upstream now."""
        if self._due(now):
            self._last_sent = now
            self._pending = False
            return True
        self._pending = True
        return False

    def poll(self, now: float) -> bool:
        """True when a deferred request is due now (send a PLI upstream)."""
        if self._pending and self._due(now):
            self._last_sent = now
            self._pending = False
            return True
        return False

    def reset(self) -> None:
        """Forget the history (e.g. a new publisher): the next request goes out at once."""
        self._last_sent = None
        self._pending = False
