"""Cascading between real liveion processes: WHEP pull and WHIP push, by API and by config.

Media is published on one node by an aiortc publisher and decoded by an aiortc player on
another node; the streams API of both nodes must show the cascade sessions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiortc.rtcpeerconnection as aiortc_pc
import conftest
import httpx
import pytest
from aiortc.sdp import SessionDescription
from clients import WhepPlayer, play, publish
from conftest import LiveionProcess

from liveion.cascade import (
    Backoff,
    CascadeUrlError,
    Direction,
    Endpoint,
    parse_endpoint,
    stops_for_good,
)
from liveion.events import Reason
from liveion.sfu import peer as peer_module
from liveion.sfu.peer import CodecPolicy, Peer

Start = Callable[..., LiveionProcess]

# Quick consent checks, so a node that vanishes without a goodbye is noticed in seconds.
FAST = "[webrtc]\nice_udp_addrs = [\"127.0.0.1\"]\nconsent_interval_ms = 500\n"


def info(node: LiveionProcess, stream: str, token: str = "") -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(f"{node.url}/api/streams/{stream}", timeout=5, headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def cascade(node: LiveionProcess, stream: str, body: Any) -> httpx.Response:
    return httpx.post(f"{node.url}/api/cascade/{stream}", json=body, timeout=40)


async def until(probe: Callable[[], Any], what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = probe()
        except (httpx.HTTPError, AssertionError, KeyError, IndexError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def frames_grow(player: WhepPlayer, by: int, node: LiveionProcess,
                      timeout: float = 20) -> None:
    target = player.frames["video"] + by
    got = await player.wait_frames("video", target, timeout)
    assert got >= target, f"player stopped at {got} video frames\n{node.log()[-6000:]}"


def sessions(node: LiveionProcess, stream: str, side: str,
             token: str = "") -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = info(node, stream, token)[side]["sessions"]
    return found


# ---- pure parts ----------------------------------------------------------------------------


def test_parse_endpoint_forms() -> None:
    pull = parse_endpoint("whep://secret@127.0.0.1:7777/whep/cam", Direction.PULL)
    assert pull == Endpoint("http://127.0.0.1:7777/whep/cam", "secret")
    assert parse_endpoint("wheps://h.example/whep/a", Direction.PULL).url \
        == "https://h.example/whep/a"
    assert parse_endpoint("http://[::1]:8/whep/a?x=1", Direction.PULL) \
        == Endpoint("http://[::1]:8/whep/a?x=1", None)
    assert parse_endpoint("whips://t@h/api/whip/n1/s", Direction.PUSH, token="api") \
        == Endpoint("https://h/api/whip/n1/s", "api")


@pytest.mark.parametrize(("url", "direction", "reason"), [
    ("whip://h:1/whip/a", Direction.PULL, "must start with"),
    ("whep://h:1/whep/a", Direction.PUSH, "must start with"),
    ("ftp://h/whep/a", Direction.PULL, "must start with"),
    ("whep://user:pass@h/whep/a", Direction.PULL, "password"),
    ("whep://h:99999/whep/a", Direction.PULL, "invalid"),
    ("whep:///whep/a", Direction.PULL, "no host"),
    ("http://h:1", Direction.PULL, "no endpoint path"),
])
def test_parse_endpoint_refuses(url: str, direction: Direction, reason: str) -> None:
    with pytest.raises(CascadeUrlError, match=reason):
        parse_endpoint(url, direction)


def test_backoff_doubles_to_a_minute_and_resets() -> None:
    backoff = Backoff()
    assert [backoff.next() for _ in range(6)] == [5, 10, 20, 40, 60, 60]
    backoff.reset()
    assert backoff.next() == 5


def test_which_endings_reconnect() -> None:
    assert stops_for_good(Reason.SHUTDOWN, configured=True)
    assert not stops_for_good(Reason.API_DELETED, configured=True)
    assert stops_for_good(Reason.API_DELETED, configured=False)
    assert stops_for_good(Reason.STREAM_DELETED, configured=False)
    assert not stops_for_good(Reason.PEER_CLOSED, configured=False)


def _offer_formats(sdp: str) -> dict[str, set[str]]:
    description = SessionDescription.parse(sdp)
    return {m.kind: {f"{c.mimeType}/{c.parameters.get('profile-level-id', '')}".rstrip("/")
                     for c in m.rtp.codecs if c.name.lower() != "rtx"}
            for m in description.media}


async def test_offers_list_every_forwarded_format(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cascade offer must let the remote send VP9/AV1/H265 and H264 of any profile, which
    aiortc's own offers (VP8, H264 baseline) would not."""
    table = aiortc_pc.CODECS
    peer = Peer(on_rtp=lambda _: None, on_rtcp=lambda _: None, on_ready=lambda: None,
                on_closed=lambda: None)
    try:
        sdp = await peer.offer(recv=True, send=False, data_channel="cascade")
        formats = _offer_formats(sdp)
        assert formats["video"] >= {"video/VP8", "video/VP9", "video/AV1", "video/H265",
                                    "video/H264/42e01f", "video/H264/4d001f",
                                    "video/H264/64001f"}
        assert "audio/opus" in formats["audio"]
        assert "a=recvonly" in sdp and "a=sendonly" not in sdp
        assert "m=application" in sdp
        assert aiortc_pc.CODECS is table, "the offer left aiortc's codec table replaced"
    finally:
        await peer.close()
    monkeypatch.setattr(peer_module, "_policy", CodecPolicy(video=("VP9",), audio=("OPUS",)))
    pusher = Peer(on_rtp=lambda _: None, on_rtcp=lambda _: None, on_ready=lambda: None,
                  on_closed=lambda: None)
    try:
        sdp = await pusher.offer(recv=False, send=True, ssrcs={"video": (1111, 2222)})
        assert _offer_formats(sdp) == {"audio": {"audio/opus"}, "video": {"video/VP9"}}
        assert "a=sendonly" in sdp and "a=ssrc:1111 " in sdp and "a=ssrc:2222 " in sdp
    finally:
        await pusher.close()


