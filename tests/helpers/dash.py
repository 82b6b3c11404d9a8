"""Play a DASH manifest with dash.js (npm `dashjs`) in headless Chromium, for tests.

    async with chromium() as browser:
        with serve_directory(recording_dir) as base_url:      # or any server, e.g. liveman
            result = await play_mpd(browser, base_url + "manifest.mpd")
        assert result.ended and not result.errors

`play_mpd` opens a page on the manifest's own origin (Playwright answers the page and
dash.js itself under `/__dash_harness__/`, every other request goes to the real server), so
a manifest behind any URL prefix plays without CORS. It reports what the `<video>` element
and dash.js saw: ended, currentTime, decoded frames, dash.js error events.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.server
import json
import os
import shutil
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
DASHJS = ROOT / "node_modules" / "dashjs" / "dist" / "modern" / "umd" / "dash.all.min.js"
HARNESS_PREFIX = "/__dash_harness__/"

CHROMIUM_ARGS = [
    "--autoplay-policy=no-user-gesture-required",
    "--no-sandbox",
    "--disable-gpu",
    "--mute-audio",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

PLAYER_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>dash.js harness</title>
<script src="dash.all.min.js"></script></head>
<body><video id="video" muted playsinline width="320"></video>
<script>
window.harness = {errors: [], events: [], ended: false, player: null};
window.startPlayer = (url, settings) => {
  const video = document.getElementById('video');
  video.muted = true;
  video.addEventListener('ended', () => { harness.ended = true; harness.events.push('ended'); });
  video.addEventListener('playing', () => harness.events.push('playing'));
  video.addEventListener('error', () => harness.errors.push('video element error: ' +
      (video.error ? video.error.code + ' ' + video.error.message : '?')));
  const player = dashjs.MediaPlayer().create();
  player.updateSettings({debug: {logLevel: dashjs.Debug.LOG_LEVEL_WARNING}});
  if (settings) player.updateSettings(settings);
  const events = dashjs.MediaPlayer.events;
  player.on(events.ERROR, e => harness.errors.push('dash.js error: ' + JSON.stringify(
      e.error ? {code: e.error.code, message: e.error.message} : e)));
  player.on(events.PLAYBACK_ERROR, e => harness.errors.push('dash.js playback error: ' +
      JSON.stringify(e.error || e)));
  player.on(events.PLAYBACK_ENDED, () => harness.events.push('dash.js ended'));
  harness.player = player;
  player.initialize(video, url, true);
};
window.harnessState = () => {
  const video = document.getElementById('video');
  const quality = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
  const buffered = [];
  for (let i = 0; i < video.buffered.length; i++)
    buffered.push([video.buffered.start(i), video.buffered.end(i)]);
  return {
    ended: harness.ended || video.ended, currentTime: video.currentTime,
    duration: video.duration, width: video.videoWidth, height: video.videoHeight,
    readyState: video.readyState, buffered: buffered,
    frames: quality ? quality.totalVideoFrames : 0,
    dropped: quality ? quality.droppedVideoFrames : 0,
    dynamic: harness.player ? harness.player.isDynamic() : null,
    errors: harness.errors.slice(), events: harness.events.slice(),
  };
};
</script></body></html>
"""


def dashjs_available() -> bool:
    return DASHJS.is_file()


def chromium_path() -> str | None:
    configured = os.environ.get("LIVEION_CHROMIUM")
    if configured:
        return configured
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """A headless Chromium that autoplays muted media (Playwright with the system browser)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path(), headless=True,
                                           args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map: ClassVar[dict[str, str]] = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".mpd": "application/dash+xml", ".m4s": "video/iso.segment"}

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve_directory(root: Path) -> Iterator[str]:
    """A static HTTP server for `root` on 127.0.0.1; yields its base URL (ending in '/')."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@dataclass
class PlaybackResult:
    ended: bool
    current_time: float
    duration: float
    width: int
    height: int
    frames: int
    """Video frames the element decoded (getVideoPlaybackQuality)."""
    dropped: int
    dynamic: bool | None
    errors: list[str]
    """dash.js ERROR/PLAYBACK_ERROR events, `<video>` errors and uncaught page errors."""
    events: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    """Console warnings and errors (dash.js logs a Representation it drops as unsupported)."""
    buffered: list[list[float]] = field(default_factory=list)


async def _harness_page(context: Any, page_url: str) -> Any:
    async def answer(route: Any) -> None:
        path = urlsplit(route.request.url).path
        if path.endswith("/dash.all.min.js"):
            await route.fulfill(body=DASHJS.read_bytes(), content_type="text/javascript")
        else:
            await route.fulfill(body=PLAYER_PAGE, content_type="text/html")

    origin = "{0.scheme}://{0.netloc}".format(urlsplit(page_url))
    await context.route(origin + HARNESS_PREFIX + "**", answer)
    page = await context.new_page()
    return page


async def mse_supported(browser: Any, mime: str) -> bool:
    """`MediaSource.isTypeSupported(mime)` in this browser."""
    page = await browser.new_page()
    try:
        await page.set_content("<html></html>")
        return bool(await page.evaluate("t => MediaSource.isTypeSupported(t)", mime))
    finally:
        await page.close()


async def play_mpd(browser: Any, mpd_url: str, *,
                   until: Literal["ended", "playing"] = "ended", play_seconds: float = 1.0,
                   timeout: float = 20.0, settings: dict[str, Any] | None = None
                   ) -> PlaybackResult:
    """Play `mpd_url` with dash.js until the video ends (`until="ended"`) or until it has
    played `play_seconds` (`until="playing"`, for live manifests), an error fires, or
    `timeout` seconds pass; returns the final state either way."""
    context = await browser.new_context()
    page_errors: list[str] = []
    try:
        split = urlsplit(mpd_url)
        page_url = f"{split.scheme}://{split.netloc}{HARNESS_PREFIX}player.html"
        page = await _harness_page(context, page_url)
        warnings: list[str] = []
        page.on("pageerror", lambda exc: page_errors.append(f"page error: {exc}"))
        page.on("console", lambda message: warnings.append(message.text)
                if message.type in ("warning", "error") else None)
        await page.goto(page_url)
        await page.evaluate("([url, settings]) => startPlayer(url, settings)",
                            [mpd_url, settings])
        deadline = time.monotonic() + timeout
        started_at: float | None = None
        while True:
            state = await page.evaluate("harnessState()")
            if state["errors"] or page_errors or state["ended"]:
                break
            if until == "playing":
                if started_at is None and state["currentTime"] > 0:
                    started_at = state["currentTime"]
                if started_at is not None and state["currentTime"] - started_at >= play_seconds:
                    break
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        return PlaybackResult(
            ended=bool(state["ended"]), current_time=float(state["currentTime"]),
            duration=float(state["duration"] or 0.0), width=int(state["width"]),
            height=int(state["height"]), frames=int(state["frames"]),
            dropped=int(state["dropped"]), dynamic=state["dynamic"],
            errors=[*state["errors"], *page_errors], events=list(state["events"]),
            warnings=warnings,
            buffered=state["buffered"])
    finally:
        await context.close()


def describe(result: PlaybackResult) -> str:
    """One line for assertion messages."""
    return json.dumps(result.__dict__, default=str)
