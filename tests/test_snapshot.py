"""GET /api/streams/{stream}/snapshot.jpg: the latest keyframe of a live stream as a JPEG."""

from __future__ import annotations

import io

import av
import httpx
import pytest
from clients import publish
from conftest import LiveionProcess


def jpeg_size(data: bytes) -> tuple[int, int]:
    with av.open(io.BytesIO(data), format="image2pipe") as container:
        frame = next(container.decode(video=0))
        return frame.width, frame.height


@pytest.mark.parametrize("codec", ["video/H264", "video/VP8"])
async def test_snapshot_is_a_jpeg_of_the_live_picture(liveion: LiveionProcess, codec: str) -> None:
    publisher = await publish(liveion.url, "cam", video=codec)
    try:
        async with httpx.AsyncClient(base_url=liveion.url, timeout=15) as http:
            response = await http.get("/api/streams/cam/snapshot.jpg")
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "image/jpeg"
            assert response.content[:3] == b"\xff\xd8\xff"
            assert jpeg_size(response.content) == (320, 240)
            again = await http.get("/api/streams/cam/snapshot.jpg")
            assert again.status_code == 200 and jpeg_size(again.content) == (320, 240)
    finally:
        await publisher.close()


async def test_snapshot_404_without_a_picture(liveion: LiveionProcess) -> None:
    async with httpx.AsyncClient(base_url=liveion.url, timeout=15) as http:
        unknown = await http.get("/api/streams/nobody/snapshot.jpg")
        assert unknown.status_code == 404
        assert (await http.post("/api/streams/empty")).status_code == 204
        empty = await http.get("/api/streams/empty/snapshot.jpg")
        assert empty.status_code == 404 and "no publisher" in empty.json()["detail"]
        publisher = await publish(liveion.url, "voice", video=None)
        try:
            audio_only = await http.get("/api/streams/voice/snapshot.jpg")
            assert audio_only.status_code == 404 and "no video" in audio_only.json()["detail"]
        finally:
            await publisher.close()