def test_aiortc_still_offers_the_way_peer_py_relies_on() -> None:
    """Peer.offer swaps aiortc's codec table around createOffer: that is only safe while
    createOffer reads the module global and never suspends."""
    import inspect

    source = inspect.getsource(aiortc_pc.RTCPeerConnection.createOffer)
    assert "CODECS[transceiver.kind]" in source
    assert "await " not in source
    assert isinstance(aiortc_pc.CODECS, dict)


# ---- the API ---------------------------------------------------------------------------------


async def test_pull_through_api_decodes_on_the_second_node(start_liveion: Start) -> None:
    a, b = start_liveion(FAST), start_liveion(FAST)
    publisher = await publish(a.url, "cam")
    source = f"{a.url}/whep/cam"
    response = cascade(b, "cam", {"sourceUrl": source})
    assert response.status_code == 200, response.text
    player = await play(b.url, "cam")
    try:
        await frames_grow(player, 30, b)
        assert await player.wait_frames("audio", 30) >= 30
        assert player.sizes == {(320, 240)}
        pub = sessions(b, "cam", "publish")
        assert len(pub) == 1 and pub[0]["cascade"]["sourceUrl"] == source
        session_url = pub[0]["cascade"]["sessionUrl"]
        assert session_url.startswith(f"{a.url}/session/cam/")
        assert response.json()["sessionUrl"] == session_url
        remote = sessions(a, "cam", "subscribe")
        assert [s["id"] for s in remote] == [session_url.rsplit("/", 1)[1]]
        assert "cascade" not in sessions(b, "cam", "subscribe")[0]
        # Deleting the stream on B ends the remote session on A.
        assert httpx.delete(f"{b.url}/api/streams/cam").status_code == 204
        await until(lambda: not sessions(a, "cam", "subscribe"), "A's cascade session to end")
    finally:
        await player.close(delete=False)
        await publisher.close()


