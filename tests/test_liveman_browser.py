"""Real clients through liveman: one liveman in front of two liveion nodes ([[nodes]]).

Chromium publishes its fake camera with the web page that liveman serves
(`/?publish=…`), and a second page watches through liveman; FFmpeg's WHIP muxer publishes
to liveman's `/whip/{stream}` and an aiortc player decodes it through liveman. Each test
asks liveman's `/api/streams/{stream}` which node holds the stream and checks that node
(and only it) has the sessions.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import test_browser
from clients import play
from conftest import LiveionProcess
from helpers.cluster import LivemanProcess, all_running, node_toml
from helpers.cluster import wait_until as wait_for
from test_browser import PageUnderTest, session_counts, wait_until
from test_ffmpeg import ffmpeg_whip

pytestmark = pytest.mark.asyncio(loop_scope="module")

# test_browser's Chromium fixtures (fake camera, loopback ICE), used here by name.
browser = test_browser.browser
open_page = test_browser.open_page

ALIASES = ("node-a", "node-b")


@dataclass
class Cluster:
    liveman: LivemanProcess
    nodes: dict[str, LiveionProcess]

    def log(self) -> str:
        """Every process's log tail, for failure messages (test_browser's `explain`)."""
        parts = [f"--- liveman ---\n{self.liveman.log()[-4000:]}"]
        parts += [f"--- {alias} ---\n{node.log()[-3000:]}" for alias, node in self.nodes.items()]
        return "\n".join(parts)

    async def holders(self, stream: str) -> dict[str, Any] | None:
        """liveman's `{alias: Stream}` for the stream, None while no node has it."""
        async with httpx.AsyncClient(base_url=self.liveman.url, timeout=5) as client:
            response = await client.get(f"/api/streams/{stream}")
        return response.json() if response.status_code == 200 else None

    async def on_node(self, alias: str, stream: str) -> dict[str, Any] | None:
        async with httpx.AsyncClient(base_url=self.nodes[alias].url, timeout=5) as client:
            response = await client.get(f"/api/streams/{stream}")
        return response.json() if response.status_code == 200 else None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp: Path = tmp_path_factory.mktemp("liveman-browser")
    started: list[Any] = []
    try:
        nodes = {}
        for alias in ALIASES:
            nodes[alias] = LiveionProcess(tmp)
            started.append(nodes[alias])
        config = "".join(node_toml(alias, node) for alias, node in nodes.items())
        liveman = LivemanProcess(tmp, config + "[cluster]\npoll_interval_ms = 200\n")
        started.append(liveman)
        wait_for(lambda: all_running(liveman, list(ALIASES)), 10, "both nodes running")
        yield Cluster(liveman, nodes)
    finally:
        for proc in reversed(started):
            proc.stop()


async def the_holder(cluster: Cluster, stream: str,
                     counts: tuple[int, int]) -> tuple[str, dict[str, Any]]:
    """Waits until liveman reports exactly one node with `counts` (publishers, viewers)
    for the stream; returns that node's alias and liveman's view of its stream."""
    found = await wait_until(
        lambda: cluster.holders(stream),
        lambda held: bool(held) and len(held) == 1
        and session_counts(next(iter(held.values()))) == counts,
        f"liveman to show '{stream}' on one node with {counts} sessions", cluster)
    alias, info = next(iter(found.items()))
    assert alias in ALIASES, found
    assert info["id"] == stream
    return alias, info


