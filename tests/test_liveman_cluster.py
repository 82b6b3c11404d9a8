"""liveman in front of real liveion nodes: overflow cascades (push and pull), a full
cluster, a node killed with SIGKILL and restarted, failover to the next node, and
self-registration (heartbeats posted by the test, and a real liveion with `[liveman]`).

Every node is a real `python -m liveion` process; publishers and viewers are aiortc peers
that decode what they receive (tests/clients.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from clients import WhepPlayer, play, publish
from conftest import LiveionProcess
from helpers.cluster import LivemanProcess, all_running, node_toml, nodes_by_alias, wait_until
from sdp_samples import aiortc_offer

pytestmark = pytest.mark.asyncio(loop_scope="module")

SDP_HEADERS = {"Content-Type": "application/sdp"}
ONE_VIEWER = "[strategy]\neach_stream_max_sub = 1\n"
FAST_CLUSTER = "[cluster]\npoll_interval_ms = 250\ndead_after_ms = 1500\n"
IDLE_MS = 2000
TICK_MS = 500


# --- helpers ---------------------------------------------------------------------------------


async def aget(url: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as client:
        return await client.get(url, **kwargs)


async def await_until(check: Any, timeout: float, what: str) -> None:
    """`check` is an async callable returning a truthy value once the condition holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


async def node_stream(node: LiveionProcess, stream: str) -> dict[str, Any] | None:
    """The node's own `/api/streams/{stream}`, None when it does not have it (or is down)."""
    try:
        answer = await aget(f"{node.url}/api/streams/{stream}")
    except httpx.ConnectError:
        return None
    return answer.json() if answer.status_code == 200 else None


async def holders(liveman: LivemanProcess, stream: str) -> dict[str, Any]:
    """liveman's `{alias: Stream}` for the stream ({} while no node has it)."""
    answer = await aget(f"{liveman.url}/api/streams/{stream}")
    return answer.json() if answer.status_code == 200 else {}


def viewers(stream: dict[str, Any] | None) -> list[dict[str, Any]]:
    if stream is None:
        return []
    return [s for s in stream["subscribe"]["sessions"] if "cascade" not in s]


def cascade_sessions(stream: dict[str, Any] | None) -> list[dict[str, Any]]:
    if stream is None:
        return []
    return [s for side in ("publish", "subscribe") for s in stream[side]["sessions"]
            if "cascade" in s]


async def connected_publisher(liveman: LivemanProcess, stream: str) -> str | None:
    """The alias of the node where the stream's publisher is connected."""
    for alias, found in (await holders(liveman, stream)).items():
        if any(s["state"] == "connected" and "cascade" not in s
               for s in found["publish"]["sessions"]):
            return str(alias)
    return None


async def frames_grow(player: WhepPlayer, count: int = 10, timeout: float = 20) -> None:
    """The player decodes `count` more video frames than it had."""
    start = player.frames["video"]
    got = await player.wait_frames("video", start + count, timeout)
    assert got >= start + count, f"video frames stuck at {got} (started at {start})"


async def where_is(nodes: dict[str, LiveionProcess], stream: str, location: str) -> str:
    """The alias of the node that holds the session at `location` (`/session/{s}/{id}`)."""
    session_id = location.rstrip("/").rsplit("/", 1)[-1]
    for alias, node in nodes.items():
        found = await node_stream(node, stream)
        if found is not None and any(s["id"] == session_id for side in ("publish", "subscribe")
                                     for s in found[side]["sessions"]):
            return alias
    raise AssertionError(f"no node holds {location}")


def liveman_config(nodes: dict[str, LiveionProcess], extra: str = "") -> str:
    return "".join(node_toml(alias, node) for alias, node in nodes.items()) + FAST_CLUSTER + extra


# --- overflow cascades -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def full_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LiveionProcess]]:
    """Three nodes that take one viewer per stream."""
    tmp = tmp_path_factory.mktemp("cascade-nodes")
    started: dict[str, LiveionProcess] = {}
    try:
        for alias in ("n1", "n2", "n3"):
            started[alias] = LiveionProcess(tmp, ONE_VIEWER)
        yield started
    finally:
        for node in started.values():
            node.stop()


