"""FFmpeg 9's WHIP muxer stays connected: it answers none of the server's ICE consent checks
(RFC 7675) but keeps sending its own binding requests and media, which is what the node
judges a peer by. A killed FFmpeg is still dropped once it falls silent for the timeout.

The five-minute run uses the default configuration (ICE-lite, 30 s peer timeout). The short
ones check consent every 300 ms in both ICE modes, where the old consent logic dropped FFmpeg
after 6 unanswered checks (1.8 s), with a 4 s peer timeout: short enough to see a killed
FFmpeg go quickly, long enough for an aiortc player (RTCP every 0.5-1.5 s, checks every 5 s)
in a busy test process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from clients import WhepPlayer, play
from conftest import LiveionProcess
from test_ffmpeg import ffmpeg_whip, wait_publisher

SOAK_SECONDS = 300
CHECK_EVERY = 15.0


def publisher_ids(server: LiveionProcess, stream: str) -> list[str]:
    response = httpx.get(f"{server.url}/api/streams/{stream}")
    if response.status_code != 200:
        return []
    return [s["id"] for s in response.json()["publish"]["sessions"]]


def subscriber_count(server: LiveionProcess, stream: str) -> int:
    return len(httpx.get(f"{server.url}/api/streams/{stream}").json()["subscribe"]["sessions"])


async def gone_after(server: LiveionProcess, stream: str, limit: float) -> float | None:
    """Seconds until the stream has no publisher session, or None after `limit`."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if not publisher_ids(server, stream):
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    return None


async def keeps_decoding(player: WhepPlayer, seconds: float, every: float,
                         check: Callable[[], None]) -> list[tuple[float, int, int]]:
    """Watch the player for `seconds`: at every `every` s its video and audio frame counts
    must have grown by at least half of 30 fps / 50 packets per second, and `check` holds.
    Returns (elapsed, video, audio) at each step."""
    start = time.monotonic()
    steps = [(0.0, player.frames["video"], player.frames["audio"])]
    while time.monotonic() - start < seconds:
        await asyncio.sleep(min(every, seconds - (time.monotonic() - start)))
        elapsed = time.monotonic() - start
        video, audio = player.frames["video"], player.frames["audio"]
        span = elapsed - steps[-1][0]
        assert video - steps[-1][1] >= 15 * span, (steps, video)
        assert audio - steps[-1][2] >= 25 * span, (steps, audio)
        check()
        steps.append((elapsed, video, audio))
    return steps


@pytest.mark.parametrize("ice_lite", [True, False], ids=["lite", "full"])
async def test_ffmpeg_outlives_six_consent_intervals(
        start_liveion: Callable[..., LiveionProcess], tmp_path: Path, ice_lite: bool) -> None:
    server = start_liveion('[webrtc]\nice_udp_addrs = ["127.0.0.1"]\n'
                           f'ice_lite = {str(ice_lite).lower()}\nconsent_interval_ms = 300\n'
                           'peer_timeout_ms = 4000\n')
    with (tmp_path / "ffmpeg.log").open("wb") as log:
        ffmpeg = ffmpeg_whip(f"{server.url}/whip/short", seconds=40, stderr=log)
        try:
            assert await wait_publisher(server, "short", True), server.log()
            publisher = publisher_ids(server, "short")
            player = await play(server.url, "short")
            assert await player.wait_frames("video", 30) >= 30, server.log()

            def same_publisher() -> None:
                assert ffmpeg.poll() is None, (tmp_path / "ffmpeg.log").read_text()
                assert publisher_ids(server, "short") == publisher, server.log()

            # 12 s: 40 consent intervals, 3 peer timeouts, FFmpeg answering no check.
            await keeps_decoding(player, 12, 2, same_publisher)
            ffmpeg.kill()
            took = await gone_after(server, "short", 10)
            assert took is not None and took <= 4 + 0.7, (took, server.log())
            assert subscriber_count(server, "short") == 1
            await player.close()
        finally:
            if ffmpeg.poll() is None:
                ffmpeg.kill()
            ffmpeg.wait(5)


@pytest.mark.timeout(SOAK_SECONDS + 180)
async def test_ffmpeg_publishes_for_five_minutes(liveion: LiveionProcess,
                                                 tmp_path: Path) -> None:
    """The README's FFmpeg command on the default configuration: FFmpeg publishes for five
    minutes while an aiortc player decodes all along (checked every 15 s), on one session;
    then FFmpeg is killed (SIGKILL: no DELETE) and its session goes within the 30 s timeout
    while the player's stays."""
    with (tmp_path / "ffmpeg.log").open("wb") as log:
        ffmpeg = ffmpeg_whip(f"{liveion.url}/whip/soak", seconds=SOAK_SECONDS + 60, stderr=log)
        try:
            assert await wait_publisher(liveion, "soak", True), liveion.log()
            started = time.monotonic()
            publisher = publisher_ids(liveion, "soak")
            player = await play(liveion.url, "soak")
            assert await player.wait_frames("video", 30) >= 30, liveion.log()

            def same_publisher() -> None:
                assert ffmpeg.poll() is None, (tmp_path / "ffmpeg.log").read_text()
                assert publisher_ids(liveion, "soak") == publisher, liveion.log()

            steps = await keeps_decoding(player, SOAK_SECONDS - (time.monotonic() - started),
                                         CHECK_EVERY, same_publisher)
            published = time.monotonic() - started
            assert published >= SOAK_SECONDS
            ffmpeg.kill()
            took = await gone_after(liveion, "soak", 40)
            assert took is not None and took <= 30 + 2.0, (took, liveion.log())
            assert subscriber_count(liveion, "soak") == 1
            print(f"\nFFmpeg published {published:.1f} s, player frames (s, video, audio): "
                  f"{[(round(t), v, a) for t, v, a in steps]}; killed FFmpeg dropped after "
                  f"{took:.1f} s")
            await player.close()
        finally:
            if ffmpeg.poll() is None:
                ffmpeg.kill()
            ffmpeg.wait(5)
