"""Keyframe request merging and throttling (liveion.rtp.keyframe)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from liveion.rtp.keyframe import KeyframeRequester


def test_first_request_goes_out() -> None:
    req = KeyframeRequester(0.5)
    assert req.request(10.0) is True
    assert req.pending is False
    assert req.poll(10.0) is False


def test_requests_within_interval_merge_into_one_deferred() -> None:
    req = KeyframeRequester(0.5)
    assert req.request(0.0)
    assert req.request(0.1) is False
    assert req.request(0.2) is False
    assert req.request(0.3) is False
    assert req.pending
    assert req.poll(0.4) is False
    assert req.poll(0.5) is True  # one PLI for all three
    assert req.poll(0.6) is False
    assert req.poll(5.0) is False
    # The deferred PLI counts for throttling.
    assert req.request(0.8) is False
    assert req.poll(1.0) is True


def test_request_after_interval_goes_out_directly() -> None:
    req = KeyframeRequester(0.5)
    assert req.request(0.0)
    assert req.request(0.5)
    assert req.request(1.3)


def test_late_request_supersedes_pending() -> None:
    req = KeyframeRequester(0.5)
    req.request(0.0)
    req.request(0.1)
    assert req.request(0.7) is True  # nobody polled in time: send now
    assert req.pending is False
    assert req.poll(0.8) is False


def test_poll_without_request() -> None:
    req = KeyframeRequester(0.5)
    assert req.poll(0.0) is False
    assert req.poll(100.0) is False


def test_reset() -> None:
    req = KeyframeRequester(0.5)
    req.request(0.0)
    req.request(0.1)
    req.reset()
    assert not req.pending
    assert req.poll(1.0) is False
    assert req.request(0.2) is True


def test_zero_interval() -> None:
    req = KeyframeRequester(0.0)
    assert all(req.request(t / 10) for t in range(10))


def test_negative_interval_rejected() -> None:
    with pytest.raises(ValueError):
        KeyframeRequester(-1.0)


@given(
    st.floats(0.05, 2.0),
    st.lists(st.floats(0.0, 20.0, allow_nan=False), max_size=40),
)
def test_throttle_and_liveness(interval: float, raw_times: list[float]) -> None:
    """PLIs are never closer than the interval, and every request is answered by a PLI no
    later than one interval (plus the polling step) after it."""
    req = KeyframeRequester(interval)
    step = 0.01
    requests = sorted(raw_times)
    sent: list[float] = []
    ri = 0
    t = 0.0
    end = (requests[-1] if requests else 0.0) + interval + 2 * step
    while t <= end:
        while ri < len(requests) and requests[ri] <= t:
            if req.request(requests[ri]):
                sent.append(requests[ri])
            ri += 1
        if req.poll(t):
            sent.append(t)
        t += step
    for a, b in itertools.pairwise(sent):
        assert b - a >= interval - 1e-6
    for r in requests:
        assert any(r <= s <= r + interval + step + 1e-6 for s in sent)
    assert not req.pending
