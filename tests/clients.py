"""aiortc WHIP publishers and WHEP players for tests: real peers over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import httpx
from aiortc import (
    MediaStreamTrack,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
from av import VideoFrame


class PatternTrack(VideoStreamTrack):
    """A moving test pattern (decoders need real pictures, not a constant frame)."""

    def __init__(self, width: int = 320, height: int = 240) -> None:
        super().__init__()
        self.width, self.height = width, height
        self.count = 0

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(width=self.width, height=self.height, format="yuv420p")
        shade = (self.count * 7) % 255
        for plane_index, plane in enumerate(frame.planes):
            value = shade if plane_index == 0 else 128
            plane.update(bytes([value]) * plane.buffer_size)
        frame.pts, frame.time_base = pts, time_base
        self.count += 1
        return frame


def prefer(pc_transceiver: object, mime: str) -> None:
    kind = mime.split("/")[0]
    codecs = [c for c in RTCRtpSender.getCapabilities(kind).codecs
              if c.mimeType.lower() == mime.lower() or c.mimeType.lower() == f"{kind}/rtx"]
    pc_transceiver.setCodecPreferences(codecs)  # type: ignore[attr-defined]


@dataclass
class WhipPublisher:
    pc: RTCPeerConnection
    location: str
    response: httpx.Response
    base: str

    async def close(self, delete: bool = True) -> None:
        if delete:
            async with httpx.AsyncClient() as client:
                await client.delete(self.base + self.location)
        await self.pc.close()


async def publish(base: str, stream: str, video: str | None = "video/H264", audio: bool = True,
                  headers: dict[str, str] | None = None) -> WhipPublisher:
    pc = RTCPeerConnection()
    if video is not None:
        video_tx = pc.addTransceiver(PatternTrack(), direction="sendonly")
        prefer(video_tx, video)
    if audio:
        pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    async with httpx.AsyncClient(timeout=15) as client:
        response = await client.post(f"{base}/whip/{stream}", content=pc.localDescription.sdp,
                                     headers={"Content-Type": "application/sdp", **(headers or {})})
    if response.status_code != 201:
        await pc.close()
        raise AssertionError(f"WHIP POST {response.status_code}: {response.text}")
    await pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))
    return WhipPublisher(pc, response.headers["location"], response, base)


@dataclass
class WhepPlayer:
    """A WHEP subscriber that decodes what it receives and counts frames per kind."""

    pc: RTCPeerConnection
    location: str
    response: httpx.Response
    base: str
    frames: dict[str, int] = field(default_factory=lambda: {"video": 0, "audio": 0})
    sizes: set[tuple[int, int]] = field(default_factory=set)
    first_frame_at: float | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def wait_frames(self, kind: str, count: int, timeout: float = 20) -> int:
        deadline = time.monotonic() + timeout
        while self.frames[kind] < count and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        return self.frames[kind]

    async def close(self, delete: bool = True) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if delete:
            async with httpx.AsyncClient() as client:
                await client.delete(self.base + self.location)
        await self.pc.close()


async def play(base: str, stream: str, kinds: tuple[str, ...] = ("video", "audio"),
               headers: dict[str, str] | None = None) -> WhepPlayer:
    pc = RTCPeerConnection()
    for kind in kinds:
        pc.addTransceiver(kind, direction="recvonly")
    player_box: list[WhepPlayer] = []

    async def consume(track: MediaStreamTrack) -> None:
        while True:
            frame = await track.recv()
            player = player_box[0]
            if track.kind == "video":
                player.sizes.add((frame.width, frame.height))
                if player.first_frame_at is None:
                    player.first_frame_at = time.monotonic()
            player.frames[track.kind] += 1

    tracks: list[MediaStreamTrack] = []
    pc.on("track", tracks.append)
    await pc.setLocalDescription(await pc.createOffer())
    async with httpx.AsyncClient(timeout=15) as client:
        response = await client.post(f"{base}/whep/{stream}", content=pc.localDescription.sdp,
                                     headers={"Content-Type": "application/sdp", **(headers or {})})
    if response.status_code != 201:
        await pc.close()
        raise AssertionError(f"WHEP POST {response.status_code}: {response.text}")
    await pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))
    player = WhepPlayer(pc, response.headers["location"], response, base)
    player_box.append(player)
    player._tasks = [asyncio.ensure_future(consume(t)) for t in tracks]
    return player


