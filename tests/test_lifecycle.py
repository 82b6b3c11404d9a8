"""Session and stream lifecycle: resources released, auto-create/auto-delete strategies."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from clients import play, publish
from conftest import LiveionProcess
from helpers.inprocess import serve_inprocess

from liveion.sfu.manager import StreamManager


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
async def inprocess() -> AsyncIterator[tuple[str, StreamManager]]:
    """liveion served from this event loop, so the test can count its tasks and sockets."""
    async with serve_inprocess() as (url, app):
        yield url, app.state.manager


async def test_closed_sessions_release_tasks_sockets_and_buffers(inprocess) -> None:
    url, manager = inprocess
    await asyncio.sleep(0.2)
    tasks_before, fds_before = len(asyncio.all_tasks()), open_fds()

    publisher = await publish(url, "release")
    players = [await play(url, "release") for _ in range(3)]
    for player in players:
        assert await player.wait_frames("video", 15) >= 15
    stream = manager.streams["release"]
    assert stream.tracks["video"].groups and stream._rtcp_task is not None
    assert open_fds() > fds_before

    for player in players:
        await player.close()
    await publisher.close()

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if len(asyncio.all_tasks()) <= tasks_before and open_fds() <= fds_before:
            break
        await asyncio.sleep(0.1)
    assert stream.publisher is None and not stream.subscribers
    assert all(not track.groups and not track.unassigned for track in stream.tracks.values())
    assert stream._rtcp_task is None
    leftover = [t.get_name() for t in asyncio.all_tasks()]
    assert len(asyncio.all_tasks()) <= tasks_before, f"tasks left: {leftover}"
    assert open_fds() <= fds_before, f"{open_fds() - fds_before} sockets/fds left open"


async def test_orphaned_auto_created_stream_is_reaped(liveion: LiveionProcess) -> None:
    player = await play(liveion.url, "orphan")
    await player.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if httpx.get(f"{liveion.url}/api/streams/orphan").status_code == 404:
            return
        await asyncio.sleep(0.25)
    pytest.fail("an auto-created stream without sessions was not reaped")


async def test_auto_delete_whip_closes_the_stream_and_its_players(start_liveion) -> None:
    server = start_liveion("[strategy]\nauto_delete_whip = 0\n")
    publisher = await publish(server.url, "gone")
    player = await play(server.url, "gone")
    assert await player.wait_frames("video", 10) >= 10
    await publisher.close()
    await asyncio.sleep(2.5)
    assert httpx.get(f"{server.url}/api/streams/gone").status_code == 404
    assert httpx.delete(server.url + player.location).status_code == 404
    await player.close(delete=False)


async def test_auto_create_off_means_404_until_the_stream_exists(start_liveion) -> None:
    server = start_liveion("[strategy]\nauto_create_whip = false\nauto_create_whep = false\n")
    with pytest.raises(AssertionError, match="WHIP POST 404"):
        await publish(server.url, "closed")
    with pytest.raises(AssertionError, match="WHEP POST 404"):
        await play(server.url, "closed")
    assert httpx.post(f"{server.url}/api/streams/closed").status_code == 204
    assert httpx.post(f"{server.url}/api/streams/closed").status_code == 409
    publisher = await publish(server.url, "closed")
    player = await play(server.url, "closed")
    assert await player.wait_frames("video", 10) >= 10
    await player.close()
    await publisher.close()
    assert httpx.delete(f"{server.url}/api/streams/closed").status_code == 204
    assert httpx.get(f"{server.url}/api/streams/closed").status_code == 404


async def test_subscriber_limit_answers_503_with_retry_after(start_liveion) -> None:
    server = start_liveion("[strategy]\neach_stream_max_sub = 1\n")
    player = await play(server.url, "full")
    offer_source = await play(server.url, "other")  # any valid WHEP offer
    offer = offer_source.pc.localDescription.sdp
    response = httpx.post(f"{server.url}/whep/full", content=offer,
                          headers={"Content-Type": "application/sdp"})
    assert response.status_code == 503
    assert response.headers["retry-after"].isdigit()
    await offer_source.close()
    await player.close()


async def test_provisioned_stream_is_listed_and_cannot_be_deleted(start_liveion) -> None:
    server = start_liveion("[stream.lobby]\n")
    listed = httpx.get(f"{server.url}/api/streams/").json()
    assert [s["id"] for s in listed] == ["lobby"] and listed[0]["provisioned"] is True
    assert httpx.delete(f"{server.url}/api/streams/lobby").status_code == 409


async def test_session_that_never_connects_is_released(start_liveion) -> None:
    """W27: an offer whose ICE never completes (no candidates, no trickle) times out."""
    server = start_liveion('[webrtc]\nice_udp_addrs = ["127.0.0.1"]\nsetup_timeout_ms = 1000\n')
    from aiortc import RTCPeerConnection

    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    silent = "\r\n".join(line for line in pc.localDescription.sdp.split("\r\n")
                         if not line.startswith("a=candidate") and line != "a=end-of-candidates")
    await pc.close()
    response = httpx.post(f"{server.url}/whep/silent", content=silent,
                          headers={"Content-Type": "application/sdp"})
    assert response.status_code == 201
    await asyncio.sleep(2.5)
    assert httpx.delete(server.url + response.headers["location"]).status_code == 404