async def test_chromium_publishes_and_watches_through_liveman(
    cluster: Cluster, open_page: Callable[[str], Awaitable[PageUnderTest]]
) -> None:
    stream = "lm-chromium"
    base = cluster.liveman.url
    # The page liveman serves, publishing from its URL parameters (same-origin /whip).
    publisher = await open_page(f"{base}/?publish={stream}&codec=VP8")
    alias, _ = await the_holder(cluster, stream, (1, 0))
    other = next(a for a in ALIASES if a != alias)
    assert session_counts(await cluster.on_node(alias, stream)) == (1, 0), cluster.log()
    assert await cluster.on_node(other, stream) is None, cluster.log()
    await publisher.page.wait_for_selector('#publish-status[data-kind="ok"]', timeout=10_000)

    player = await open_page(f"{base}/")
    played = await player.call("s => liveion.play(s)", stream)
    assert played["status"] == 201, f"play answered {played}\n{cluster.log()}"
    # liveman answers the node's session URL as a path on itself.
    assert played["location"].startswith(f"/session/{stream}/"), played

    async def play_stats() -> dict[str, Any]:
        stats: dict[str, Any] = await player.call("liveion.playStats()")
        return stats

    first = await wait_until(play_stats, lambda s: s["framesDecoded"] > 30,
                             "more than 30 frames decoded through liveman", cluster)
    await asyncio.sleep(1.5)
    later = await play_stats()
    note = f"player stats {first} -> {later}\n{cluster.log()}"
    assert later["framesDecoded"] > first["framesDecoded"] + 10, note
    assert later["codec"].lower() == "video/vp8", note
    assert later["width"] > 0 and later["height"] > 0, note

    # The viewer was placed on the node that holds the stream (no cascade needed).
    held_by, _ = await the_holder(cluster, stream, (1, 1))
    assert held_by == alias
    assert session_counts(await cluster.on_node(alias, stream)) == (1, 1)

    # The page's streams table reads liveman's merged /api/streams/.
    listed = await player.call(
        "() => liveion.refreshStreams().then(() => "
        "document.querySelector('#streams-table tbody').textContent)")
    assert stream in listed, listed

    # Stop hangs up with DELETE on liveman's session path, forwarded to the node.
    await player.call("liveion.stopPlay()")
    await the_holder(cluster, stream, (1, 0))
    await publisher.call("liveion.stopPublish()")
    await wait_until(lambda: cluster.on_node(alias, stream),
                     lambda info: session_counts(info) == (0, 0),
                     "the publisher session to end after Stop", cluster)


async def test_ffmpeg_publishes_through_liveman_to_aiortc_player(cluster: Cluster) -> None:
    stream = "lm-ffmpeg"
    ffmpeg = ffmpeg_whip(f"{cluster.liveman.url}/whip/{stream}", seconds=30)
    try:
        try:
            alias, info = await the_holder(cluster, stream, (1, 0))
        except BaseException:
            if ffmpeg.poll() is not None and ffmpeg.stderr is not None:
                errors = ffmpeg.stderr.read().decode(errors="replace")
                pytest.fail(f"ffmpeg exited {ffmpeg.returncode}: {errors}")
            raise
        assert await cluster.on_node(next(a for a in ALIASES if a != alias), stream) is None

        player = await play(cluster.liveman.url, stream)
        try:
            assert player.location.startswith(f"/session/{stream}/"), player.location
            assert await player.wait_frames("video", 45) >= 45, cluster.log()
            assert await player.wait_frames("audio", 50) >= 50, cluster.log()
            assert player.sizes == {(320, 240)}
            held_by, info = await the_holder(cluster, stream, (1, 1))
            assert held_by == alias
            assert {c["codec"].lower() for c in info["codecs"]} == {"h264", "opus"}
        finally:
            await player.close()  # DELETE through liveman
        await the_holder(cluster, stream, (1, 0))
    finally:
        if ffmpeg.poll() is None:
            ffmpeg.send_signal(signal.SIGINT)  # FFmpeg DELETEs its session (through liveman)
            try:
                ffmpeg.wait(10)
            except Exception:
                ffmpeg.kill()
                ffmpeg.wait()
    await wait_until(lambda: cluster.on_node(alias, stream),
                     lambda node_info: session_counts(node_info) == (0, 0),
                     "FFmpeg's session to end after its DELETE through liveman", cluster)
