"""Real aiortc publishers and players through a real liveion process: frames must decode."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from clients import play, publish
from conftest import LiveionProcess


def stream_info(server: LiveionProcess, stream: str) -> dict:
    response = httpx.get(f"{server.url}/api/streams/{stream}")
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("codec", ["video/H264", "video/VP8"])
async def test_one_publisher_many_players_decode(liveion: LiveionProcess, codec: str) -> None:
    publisher = await publish(liveion.url, "fanout", codec)
    players = [await play(liveion.url, "fanout") for _ in range(3)]
    try:
        for player in players:
            frames = await player.wait_frames("video", 45)
            assert frames >= 45, f"{codec}: player decoded only {frames} frames\n{liveion.log()}"
            assert await player.wait_frames("audio", 50) >= 50
            assert player.sizes == {(320, 240)}
        info = stream_info(liveion, "fanout")
        assert len(info["publish"]["sessions"]) == 1
        assert len(info["subscribe"]["sessions"]) == 3
        assert {c["kind"]: c["codec"].lower() for c in info["codecs"]}["video"] \
            == codec.split("/")[1].lower()
    finally:
        for player in players:
            await player.close()
        await publisher.close()


async def test_player_attached_before_publisher_gets_media(liveion: LiveionProcess) -> None:
    player = await play(liveion.url, "early")
    assert "a=sendonly" in player.response.text
    await asyncio.sleep(0.5)
    publisher = await publish(liveion.url, "early", "video/VP8")
    try:
        assert await player.wait_frames("video", 30) >= 30, liveion.log()
    finally:
        await player.close()
        await publisher.close()


async def test_player_keeps_playing_across_publisher_codec_change(liveion: LiveionProcess) -> None:
    player = await play(liveion.url, "switch")
    first = await publish(liveion.url, "switch", "video/H264")
    try:
        assert await player.wait_frames("video", 30) >= 30
        await first.close()
        await asyncio.sleep(0.5)
        before = player.frames["video"]
        second = await publish(liveion.url, "switch", "video/VP8")
        try:
            after = await player.wait_frames("video", before + 30)
            assert after >= before + 30, f"frames stopped at {after} after the codec change"
            assert stream_info(liveion, "switch")["codecs"][-1]["codec"] == "VP8"
        finally:
            await second.close()
    finally:
        await player.close()


async def test_second_publisher_is_refused_with_409(liveion: LiveionProcess) -> None:
    publisher = await publish(liveion.url, "busy")
    try:
        with pytest.raises(AssertionError, match="WHIP POST 409"):
            await publish(liveion.url, "busy")
    finally:
        await publisher.close()


async def test_publisher_delete_stops_media_but_keeps_players(liveion: LiveionProcess) -> None:
    publisher = await publish(liveion.url, "leave")
    player = await play(liveion.url, "leave")
    try:
        assert await player.wait_frames("video", 20) >= 20
        await publisher.close()
        await asyncio.sleep(1.0)
        stopped_at = player.frames["video"]
        await asyncio.sleep(1.0)
        assert player.frames["video"] == stopped_at
        info = stream_info(liveion, "leave")
        assert info["publish"]["sessions"] == []
        assert info["publish"]["leaveAt"] > 0
        assert len(info["subscribe"]["sessions"]) == 1
    finally:
        await player.close()
