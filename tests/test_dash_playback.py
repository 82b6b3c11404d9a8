"""Recordings play in a browser: dash.js (npm `dashjs`) in headless Chromium plays the MPD.

Each recording is real encoded media run through the segmenter and MPD writer, served by a
plain HTTP server. Skipped when dash.js is not installed (`npm ci`) or Chromium is missing.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from helpers.dash import (
    chromium,
    chromium_path,
    dashjs_available,
    describe,
    mse_supported,
    play_mpd,
    serve_directory,
)
from helpers.encode import encode_opus, encode_video, encoder_available, write_recording

pytest.importorskip("playwright.async_api")
pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(not dashjs_available(), reason="dash.js not installed: run npm ci"),
    pytest.mark.skipif(chromium_path() is None, reason="no Chromium"),
]

# The MSE type each codec's track is offered as (what the MPD's mimeType/codecs say).
MSE_TYPES = {
    "h264": 'video/mp4; codecs="avc1.42c014"',
    "vp8": 'video/webm; codecs="vp8"',
    "vp9": 'video/mp4; codecs="vp09.00.20.08"',
    "av1": 'video/mp4; codecs="av01.0.00M.08"',
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


@pytest.mark.parametrize("codec", ["h264", "vp8", "vp9", "av1"])
async def test_recording_plays_to_the_end(codec: str, browser: Any, tmp_path: Path) -> None:
    if not encoder_available(codec):
        pytest.skip(f"no {codec} encoder in this PyAV")
    if codec == "av1" and not await mse_supported(browser, MSE_TYPES["av1"]):
        pytest.skip("this Chromium has no AV1 in Media Source")
    # VP8 must play: it is what browsers publish by default. It goes in WebM because
    # Chromium's Media Source has no VP8 in MP4.
    assert await mse_supported(browser, MSE_TYPES[codec])
    video = encode_video(codec)
    recording = write_recording(tmp_path, {"video": video, "audio": encode_opus(channels=2)})
    duration = max(s.end / s.config.timescale for s in recording.segmenters.values())

    with serve_directory(tmp_path) as base_url:
        result = await play_mpd(browser, base_url + "manifest.mpd", timeout=20)

    assert not result.errors, describe(result)
    assert not [w for w in result.warnings if "not supported" in w], describe(result)
    assert result.ended, describe(result)
    assert result.current_time == pytest.approx(duration, abs=0.1), describe(result)
    assert (result.width, result.height) == (320, 240), describe(result)
    assert result.frames == len(video.frames), describe(result)


async def test_manifest_written_mid_recording_plays_live(browser: Any, tmp_path: Path) -> None:
    """A viewer opens the dynamic manifest while the recorder is still writing: the newest
    segment just ended (availabilityStartTime is that long ago), the last GOP is still open."""
    video = encode_video("h264", frames=150)
    audio = encode_opus(seconds=5.0)
    started = time.time() - 5.0
    recording = write_recording(tmp_path, {"video": video, "audio": audio},
                                segment_seconds=1.0, dynamic=True, finish=False,
                                availability_start=started)
    assert 'type="dynamic"' in recording.mpd_path.read_text()

    with serve_directory(tmp_path) as base_url:
        result = await play_mpd(browser, base_url + "manifest.mpd", until="playing",
                                play_seconds=1.0, timeout=20)

    assert not result.errors, describe(result)
    assert result.dynamic is True, describe(result)
    assert result.frames >= 20 and result.width == 320, describe(result)
