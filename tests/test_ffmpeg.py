"""FFmpeg's WHIP muxer (the static FFmpeg 9 in imageio-ffmpeg) publishing H264 + Opus."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from typing import IO

import httpx
import imageio_ffmpeg
from clients import play
from conftest import LiveionProcess

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg_whip(url: str, seconds: int = 30,
                stderr: int | IO[bytes] = subprocess.PIPE) -> subprocess.Popen[bytes]:
    """FFmpeg publishing a test pattern + tone for `seconds` (a long run should send
    `stderr` to a file: a full pipe would stall FFmpeg)."""
    return subprocess.Popen(
        [FFMPEG, "-hide_banner", "-loglevel", "warning", "-re",
         "-f", "lavfi", "-i", f"testsrc=size=320x240:rate=30:duration={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
         "-c:v", "libx264", "-profile:v", "baseline", "-tune", "zerolatency", "-bf", "0",
         "-g", "30", "-pix_fmt", "yuv420p",
         "-c:a", "libopus", "-ar", "48000", "-ac", "2",
         "-f", "whip", url],
        stdout=subprocess.DEVNULL, stderr=stderr)


async def wait_publisher(server: LiveionProcess, stream: str, present: bool,
                         timeout: float = 15) -> bool:
    async with httpx.AsyncClient() as client:
        for _ in range(int(timeout * 10)):
            response = await client.get(f"{server.url}/api/streams/{stream}")
            sessions = response.json()["publish"]["sessions"] if response.status_code == 200 else []
            if bool(sessions) == present:
                return True
            await asyncio.sleep(0.1)
    return False


async def test_ffmpeg_publishes_h264_opus_to_aiortc_player(liveion: LiveionProcess) -> None:
    ffmpeg = ffmpeg_whip(f"{liveion.url}/whip/ffmpeg")
    try:
        assert await wait_publisher(liveion, "ffmpeg", True), ffmpeg.stderr
        player = await play(liveion.url, "ffmpeg")
        try:
            assert await player.wait_frames("video", 45) >= 45, liveion.log()
            assert await player.wait_frames("audio", 50) >= 50
            assert player.sizes == {(320, 240)}
        finally:
            await player.close()
        codecs = httpx.get(f"{liveion.url}/api/streams/ffmpeg").json()["codecs"]
        assert {c["codec"].lower() for c in codecs} == {"h264", "opus"}
    finally:
        ffmpeg.send_signal(signal.SIGINT)
        ffmpeg.wait(10)


async def test_vanished_publisher_is_dropped_after_consent_expires(start_liveion) -> None:
    """RFC 7675 / E6: a publisher killed without DELETE loses its session once nothing has
    arrived from it for the peer timeout (6 x consent_interval_ms by default), and its
    players stay connected."""
    server = start_liveion('[webrtc]\nice_udp_addrs = ["127.0.0.1"]\npeer_timeout_ms = 3000\n')
    ffmpeg = ffmpeg_whip(f"{server.url}/whip/vanish")
    try:
        assert await wait_publisher(server, "vanish", True)
        player = await play(server.url, "vanish")
        assert await player.wait_frames("video", 20) >= 20
        ffmpeg.kill()  # SIGKILL: no DELETE, no DTLS close_notify
        ffmpeg.wait(5)
        assert await wait_publisher(server, "vanish", False, timeout=10), server.log()
        frames = player.frames["video"]
        await asyncio.sleep(0.5)
        assert player.frames["video"] == frames
        info = httpx.get(f"{server.url}/api/streams/vanish").json()
        assert len(info["subscribe"]["sessions"]) == 1
        await player.close()
    finally:
        if ffmpeg.poll() is None:
            ffmpeg.kill()