@pytest.mark.parametrize("mode", ["push", "pull"])
async def test_overflow_cascades_then_idle_removal(
        mode: str, full_nodes: dict[str, LiveionProcess],
        tmp_path_factory: pytest.TempPathFactory) -> None:
    nodes = full_nodes
    cascade = (f'[cascade]\nmode = "{mode}"\nmaximum_idle_time = {IDLE_MS}\n'
               f"check_tick_time = {TICK_MS}\ncheck_attempts = 5\n")
    liveman = LivemanProcess(tmp_path_factory.mktemp(f"cascade-{mode}"),
                             liveman_config(nodes, cascade))
    stream = f"overflow-{mode}"
    players: list[WhepPlayer] = []
    publisher = None
    try:
        wait_until(lambda: all_running(liveman, list(nodes)), 10, "all nodes running")
        publisher = await publish(liveman.url, stream)
        await await_until(lambda: connected_publisher(liveman, stream), 15,
                          "the publisher to connect")
        source = await connected_publisher(liveman, stream)
        assert source is not None

        # Viewer 1 fits on the publisher's node.
        players.append(await play(liveman.url, stream))
        assert await where_is(nodes, stream, players[0].location) == source
        await frames_grow(players[0])

        # Viewers 2 and 3: the stream's nodes are full, so each goes through a new cascade
        # to a node that did not have the stream.
        seen = {source}
        for _ in range(2):
            players.append(await play(liveman.url, stream))
            alias = await where_is(nodes, stream, players[-1].location)
            assert alias not in seen, f"viewer placed on {alias}, which already had a viewer"
            seen.add(alias)
            await frames_grow(players[-1])
        assert seen == set(nodes)

        # liveman shows the stream on every node, and the node list counts it.
        async def on_every_node() -> bool:
            return set(await holders(liveman, stream)) == set(nodes)
        await await_until(on_every_node, 5, "the stream on all three nodes in liveman's view")
        listed: dict[str, Any] = nodes_by_alias(liveman)
        assert all(listed[a]["status"] == "running" and listed[a]["streams"] >= 1
                   for a in nodes), listed

        copies = [a for a in nodes if a != source]
        for alias in copies:
            found = await node_stream(nodes[alias], stream)
            assert len(viewers(found)) == 1
            if mode == "pull":  # the copy's publisher is the node's own pull session
                assert cascade_sessions(found), found
        if mode == "push":  # the pushes are subscriber legs on the nodes that send them
            pushes = [s for a in nodes for s in
                      cascade_sessions(await node_stream(nodes[a], stream))]
            assert len(pushes) >= 2, pushes

        # A fourth viewer: every node is full and there is no other node.
        offer = await aiortc_offer(video="recvonly", audio="recvonly")
        async with httpx.AsyncClient(timeout=10) as client:
            refused = await client.post(f"{liveman.url}/whep/{stream}", content=offer,
                                        headers=SDP_HEADERS)
            assert refused.status_code == 503, refused.text
            assert int(refused.headers["retry-after"]) > 0
            assert (await client.get(f"{liveman.url}/healthz")).status_code == 200
        for player in players:  # nobody lost media over it
            await frames_grow(player, 5)

        # Viewers 2 and 3 leave; the copies go idle and liveman removes the cascades.
        while len(players) > 1:
            await players.pop().close()
        left = time.monotonic()
        await asyncio.sleep(IDLE_MS / 1000 / 2)
        assert [a for a in copies if await node_stream(nodes[a], stream)] == copies, \
            "a cascade was removed before maximum_idle_time"

        async def cascades_gone() -> bool:
            for alias in copies:
                if await node_stream(nodes[alias], stream) is not None:
                    return False
            return not cascade_sessions(await node_stream(nodes[source], stream))
        budget = (IDLE_MS + 4 * TICK_MS) / 1000 + 1.0  # + a poll and the teardown itself
        await await_until(cascades_gone, budget - (time.monotonic() - left),
                          "the idle cascades to be removed")
        assert len(viewers(await node_stream(nodes[source], stream))) == 1
        await frames_grow(players[0], 5)  # viewer 1 never noticed
        assert set(await holders(liveman, stream)) in ({source}, set())
    finally:
        for player in players:
            await player.close()
        if publisher is not None:
            await publisher.close()
        async with httpx.AsyncClient(timeout=5) as client:  # the next mode starts clean
            await client.delete(f"{liveman.url}/api/streams/{stream}")
        liveman.stop()


# --- a node dies, liveman fails over, the node comes back --------------------------------------


