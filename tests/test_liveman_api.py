"""liveman's own API against real nodes: the merged and per-node stream views, SSE, stream
create/delete, pinning, an SSE-mode node, extra ICE servers in answers, metrics and info."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator

import httpx
import pytest
from clients import play, publish
from conftest import LiveionProcess
from helpers.cluster import LivemanProcess, all_running, node_toml, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")

COTURN_SECRET = "coturn-secret"
NODE_STUN = "stun:node-stun.example.com:3478"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[LivemanProcess, LiveionProcess, LiveionProcess]]:
    tmp = tmp_path_factory.mktemp("api")
    node_ice = f'[[ice_servers]]\nurls = ["{NODE_STUN}"]\n'
    polled, followed = LiveionProcess(tmp, node_ice), LiveionProcess(tmp, node_ice)
    liveman = LivemanProcess(tmp, node_toml("polled", polled) + node_toml(
        "followed", followed, mode="sse") + (
        "[cluster]\npoll_interval_ms = 300\n"
        "[extra_ice]\noverride_upstream_ice_servers = true\n"
        '[[extra_ice.ice_servers]]\nurls = ["stun:liveman-stun.example.com:3478"]\n'
        f'[extra_ice.coturn]\nurls = ["turn:turn.example.com:3478"]\nsecret = "{COTURN_SECRET}"\n'
        "ttl = 600\n"))
    try:
        wait_until(lambda: all_running(liveman, ["polled", "followed"]), 10, "nodes running")
        yield liveman, polled, followed
    finally:
        liveman.stop()
        polled.stop()
        followed.stop()


def streams_on(liveman: LivemanProcess, stream: str) -> dict[str, object]:
    answer = httpx.get(f"{liveman.url}/api/streams/{stream}", timeout=5)
    return answer.json() if answer.status_code == 200 else {}


async def test_pinned_publish_to_an_sse_node_and_extra_ice_links(
        cluster: tuple[LivemanProcess, LiveionProcess, LiveionProcess]) -> None:
    liveman, _, followed = cluster
    publisher = await publish(liveman.url + "", "pinned?nodes=followed")
    try:
        links = publisher.response.headers.get_list("link")
        # The node's own ICE server is dropped (override), liveman's are added.
        assert not any(NODE_STUN in link for link in links)
        assert any("stun:liveman-stun.example.com:3478" in link for link in links)
        turn = next(link for link in links if "turn:turn.example.com:3478" in link)
        fields = dict(part.strip().split("=", 1) for part in turn.split(";")[1:])
        username = fields["username"].strip('"')
        expected = base64.b64encode(hmac.new(COTURN_SECRET.encode(), username.encode(),
                                             hashlib.sha1).digest()).decode()
        assert fields["credential"].strip('"') == expected
        assert 590 <= int(username) - time.time() <= 600
        # Directly on the node it is there; liveman learns it over the node's SSE feed.
        assert httpx.get(f"{followed.url}/api/streams/pinned", timeout=5).status_code == 200
        wait_until(lambda: list(streams_on(liveman, "pinned")) == ["followed"], 5,
                   "liveman to see the stream on the SSE node")
    finally:
        await publisher.close()


async def test_merged_view_per_node_view_and_sse(
        cluster: tuple[LivemanProcess, LiveionProcess, LiveionProcess]) -> None:
    liveman, polled, followed = cluster
    # One stream name published on both nodes (straight to each): liveman merges them.
    first, second = await publish(polled.url, "merged"), await publish(followed.url, "merged")
    wait_until(lambda: set(streams_on(liveman, "merged")) == {"polled", "followed"}, 5,
               "both nodes listed")
    player = await play(liveman.url, "merged")
    try:
        assert await player.wait_frames("video", 5) >= 5
        wait_until(lambda: sum(len(s["subscribe"]["sessions"])  # type: ignore[index]
                               for s in streams_on(liveman, "merged").values()) == 1, 5,
                   "the viewer listed")
        listed = httpx.get(f"{liveman.url}/api/streams/", timeout=5).json()
        merged = next(s for s in listed if s["id"] == "merged")
        assert merged["statsScope"] == "clusterNodeWork"
        assert len(merged["publish"]["sessions"]) == 2
        assert len(merged["subscribe"]["sessions"]) == 1
        assert merged["publish"]["leaveAt"] == 0
        per_node = streams_on(liveman, "merged")
        assert all(s["statsScope"] == "node" for s in per_node.values())  # type: ignore[index]
        # The SSE feed starts with the merged list.
        with httpx.stream("GET", f"{liveman.url}/api/sse/streams", timeout=10) as feed:
            assert feed.headers["content-type"].startswith("text/event-stream")
            for line in feed.iter_lines():
                if line.startswith("data:"):
                    snapshot = json.loads(line[5:])
                    break
        assert "merged" in {s["id"] for s in snapshot}
    finally:
        await player.close()
        await first.close()
        await second.close()


async def test_create_and_delete_a_stream_through_liveman(
        cluster: tuple[LivemanProcess, LiveionProcess, LiveionProcess]) -> None:
    liveman, polled, _ = cluster
    with httpx.Client(base_url=liveman.url, timeout=5) as client:
        assert client.post("/api/streams/empty?nodes=polled").status_code == 204
        assert httpx.get(f"{polled.url}/api/streams/empty", timeout=5).status_code == 200
        wait_until(lambda: "polled" in streams_on(liveman, "empty"), 5, "liveman sees it")
        assert client.post("/api/streams/empty").status_code == 409
        assert client.post("/api/streams/bad%20name").status_code == 400
        assert client.delete("/api/streams/empty").status_code == 204
        assert httpx.get(f"{polled.url}/api/streams/empty", timeout=5).status_code == 404
        wait_until(lambda: not streams_on(liveman, "empty"), 5, "liveman forgets it")
        assert client.delete("/api/streams/empty").status_code == 404


async def test_metrics_and_info(
        cluster: tuple[LivemanProcess, LiveionProcess, LiveionProcess]) -> None:
    liveman, _, _ = cluster
    publisher = await publish(liveman.url, "counted")
    await publisher.close()
    text = httpx.get(f"{liveman.url}/metrics", timeout=5).text
    assert 'liveman_nodes{status="running"} 2.0' in text
    assert 'liveman_proxy_requests_total{outcome="201",route="whip"}' in text
    assert 'liveman_placements_total{kind="whip",outcome="serve"}' in text
    assert "liveman_proxy_latency_seconds_bucket" in text
    info = httpx.get(f"{liveman.url}/api/info", timeout=5).json()
    assert info["version"] and "cluster" in info["features"]
    assert httpx.get(f"{liveman.url}/readyz", timeout=5).json()["status"] == "ok"
