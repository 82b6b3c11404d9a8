"""The web page (web/) in headless Chromium against a real liveion process.

Chromium publishes its fake camera over WHIP and plays it back over WHEP through the SFU; the
page's `window.liveion` hook drives it and reports `getStats()` numbers. Skipped when no
Chromium is installed (set LIVEION_CHROMIUM to point at one).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import pytest_asyncio

playwright_api = pytest.importorskip("playwright.async_api")

if TYPE_CHECKING:
    from conftest import LiveionProcess

pytestmark = pytest.mark.asyncio(loop_scope="module")

CHROMIUM_ARGS = [
    # Fake camera/microphone, permission prompts auto-accepted.
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    # The server only offers 127.0.0.1 candidates in tests: keep host candidates as plain IPs
    # (no mDNS .local names) and allow loopback in ICE.
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--allow-loopback-in-peer-connection",
    # Quiet, offline, container friendly.
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_S = 20.0


def chromium_path() -> str | None:
    configured = os.environ.get("LIVEION_CHROMIUM")
    if configured:
        return configured
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None  # let Playwright try its own download


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as pw:
        try:
            chromium = await pw.chromium.launch(
                executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        except playwright_api.Error as exc:
            pytest.skip(f"Chromium unavailable: {exc.message.splitlines()[0]}")
        yield chromium
        await chromium.close()


class PageUnderTest:
    """A page of web/ in its own browser context, recording uncaught errors."""

    def __init__(self, context: Any, page: Any) -> None:
        self.context = context
        self.page = page
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    async def call(self, expression: str, arg: Any = None) -> Any:
        return await self.page.evaluate(expression, arg)

    async def status(self, panel: str) -> str:
        return str(await self.page.inner_text(f"#{panel}-status"))


@pytest_asyncio.fixture(loop_scope="module")
async def open_page(browser: Any) -> AsyncIterator[Callable[[str], Awaitable[PageUnderTest]]]:
    """Factory: `await open_page(url)` -> a loaded page; hangs up and closes at teardown."""
    opened: list[PageUnderTest] = []

    async def open_(url: str) -> PageUnderTest:
        context = await browser.new_context(viewport={"width": 1280, "height": 1000})
        page = PageUnderTest(context, await context.new_page())
        opened.append(page)
        await page.page.goto(url)
        await page.page.wait_for_function("window.liveion !== undefined", timeout=WAIT_S * 1000)
        return page

    yield open_
    for page in opened:
        with contextlib.suppress(playwright_api.Error):
            await page.call("Promise.all([liveion.stopPlay(), liveion.stopPublish()])")
        await page.context.close()
    for page in opened:
        assert not page.errors, f"uncaught errors in the page: {page.errors}"


def explain(liveion: LiveionProcess, note: str = "") -> str:
    log = liveion.log()
    return f"{note}\n--- liveion log (tail) ---\n{log[-8000:]}"


async def wait_until(probe: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool],
                     what: str, liveion: LiveionProcess, timeout: float = WAIT_S) -> Any:
    """Polls `probe()` until `ok(value)`; fails with the last value and the server log."""
    deadline = time.monotonic() + timeout
    value = None
    while True:
        value = await probe()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(explain(liveion, f"timed out waiting for {what}; last value: {value}"))
        await asyncio.sleep(0.25)


async def server_stream(liveion: LiveionProcess, stream: str) -> dict[str, Any] | None:
    async with httpx.AsyncClient(base_url=liveion.url, timeout=5) as client:
        response = await client.get(f"/api/streams/{stream}")
    return response.json() if response.status_code == 200 else None


def session_counts(info: dict[str, Any] | None) -> tuple[int, int]:
    if not info:
        return (0, 0)
    return (len(info["publish"]["sessions"]), len(info["subscribe"]["sessions"]))


async def publish(page: PageUnderTest, stream: str, codec: str,
                  liveion: LiveionProcess) -> dict[str, Any]:
    try:
        result: dict[str, Any] = await page.call(
            "([stream, codec]) => liveion.publish(stream, {codec})", [stream, codec])
    except playwright_api.Error as exc:
        pytest.fail(explain(liveion, f"publish failed: {exc.message}; "
                                     f"status line: {await page.status('publish')}"))
    assert result["status"] == 201, explain(liveion, f"publish answered {result}")
    return result


@pytest.mark.parametrize("codec", ["H264", "VP8"])
async def test_chromium_publish_and_play(
    liveion: LiveionProcess, open_page: Callable[[str], Awaitable[PageUnderTest]], codec: str
) -> None:
    stream = f"t-{codec}"
    mime = f"video/{codec}".lower()
    publisher = await open_page(liveion.url + "/")
    supported = await publisher.call(
        "RTCRtpSender.getCapabilities('video').codecs.map(c => c.mimeType.toLowerCase())")
    if mime not in supported:
        pytest.skip(f"this Chromium cannot send {codec}")

    result = await publish(publisher, stream, codec, liveion)
    assert result["location"].startswith(f"/session/{stream}/"), result

    player = await open_page(liveion.url + "/")
    try:
        played = await player.call("stream => liveion.play(stream)", stream)
    except playwright_api.Error as exc:
        pytest.fail(explain(liveion, f"play failed: {exc.message}"))
    assert played["status"] == 201, explain(liveion, f"play answered {played}")

    async def play_stats() -> dict[str, Any]:
        stats: dict[str, Any] = await player.call("liveion.playStats()")
        return stats

    first = await wait_until(play_stats, lambda s: s["framesDecoded"] > 30,
                             "more than 30 decoded frames", liveion)
    await asyncio.sleep(1.0)
    later = await play_stats()
    sent = await publisher.call("liveion.publishStats()")
    note = f"player stats {first} -> {later}; publisher stats {sent}"
    assert later["framesDecoded"] > first["framesDecoded"], explain(liveion, note)
    assert later["bytesReceived"] > first["bytesReceived"], explain(liveion, note)
    assert later["codec"].lower() == mime, explain(liveion, note)
    assert sent["codec"].lower() == mime, explain(liveion, note)
    assert later["width"] > 0 and later["height"] > 0, explain(liveion, note)
    assert "Playing" in await player.status("play"), await player.status("play")

    info = await wait_until(lambda: server_stream(liveion, stream),
                            lambda s: session_counts(s) == (1, 1),
                            "one publisher and one subscriber session", liveion)
    assert info["id"] == stream

    # Stop hangs up with DELETE: the subscriber session goes away on the server.
    await player.call("liveion.stopPlay()")
    await wait_until(lambda: server_stream(liveion, stream),
                     lambda s: session_counts(s) == (1, 0),
                     "the subscriber session to end after Stop", liveion)


async def test_page_shows_streams(
    liveion: LiveionProcess, open_page: Callable[[str], Awaitable[PageUnderTest]]
) -> None:
    stream = "t-table"
    page = await open_page(liveion.url + "/")
    await publish(page, stream, "VP8", liveion)

    row = f'#streams-table tbody tr[data-stream="{stream}"]'

    async def row_cells() -> dict[str, str] | None:
        cells: dict[str, str] | None = await page.call(
            """row => {
                const tr = document.querySelector(row);
                return tr && Object.fromEntries(
                    [...tr.cells].map(td => [td.className, td.textContent.trim()]));
            }""", row)
        return cells

    cells = await wait_until(row_cells, lambda c: bool(c) and "VP8" in c["codecs"].upper(),
                             "the streams table to list the stream with its codec", liveion)
    assert cells["stream-id"] == stream, cells
    assert cells["subscribers"] == "0", cells
    assert cells["publisher"] not in ("", "none"), cells

    # The row's Play button starts the player on that stream.
    await page.page.click(f"{row} button")
    await wait_until(lambda: page.status("play"), lambda text: text.startswith("Playing"),
                     "the Play button to start playback", liveion)
    assert await page.page.input_value("#play-stream") == stream
    await wait_until(row_cells, lambda c: bool(c) and c["subscribers"] == "1",
                     "the table to count the subscriber", liveion)


async def test_page_reports_failed_publish(
    liveion: LiveionProcess, open_page: Callable[[str], Awaitable[PageUnderTest]]
) -> None:
    stream = "t-dup"
    first = await open_page(liveion.url + "/")
    await publish(first, stream, "VP8", liveion)

    # A second publisher on the same stream, through the form as a user would.
    second = await open_page(liveion.url + "/")
    await second.page.fill("#publish-stream", stream)
    await second.page.select_option("#publish-codec", "VP8")
    await second.page.click("#publish-start")
    await second.page.wait_for_selector('#publish-status[data-kind="error"]',
                                        timeout=WAIT_S * 1000)
    text = await second.status("publish")
    assert "409" in text, explain(liveion, f"status line: {text!r}")
    assert await second.page.is_enabled("#publish-start"), "Publish should be usable again"

    # The hook rejects with the same HTTP status.
    message = await second.call(
        "stream => liveion.publish(stream, {codec: 'VP8'}).then(() => 'resolved', e => e.message)",
        stream)
    assert "409" in message, explain(liveion, f"hook answered {message!r}")

    info = await server_stream(liveion, stream)
    assert session_counts(info) == (1, 0), explain(liveion, f"stream after conflict: {info}")


async def test_player_waits_for_a_late_publisher(
    liveion: LiveionProcess, open_page: Callable[[str], Awaitable[PageUnderTest]]
) -> None:
    stream = "t-late"
    page = await open_page(liveion.url + "/")
    played = await page.call("stream => liveion.play(stream)", stream)
    assert played["status"] == 201, explain(liveion, f"play answered {played}")
    assert (await page.call("liveion.playStats()"))["framesDecoded"] == 0

    await publish(page, stream, "VP8", liveion)
    stats = await wait_until(lambda: page.call("liveion.playStats()"),
                             lambda s: s["framesDecoded"] > 10,
                             "frames from the publisher that came after the player", liveion)
    assert stats["codec"].lower() == "video/vp8", stats


async def test_page_with_a_token_publishes_and_lists_streams_under_auth(
    start_liveion: Callable[..., LiveionProcess],
    open_page: Callable[[str], Awaitable[PageUnderTest]],
) -> None:
    node = start_liveion('[auth]\ntokens = ["page-token"]\n')
    page = await open_page(node.url + "/?token=page-token")
    result = await page.call(
        "s => liveion.publish(s, {codec: 'VP8', token: 'page-token'})", "t-auth")
    assert result["status"] == 201, explain(node, f"publish answered {result}")

    async def listed() -> str:
        text: str = await page.call(
            "() => liveion.refreshStreams().then(() => document.querySelector("
            "'#streams-table tbody').textContent + '|' + "
            "document.getElementById('streams-status').textContent)")
        return text

    text = await wait_until(listed, lambda t: "t-auth" in t,
                            "the streams table to list the stream with auth on", node)
    assert "unavailable" not in text