async def test_push_through_api_decodes_on_the_second_node(start_liveion: Start) -> None:
    a, b = start_liveion(FAST), start_liveion(FAST)
    publisher = await publish(a.url, "show", "video/VP8")
    target = f"{b.url}/whip/show"
    response = cascade(a, "show", {"targetUrl": target})
    assert response.status_code == 200, response.text
    player = await play(b.url, "show")
    try:
        await frames_grow(player, 30, b)
        assert await player.wait_frames("audio", 30) >= 30
        push = sessions(a, "show", "subscribe")
        assert len(push) == 1 and push[0]["cascade"]["targetUrl"] == target
        assert push[0]["cascade"]["sessionUrl"].startswith(f"{b.url}/session/show/")
        assert {c["codec"] for c in info(b, "show")["codecs"]} >= {"VP8"}
        assert "live777_reforward 1.0" in httpx.get(f"{a.url}/metrics").text
        # Deleting the push session on A ends B's publisher, and it is not reconnected.
        local = f"{a.url}/session/show/{push[0]['id']}"
        assert httpx.delete(local).status_code == 200
        await until(lambda: not sessions(b, "show", "publish"), "B's publisher to leave")
        await asyncio.sleep(6)
        assert not sessions(b, "show", "publish"), "an API push deleted by API came back"
    finally:
        await player.close()
        await publisher.close()


async def test_push_with_cascade_push_close_sub_kicks_viewers(start_liveion: Start) -> None:
    a = start_liveion(FAST + "[strategy]\ncascade_push_close_sub = true\n")
    b = start_liveion(FAST)
    publisher = await publish(a.url, "big")
    viewer = await play(a.url, "big")
    try:
        await frames_grow(viewer, 10, a)
        assert cascade(a, "big", {"targetUrl": f"{b.url}/whip/big"}).status_code == 200
        remaining = sessions(a, "big", "subscribe")
        assert len(remaining) == 1 and "cascade" in remaining[0], remaining
        moved = await play(b.url, "big")
        try:
            await frames_grow(moved, 20, b)
        finally:
            await moved.close()
    finally:
        await viewer.close(delete=False)
        await publisher.close()


async def test_token_goes_to_the_remote_node(start_liveion: Start) -> None:
    a = start_liveion(FAST + '[auth]\ntokens = ["sesame"]\n')
    b = start_liveion(FAST)
    bearer = {"Authorization": "Bearer sesame"}
    publisher = await publish(a.url, "locked", "video/VP8", audio=False, headers=bearer)
    assert cascade(a, "locked", {"targetUrl": f"{b.url}/whip/x"}).status_code == 401
    refused = cascade(b, "locked", {"sourceUrl": f"{a.url}/whep/locked"})
    assert refused.status_code == 502 and "401" in refused.json()["detail"], refused.text
    response = cascade(b, "locked", {"sourceUrl": f"{a.url}/whep/locked", "token": "sesame"})
    assert response.status_code == 200, response.text
    player = await play(b.url, "locked")
    try:
        await frames_grow(player, 20, b)
        assert len(sessions(a, "locked", "subscribe", "sesame")) == 1
        # The remote DELETE carries the token too.
        assert httpx.delete(f"{b.url}/api/streams/locked").status_code == 204
        await until(lambda: not sessions(a, "locked", "subscribe", "sesame"),
                    "A's cascade session to end")
    finally:
        await player.close(delete=False)
        await publisher.close()


async def test_three_node_chain(start_liveion: Start) -> None:
    a, b, c = start_liveion(FAST), start_liveion(FAST), start_liveion(FAST)
    publisher = await publish(a.url, "chain", "video/VP8", audio=False)
    assert cascade(b, "chain", {"sourceUrl": f"{a.url}/whep/chain"}).status_code == 200
    assert cascade(b, "chain", {"targetUrl": f"{c.url}/whip/chain"}).status_code == 200
    player = await play(c.url, "chain")
    try:
        await frames_grow(player, 30, c)
    finally:
        await player.close()
        await publisher.close()


