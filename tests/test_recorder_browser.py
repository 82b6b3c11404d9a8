"""Chromium publishes (VP8 by default, also VP9 and H264), liveion records, dash.js plays the
recording back from liveion's object route in Chromium."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from conftest import LiveionProcess
from helpers.dash import CHROMIUM_ARGS as PLAYER_ARGS
from helpers.dash import chromium_path, dashjs_available, describe, play_mpd
from test_browser import CHROMIUM_ARGS as PUBLISHER_ARGS
from test_recorder import ffprobe, manifest_is_static, recorder_config, wait_for

playwright_api = pytest.importorskip("playwright.async_api")
pytestmark = pytest.mark.asyncio(loop_scope="module")

PUBLISH_JS = """async ([stream, codec]) => {
  const media = await navigator.mediaDevices.getUserMedia(
      {video: {width: 320, height: 240, frameRate: 15}, audio: true});
  const pc = new RTCPeerConnection();
  for (const track of media.getTracks()) {
    const tx = pc.addTransceiver(track, {direction: 'sendonly'});
    if (track.kind === 'video') {
      const caps = RTCRtpSender.getCapabilities('video').codecs;
      tx.setCodecPreferences(caps.filter(c => c.mimeType === 'video/' + codec)
          .concat(caps.filter(c => c.mimeType !== 'video/' + codec)));
    }
  }
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(r => pc.iceGatheringState === 'complete' ? r() :
      pc.addEventListener('icegatheringstatechange',
          () => pc.iceGatheringState === 'complete' && r()));
  const answer = await fetch('/whip/' + stream, {method: 'POST',
      headers: {'Content-Type': 'application/sdp'}, body: pc.localDescription.sdp});
  if (answer.status !== 201) throw new Error('WHIP ' + answer.status);
  window.location_ = answer.headers.get('Location');
  await pc.setRemoteDescription({type: 'answer', sdp: await answer.text()});
  window.pc_ = pc;
}"""

STOP_JS = """async () => { window.pc_.close();
  await fetch(window.location_, {method: 'DELETE'}); }"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    if not dashjs_available():
        pytest.fail("dash.js is missing: run `npm ci` (the CI script does)")
    async with playwright_api.async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=chromium_path(), headless=True,
                                            args=sorted(set(PUBLISHER_ARGS + PLAYER_ARGS)))
        yield chromium
        await chromium.close()


@pytest.mark.parametrize(("codec", "codec_name", "container"), [
    ("VP8", "vp8", "webm"), ("VP9", "vp9", "mp4"), ("H264", "h264", "mp4"),
    ("AV1", "av1", "mp4")])
async def test_browser_publish_recorded_and_played_back_with_dashjs(
        browser: Any, start_liveion: Callable[..., LiveionProcess], tmp_path: Path,
        codec: str, codec_name: str, container: str) -> None:
    node = start_liveion(recorder_config(tmp_path))
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(node.url + "/")
        async with httpx.AsyncClient(base_url=node.url, timeout=10) as http:
            await http.post("/api/streams/cam")
            info = (await http.post("/api/record/cam")).json()
            await page.evaluate(PUBLISH_JS, ["cam", codec])
            record_dir = tmp_path / "storage" / info["record_dir"]
            await wait_for(lambda: len(list(record_dir.glob("v_seg_*.m4s"))) >= 3, 40)
            await page.evaluate(STOP_JS)
            await asyncio.sleep(0.5)
            await http.delete("/api/record/cam")
            await wait_for(lambda: manifest_is_static(record_dir / "manifest.mpd"))
    finally:
        await context.close()

    mpd = (record_dir / "manifest.mpd").read_text()
    assert f'mimeType="video/{container}"' in mpd
    probe = ffprobe(record_dir / "manifest.mpd")
    assert {s["codec_name"] for s in probe["streams"]} == {codec_name, "opus"}

    url = f"{node.url}/api/record/object/{info['mpd_path']}"
    result = await play_mpd(browser, url, timeout=40)
    assert result.ended and not result.errors, describe(result)
    assert not [w for w in result.warnings if "not supported" in w], describe(result)
    assert result.frames >= 30 and result.width > 0, describe(result)
    assert abs(result.current_time - result.duration) < 1.0, describe(result)