def proxied_errors(liveman: LivemanProcess) -> float:
    """liveman's count of WHIP requests a node never answered."""
    text = httpx.get(f"{liveman.url}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("liveman_proxy_requests_total{") and 'route="whip"' in line \
                and 'outcome="error"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_killed_node_failover_dead_mark_and_return(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """SIGKILL a node: a publish that liveman sends there before it knows goes to the other
    node; within 5 s the node is `stopped` and new streams land elsewhere; restarted on
    the same port, it is `running` again and takes streams. liveman runs on the default
    `[cluster]` timings (poll 1 s, dead after 4 s)."""
    tmp = tmp_path_factory.mktemp("kill")
    nodes = {"a-first": LiveionProcess(tmp), "b-second": LiveionProcess(tmp)}
    liveman = LivemanProcess(tmp, "".join(node_toml(a, n) for a, n in nodes.items()))
    publishers = []
    try:
        wait_until(lambda: all_running(liveman, list(nodes)), 10, "both nodes running")
        # Both nodes are empty, so placement tries `a-first` first (ties go by alias).
        errors_before = proxied_errors(liveman)
        nodes["a-first"].proc.kill()
        nodes["a-first"].proc.wait()
        killed_at = time.monotonic()
        assert nodes_by_alias(liveman)["a-first"]["status"] == "running"  # not noticed yet
        publishers.append(await publish(liveman.url, "failover"))
        assert time.monotonic() - killed_at < 4, "the publish came after the dead mark"
        assert await where_is(nodes, "failover", publishers[-1].location) == "b-second"
        assert proxied_errors(liveman) > errors_before, "the dead node was not tried first"

        wait_until(lambda: nodes_by_alias(liveman)["a-first"]["status"] == "stopped",
                   5 - (time.monotonic() - killed_at), "the killed node marked stopped")
        listed = nodes_by_alias(liveman)["a-first"]
        assert listed["duration"] == "-" and listed["error"], listed
        publishers.append(await publish(liveman.url, "after-death"))

        async def placed() -> bool:
            return bool(await holders(liveman, "after-death"))
        await await_until(placed, 5, "liveman to see the new stream")
        assert set(await holders(liveman, "after-death")) == {"b-second"}

        # Back on the same port: liveman notices by itself.
        restarted = LiveionProcess(tmp_path_factory.mktemp("kill-restart"),
                                   port=nodes["a-first"].port)
        nodes["a-first"].stop()
        nodes["a-first"] = restarted
        wait_until(lambda: nodes_by_alias(liveman)["a-first"]["status"] == "running", 5,
                   "the restarted node running again")
        # Pinned: liveman only sends a pinned stream to a node it counts as alive.
        publishers.append(await publish(liveman.url, "back?nodes=a-first"))
        assert await where_is(nodes, "back", publishers[-1].location) == "a-first"
    finally:
        for publisher in publishers:
            await publisher.close()
        liveman.stop()
        for node in nodes.values():
            node.stop()


# --- self-registration -------------------------------------------------------------------------

ADMIN = "registry-admin-token"
AUTH = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[tuple[LivemanProcess, LiveionProcess, LiveionProcess]]:
    """liveman (auth on) with one configured node, and a second node it is not told about."""
    tmp = tmp_path_factory.mktemp("registry")
    static = LiveionProcess(tmp)
    unlisted = LiveionProcess(tmp)
    liveman = LivemanProcess(tmp, node_toml("static-1", static) + FAST_CLUSTER
                             + f'[auth]\ntokens = ["{ADMIN}"]\n')
    try:
        wait_until(lambda: all_running(liveman, ["static-1"], ADMIN), 10, "static-1 running")
        yield liveman, static, unlisted
    finally:
        liveman.stop()
        static.stop()
        unlisted.stop()


def heartbeat(alias: str, url: str, streams: list[Any] | None = None) -> dict[str, Any]:
    return {
        "alias": alias, "url": url, "token": "",
        "strategy": {"each_stream_max_sub": 3, "cascade_push_close_sub": False,
                     "auto_create_whip": True, "auto_create_whep": True,
                     "auto_delete_whip": 60000, "auto_delete_whep": 60000},
        "load": {"sessions": 0, "subscribers": {}, "bitrate": 0, "cpu": 0.25},
        "streams": streams or [], "version": "test",
    }


async def test_heartbeats_register_and_deregister_a_node(
        registry: tuple[LivemanProcess, LiveionProcess, LiveionProcess]) -> None:
    liveman, static, unlisted = registry
    beat = heartbeat("beater", unlisted.url + "/")
    async with httpx.AsyncClient(base_url=liveman.url, timeout=5) as client:
        assert (await client.post("/api/nodes/heartbeat", json=beat)).status_code == 401
        answer = await client.post("/api/nodes/heartbeat", json=beat, headers=AUTH)
        assert answer.status_code == 204, answer.text
        node: dict[str, Any] = nodes_by_alias(liveman, ADMIN)["beater"]
        assert node["status"] == "running" and node["kind"] == "registered", node
        assert node["url"] == unlisted.url  # the trailing slash is dropped
        assert node["strategy"]["each_stream_max_sub"] == 3
        assert node["load"]["cpu"] == 0.25

        # liveman places streams on it (pinned, so the configured node cannot take it).
        publisher = await publish(liveman.url, "beaten?nodes=beater", headers=AUTH)
        try:
            assert await node_stream(unlisted, "beaten") is not None
        finally:
            await publisher.close(delete=False)
            async with httpx.AsyncClient() as raw:
                await raw.delete(liveman.url + publisher.location, headers=AUTH)

        # Beats stop: dead after `dead_after_ms` (1.5 s here), still listed.
        def stopped() -> bool:
            return nodes_by_alias(liveman, ADMIN)["beater"]["status"] == "stopped"
        wait_until(stopped, 4, "the silent node marked stopped")
        answer = await client.post("/whip/x?nodes=beater", content=b"v=0\r\n",
                                   headers={**AUTH, **SDP_HEADERS})
        assert answer.status_code == 503 and "beater" in answer.json()["detail"]
        assert answer.headers["retry-after"]

        # A beat brings it back at once; DELETE forgets it.
        await client.post("/api/nodes/heartbeat", json=beat, headers=AUTH)
        assert nodes_by_alias(liveman, ADMIN)["beater"]["status"] == "running"
        assert (await client.delete("/api/nodes/beater")).status_code == 401
        assert (await client.delete("/api/nodes/beater", headers=AUTH)).status_code == 204
        assert "beater" not in nodes_by_alias(liveman, ADMIN)
        assert (await client.delete("/api/nodes/beater", headers=AUTH)).status_code == 404
        # A configured node cannot be removed that way, and a beat under its alias keeps it
        # a configured node.
        same = await client.post("/api/nodes/heartbeat", headers=AUTH,
                                 json=heartbeat("static-1", static.url))
        assert same.status_code == 204
        gone = await client.delete("/api/nodes/static-1", headers=AUTH)
        assert gone.status_code == 404
        static_node = nodes_by_alias(liveman, ADMIN)["static-1"]
        assert static_node["kind"] == "static" and static_node["status"] == "running"


@pytest.mark.parametrize(("change", "field"), [
    ({"alias": "bad alias!"}, "alias"),
    ({"alias": "x" * 65}, "alias"),
    ({"url": "ftp://127.0.0.1:1"}, "url"),
    ({"strategy": None}, "strategy"),
    ({"load": {"sessions": "many"}}, "load"),
    ({"streams": [{"id": "half a stream"}]}, "streams"),
])
async def test_bad_heartbeats_are_400(
        registry: tuple[LivemanProcess, LiveionProcess, LiveionProcess],
        change: dict[str, Any], field: str) -> None:
    liveman = registry[0]
    body = {**heartbeat("bad", "http://127.0.0.1:1"), **change}
    async with httpx.AsyncClient(base_url=liveman.url, timeout=5) as client:
        answer = await client.post("/api/nodes/heartbeat", json=body, headers=AUTH)
        assert answer.status_code == 400, answer.text
        assert field in answer.json()["detail"]
        garbage = await client.post("/api/nodes/heartbeat", content=b"{not json",
                                    headers=AUTH)
        assert garbage.status_code == 400
    assert "bad" not in nodes_by_alias(liveman, ADMIN)


async def test_real_liveion_registers_itself(
        registry: tuple[LivemanProcess, LiveionProcess, LiveionProcess],
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """A liveion with `[liveman]` appears in the node list, takes streams, and leaves the
    list when it shuts down."""
    liveman = registry[0]
    node = LiveionProcess(tmp_path_factory.mktemp("self-registering"),
                          f'[liveman]\nurl = "{liveman.url}"\ntoken = "{ADMIN}"\n'
                          'alias = "auto-1"\nheartbeat_ms = 300\n'
                          '[strategy]\neach_stream_max_sub = 7\n')
    try:
        def registered() -> bool:
            found = nodes_by_alias(liveman, ADMIN).get("auto-1")
            return found is not None and found["status"] == "running"
        wait_until(registered, 5, "the node registered")
        listed: dict[str, Any] = nodes_by_alias(liveman, ADMIN)["auto-1"]
        assert listed["kind"] == "registered" and listed["url"] == node.url
        assert listed["strategy"]["each_stream_max_sub"] == 7

        publisher = await publish(liveman.url, "self-reg?nodes=auto-1", headers=AUTH)
        try:
            found = await node_stream(node, "self-reg")
            assert found is not None and found["publish"]["sessions"]
            # The next beats report the stream; liveman's view follows.
            await await_until(lambda: holders_with(liveman, "self-reg"), 5,
                              "the stream in liveman's view")
            assert set(await holders_with(liveman, "self-reg")) == {"auto-1"}
        finally:
            await publisher.close(delete=False)
            async with httpx.AsyncClient() as raw:
                await raw.delete(liveman.url + publisher.location, headers=AUTH)
    finally:
        node.stop()
    # Its goodbye at shutdown removes it at once.
    wait_until(lambda: "auto-1" not in nodes_by_alias(liveman, ADMIN), 3, "auto-1 gone")


async def holders_with(liveman: LivemanProcess, stream: str) -> dict[str, Any]:
    """`holders` with the registry's admin token."""
    answer = await aget(f"{liveman.url}/api/streams/{stream}", headers=AUTH)
    return answer.json() if answer.status_code == 200 else {}