async def test_bad_cascade_requests_are_4xx(start_liveion: Start) -> None:
    a = start_liveion(FAST)
    remote = f"{a.url}/whep/x"
    cases: list[tuple[Any, int, str]] = [
        ({}, 400, "exactly one"),
        ({"sourceUrl": remote, "targetUrl": f"{a.url}/whip/x"}, 400, "exactly one"),
        ({"sourceUrl": "ftp://127.0.0.1/whep/x"}, 400, "must start with"),
        ({"sourceUrl": "whip://127.0.0.1:1/whip/x"}, 400, "must start with"),
        ({"sourceUrl": "whep://u:p@127.0.0.1:1/whep/x"}, 400, "password"),
        ({"sourceURL": remote}, 400, ""),
        ({"sourceUrl": 5}, 400, ""),
        ({"targetUrl": "http://127.0.0.1:1/whip/other"}, 404, "does not exist"),
        # a node cannot feed a stream from or to itself
        ({"sourceUrl": remote}, 400, "points at this node"),
        ({"targetUrl": f"{a.url}/whip/other"}, 400, "points at this node"),
    ]
    for body, status, detail in cases:
        response = cascade(a, "x", body)
        assert response.status_code == status, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert detail in response.json()["detail"], (body, response.text)
    raw = httpx.post(f"{a.url}/api/cascade/x", content=b"{not json",
                     headers={"Content-Type": "application/json"})
    assert raw.status_code == 400, raw.text
    # A remote that does not answer, or refuses, is a 502 naming the remote.
    dead = f"http://127.0.0.1:{conftest.free_port()}/whep/x"
    response = cascade(a, "x", {"sourceUrl": dead})
    assert response.status_code == 502 and dead in response.json()["detail"], response.text
    b = start_liveion(FAST + "[strategy]\nauto_create_whep = false\n")
    response = cascade(a, "y", {"sourceUrl": f"{b.url}/whep/missing"})
    assert response.status_code == 502 and "404" in response.json()["detail"], response.text
    # A pull into a stream that already has a publisher is a conflict.
    publisher = await publish(a.url, "taken", "video/VP8", audio=False)
    try:
        response = cascade(a, "taken", {"sourceUrl": f"{b.url}/whep/taken"})
        assert response.status_code == 409, response.text
    finally:
        await publisher.close()
    assert "Traceback" not in a.log()


# ---- configuration -------------------------------------------------------------------------


async def test_config_target_pushes_once_published_and_after_the_target_restarts(
        start_liveion: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    b = start_liveion(FAST)
    a = start_liveion(FAST + f'[stream.out]\n[[stream.out.targets]]\n'
                             f'url = "whip://127.0.0.1:{b.port}/whip/in"\n')
    await asyncio.sleep(1)
    assert httpx.get(f"{b.url}/api/streams/in").status_code == 404, "pushed with no publisher"
    publisher = await publish(a.url, "out", "video/VP8")
    player = None
    try:
        await until(lambda: sessions(b, "in", "publish"), "the configured push to arrive")
        player = await play(b.url, "in")
        await frames_grow(player, 30, b)
        push = sessions(a, "out", "subscribe")
        assert push[0]["cascade"]["targetUrl"] == f"http://127.0.0.1:{b.port}/whip/in"
        await player.close(delete=False)
        player = None
        b.stop()
        await until(lambda: not sessions(a, "out", "subscribe"), "A to notice B is gone")
        monkeypatch.setattr(conftest, "free_port", lambda: b.port)
        b2 = start_liveion(FAST)
        await until(lambda: sessions(b2, "in", "publish"), "the push to come back", timeout=30)
        player = await play(b2.url, "in")
        await frames_grow(player, 30, b2)
    finally:
        if player is not None:
            await player.close()
        await publisher.close()


async def test_config_source_reconnects_after_the_source_node_restarts(
        start_liveion: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    a = start_liveion(FAST)
    b = start_liveion(FAST + f'[stream.relay]\n[[stream.relay.sources]]\n'
                             f'url = "whep://127.0.0.1:{a.port}/whep/origin"\n')
    publisher = await publish(a.url, "origin", "video/VP8")
    player = await play(b.url, "relay")
    try:
        await frames_grow(player, 30, b)
        pub = sessions(b, "relay", "publish")
        assert pub[0]["cascade"]["sourceUrl"] == f"http://127.0.0.1:{a.port}/whep/origin"
        await publisher.close(delete=False)
        a.stop()
        await until(lambda: not sessions(b, "relay", "publish"), "B to notice A is gone")
        # A new process on the same port: B reconnects within its backoff (5 s, then 10 s).
        monkeypatch.setattr(conftest, "free_port", lambda: a.port)
        a2 = start_liveion(FAST)
        publisher = await publish(a2.url, "origin", "video/VP8")
        await until(lambda: sessions(b, "relay", "publish"), "B to reconnect", timeout=30)
        await frames_grow(player, 30, b)
    finally:
        await player.close()
        await publisher.close()
