"""`/metrics`, `/api/info`, `/healthz`, `/readyz` and `/api/strategy/` as a scraper, a probe
and an operator see them, against real liveion processes with real aiortc peers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from clients import play, publish
from conftest import LiveionProcess
from helpers.inprocess import serve_inprocess
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from liveion.config import load_settings
from liveion.metrics import build_registry
from liveion.sfu.manager import StreamManager

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(base: str) -> Samples:
    response = httpx.get(f"{base}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def until(base: str, check: Any, timeout: float = 20) -> Samples:
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(base)
        if check(samples) or time.monotonic() > deadline:
            return samples
        await asyncio.sleep(0.25)


async def test_metrics_follow_what_happens_on_the_node(liveion: LiveionProcess) -> None:
    base = liveion.url
    idle = scrape(base)
    assert value(idle, "live777_stream") == 0
    assert value(idle, "live777_publish") == 0
    assert value(idle, "live777_reforward") == 0
    assert value(idle, "live777_rtp_bytes_total", direction="in") == 0
    assert any(name == "process_cpu_seconds_total" for name, _ in idle)

    publisher = await publish(base, "m")
    first = await until(base, lambda s: value(s, "live777_rtp_bytes_total", direction="in") > 0)
    assert value(first, "live777_stream") == 1
    assert value(first, "live777_publish") == 1
    later = await until(base, lambda s: value(s, "live777_rtp_bytes_total", direction="in")
                        > value(first, "live777_rtp_bytes_total", direction="in"))
    assert value(later, "live777_stream_bytes_total", stream="m", direction="in") > 0
    assert value(later, "live777_stream_packets_total", stream="m", direction="in") > 0
    assert value(later, "live777_sessions", stream="m", role="publish", state="connected") == 1

    players = [await play(base, "m") for _ in range(2)]
    for player in players:
        assert await player.wait_frames("video", 10) >= 10
    watched = await until(base, lambda s: value(s, "live777_stream_bitrate_bps", stream="m",
                                                direction="out") > 0)
    assert value(watched, "live777_subscribe") == 2
    assert value(watched, "live777_sessions", stream="m", role="subscribe",
                 state="connected") == 2
    assert value(watched, "live777_rtp_bytes_total", direction="out") > 0
    # Each new viewer asked for a keyframe; the node sent PLIs upstream.
    assert value(watched, "live777_stream_plis_total", stream="m", direction="sent") >= 1
    assert ("live777_stream_nacks_total", (("direction", "received"), ("stream", "m"))) in watched
    assert ("live777_stream_packets_lost", (("stream", "m"),)) in watched

    for player in players:
        await player.close()
    await publisher.close()
    assert httpx.delete(f"{base}/api/streams/m").status_code == 204
    gone = await until(base, lambda s: value(s, "live777_stream") == 0)
    assert value(gone, "live777_publish") == 0 and value(gone, "live777_subscribe") == 0
    assert ("live777_stream_bytes_total", (("direction", "in"), ("stream", "m"))) not in gone
    # The node's byte counters keep what the deleted stream carried.
    for direction in ("in", "out"):
        assert value(gone, "live777_rtp_bytes_total", direction=direction) >= \
            value(watched, "live777_rtp_bytes_total", direction=direction) > 0


def test_info_health_and_strategy(start_liveion) -> None:
    server: LiveionProcess = start_liveion(
        "[strategy]\neach_stream_max_sub = 3\nauto_delete_whep = 1500\n")
    info = httpx.get(f"{server.url}/api/info").json()
    assert set(info) == {"version", "gitHash", "buildTime", "features"}
    assert info["version"] and isinstance(info["features"], list)
    assert {"metrics", "sse"} <= set(info["features"])
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    strategy = httpx.get(f"{server.url}/api/strategy/").json()
    assert strategy == {"each_stream_max_sub": 3, "cascade_push_close_sub": False,
                        "auto_create_whip": True, "auto_create_whep": True,
                        "auto_delete_whip": -1, "auto_delete_whep": 1500}


async def test_readyz_says_when_the_node_is_full(start_liveion) -> None:
    server: LiveionProcess = start_liveion("[limits]\nmax_sessions = 1\n")
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    publisher = await publish(server.url, "full")
    try:
        response = httpx.get(f"{server.url}/readyz")
        assert response.status_code == 503
        assert "full" in response.json()["reason"]
        assert httpx.get(f"{server.url}/healthz").status_code == 200
    finally:
        await publisher.close()
    assert httpx.get(f"{server.url}/readyz").status_code == 200


@pytest.fixture
async def inprocess() -> AsyncIterator[tuple[str, Any]]:
    async with serve_inprocess() as served:
        yield served


async def test_readiness_checks_and_shutdown(inprocess) -> None:
    base, app = inprocess
    health = app.state.health
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{base}/readyz")).status_code == 200
        # What the recorder registers when its storage cannot be written.
        remove = health.add_check("storage", lambda: "cannot write to ./storage")
        response = await client.get(f"{base}/readyz")
        assert response.status_code == 503
        assert response.json()["reason"] == "storage: cannot write to ./storage"
        remove()
        assert (await client.get(f"{base}/readyz")).status_code == 200
        health.begin_shutdown()
        response = await client.get(f"{base}/readyz")
        assert (response.status_code, response.json()["reason"]) == (503, "shutting down")
        assert (await client.get(f"{base}/healthz")).status_code == 200


def test_each_node_has_its_own_registry() -> None:
    settings = load_settings(None)
    one, two = StreamManager(settings), StreamManager(settings)
    two.create_stream("elsewhere")
    texts = [generate_latest(build_registry(m, process=False)).decode() for m in (one, two)]
    counts = [value(parse(text), "live777_stream") for text in texts]
    assert counts == [0, 1]


def test_probes_need_no_token_but_admin_feeds_do(start_liveion) -> None:
    server: LiveionProcess = start_liveion('[auth]\ntokens = ["admin-token"]\n')
    for path in ("/metrics", "/api/info", "/healthz", "/readyz"):
        assert httpx.get(f"{server.url}{path}").status_code == 200, path
    for path in ("/api/strategy/", "/api/sse/streams", "/api/sse/events"):
        assert httpx.get(f"{server.url}{path}").status_code == 401, path
    assert httpx.get(f"{server.url}/api/strategy/",
                     headers={"Authorization": "Bearer admin-token"}).status_code == 200
    with httpx.stream("GET", f"{server.url}/api/sse/streams",
                      headers={"Authorization": "Bearer admin-token"}, timeout=10) as response:
        assert response.status_code == 200
        assert next(response.iter_lines()) == "data: []"
    assert "auth" in httpx.get(f"{server.url}/api/info").json()["features"]
