"""Limits: the per-client rate limit (token-bucket core and the real node), the node-wide
session limit, request body caps and unguessable session ids."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import httpx
import pytest
from conftest import LiveionProcess
from hypothesis import given
from hypothesis import strategies as st
from sdp_samples import SDP, player_offer, problem, publisher_offer, session_path

from liveion.ratelimit import TokenBuckets

# ---- the token-bucket core ---------------------------------------------------------------------


def test_burst_then_the_rate() -> None:
    buckets = TokenBuckets(rate=2.0, burst=3)
    assert [buckets.take("a", 100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a", 100.0) == pytest.approx(0.5)
    assert buckets.take("a", 100.25) == pytest.approx(0.25)  # half a token has come back
    assert buckets.take("a", 100.5) == 0.0
    assert buckets.take("a", 100.5) == pytest.approx(0.5)


def test_clients_have_their_own_buckets() -> None:
    buckets = TokenBuckets(rate=1.0, burst=1)
    assert buckets.take("a", 0.0) == 0.0
    assert buckets.take("a", 0.0) > 0
    assert buckets.take("b", 0.0) == 0.0


def test_a_bucket_refills_to_the_burst_only() -> None:
    buckets = TokenBuckets(rate=10.0, burst=2)
    buckets.take("a", 0.0)
    results = [buckets.take("a", 1000.0) for _ in range(3)]
    assert results[:2] == [0.0, 0.0] and results[2] > 0


def test_memory_is_bounded_by_max_clients() -> None:
    buckets = TokenBuckets(rate=1.0, burst=5, max_clients=100)
    for i in range(1000):
        buckets.take(f"client-{i}", i * 0.001)
    assert len(buckets) <= 100
    # The most recent client kept its bucket: one token spent, four left.
    assert [buckets.take("client-999", 1.0) == 0.0 for _ in range(5)] == [True] * 4 + [False]


@given(st.lists(st.tuples(st.sampled_from("abc"), st.floats(0, 0.5)), max_size=200),
       st.floats(0.1, 50), st.integers(1, 20))
def test_never_more_than_burst_plus_rate_times_elapsed(steps: list[tuple[str, float]],
                                                       rate: float, burst: int) -> None:
    buckets = TokenBuckets(rate, burst)
    now = 0.0
    allowed = dict.fromkeys("abc", 0)
    for key, gap in steps:
        now += gap
        wait = buckets.take(key, now)
        assert 0 <= wait <= 1 / rate + 1e-9
        if wait == 0:
            allowed[key] += 1
    for count in allowed.values():
        assert count <= burst + rate * now + 1e-6


# ---- rate limit on a real node ---------------------------------------------------------------


async def test_rate_limit_answers_429_with_retry_after(
        start_liveion: Callable[..., LiveionProcess]) -> None:
    server = start_liveion("[limits]\nrate_limit = 1\nrate_burst = 3\n")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
        for i in range(3):
            assert (await client.post(f"/api/streams/r{i}")).status_code == 204
        body = problem(await client.post("/api/streams/r3"), 429)
        assert "too many" in body["detail"]
        refused = await client.delete("/api/streams/r0")
        problem(refused, 429)
        assert int(refused.headers["retry-after"]) >= 1
        # Reading is not limited, and the refused requests did nothing.
        listed = {s["id"] for s in (await client.get("/api/streams/")).json()}
        assert listed == {"r0", "r1", "r2"}
        # Another client (behind the local reverse proxy, X-Forwarded-For) has its own bucket.
        other = {"X-Forwarded-For": "198.51.100.7"}
        assert (await client.post("/api/streams/r4", headers=other)).status_code == 204
        # After Retry-After the first client may go on.
        await asyncio.sleep(int(refused.headers["retry-after"]) + 0.2)
        assert (await client.delete("/api/streams/r0")).status_code == 204


async def test_static_tokens_are_not_rate_limited(
        start_liveion: Callable[..., LiveionProcess]) -> None:
    """Operators and a liveman in front of the node (which sends every viewer's requests
    from one address) use static tokens; they are not throttled, other credentials are."""
    server = start_liveion('[auth]\nsecret = "rl-secret"\ntokens = ["rl-static"]\n'
                           "[limits]\nrate_limit = 1\nrate_burst = 1\n")
    static = {"Authorization": "Bearer rl-static"}
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
        statuses = [(await client.post(f"/api/streams/s{i}", headers=static)).status_code
                    for i in range(10)]
        assert set(statuses) == {204}
        wrong = {"Authorization": "Bearer not-the-static-token"}
        statuses = [(await client.post("/api/streams/x", headers=wrong)).status_code
                    for _ in range(3)]
        assert statuses[0] == 401 and 429 in statuses[1:]


async def test_default_limits_allow_a_busy_client(liveion: LiveionProcess) -> None:
    """The defaults are generous: a burst of 60 state-changing requests from one address
    (what the conformance tests do) is never refused."""
    async with httpx.AsyncClient(base_url=liveion.url, timeout=20) as client:
        statuses = [(await client.delete(f"/session/busy/{i:032x}")).status_code
                    for i in range(60)]
    assert set(statuses) == {404}


async def test_rate_limit_zero_disables_it(start_liveion: Callable[..., LiveionProcess]) -> None:
    server = start_liveion("[limits]\nrate_limit = 0\nrate_burst = 1\n")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
        statuses = [(await client.delete(f"/session/free/{i:032x}")).status_code
                    for i in range(20)]
    assert set(statuses) == {404}


# ---- node-wide session limit -----------------------------------------------------------------


async def test_max_sessions_counts_whip_and_whep_and_answers_503(
        start_liveion: Callable[..., LiveionProcess]) -> None:
    server = start_liveion("[limits]\nmax_sessions = 2\n")
    whip, whep = await publisher_offer(), await player_offer()
    headers = {"Content-Type": SDP}
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
        first = await client.post("/whip/a", content=whip, headers=headers)
        second = await client.post("/whep/b", content=whep, headers=headers)
        assert (first.status_code, second.status_code) == (201, 201)
        for kind, sdp in (("whep", whep), ("whip", whip)):
            full = await client.post(f"/{kind}/c", content=sdp, headers=headers)
            assert "maximum of 2 sessions" in problem(full, 503)["detail"]
            assert int(full.headers["retry-after"]) > 0
        assert (await client.delete(session_path(second))).status_code == 200
        again = await client.post("/whep/c", content=whep, headers=headers)
        assert again.status_code == 201, again.text
        streams = {s["id"]: s for s in (await client.get("/api/streams/")).json()}
        sessions = sum(len(s["publish"]["sessions"]) + len(s["subscribe"]["sessions"])
                       for s in streams.values())
        assert sessions == 2


async def test_concurrent_offers_do_not_overshoot_max_sessions(
        start_liveion: Callable[..., LiveionProcess]) -> None:
    server = start_liveion("[limits]\nmax_sessions = 3\n")
    whep = await player_offer()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        responses = await asyncio.gather(*[
            client.post("/whep/crowd", content=whep, headers={"Content-Type": SDP})
            for _ in range(8)])
        codes = sorted(r.status_code for r in responses)
        assert codes == [201] * 3 + [503] * 5, codes
        body = (await client.get("/api/streams/crowd")).json()
        assert len(body["subscribe"]["sessions"]) == 3


# ---- bodies and session ids ------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_offer_bodies_are_capped_at_64_kib(liveion: LiveionProcess, chunked: bool) -> None:
    sdp = (await publisher_offer()).encode()
    padded = sdp + b"a=x-padding:" + b"x" * (64 * 1024) + b"\r\n"

    async def body() -> object:
        yield padded

    async with httpx.AsyncClient(base_url=liveion.url, timeout=20) as client:
        response = await client.post("/whip/cap", headers={"Content-Type": SDP},
                                     content=body() if chunked else padded)
        problem(response, 413)
        assert (await client.get("/api/streams/cap")).status_code in (200, 404)
        ok = await client.post("/whip/cap", headers={"Content-Type": SDP}, content=sdp)
        assert ok.status_code == 201, ok.text


async def test_session_ids_are_128_random_bits(liveion: LiveionProcess) -> None:
    whep = await player_offer()
    async with httpx.AsyncClient(base_url=liveion.url, timeout=20) as client:
        paths = [session_path(await client.post("/whep/ids", content=whep,
                                                headers={"Content-Type": SDP}))
                 for _ in range(6)]
    ids = [path.rsplit("/", 1)[1] for path in paths]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids), ids
    assert len(set(ids)) == len(ids)
