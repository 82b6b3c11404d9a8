"""The web pages (web/) as a user sees them, in headless Chromium against a real liveion.

The dashboard with auth on: a token prompt, a stream row that appears when an aiortc
publisher publishes, a preview whose video advances, a viewer kicked from the sessions
dialog, a recording started and stopped, then played to the end on the recordings page.
The player page waits for a publisher and plays (again) once one arrives. Each test keeps a
screenshot in its temporary directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import test_browser
from clients import play, publish
from conftest import LiveionProcess
from test_recorder import recorder_config

playwright_api = pytest.importorskip("playwright.async_api")
pytestmark = pytest.mark.asyncio(loop_scope="module")

# test_browser's Chromium (fake devices, loopback ICE), used here by name.
browser = test_browser.browser

WAIT_MS = 20_000
ADMIN = "admin-token"
VIEWER = "viewer-token"
AUTH = f'[auth]\ntokens = ["{ADMIN}", "{VIEWER}"]\n'


class UserPage:
    """A page in its own browser context that records what would show in the console:
    uncaught exceptions and console errors (failed requests log one each)."""

    def __init__(self, context: Any, page: Any) -> None:
        self.context = context
        self.page = page
        self.page_errors: list[str] = []
        self.console_errors: list[str] = []
        page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))
        page.on("console", lambda msg: self.console_errors.append(msg.text)
                if msg.type == "error" else None)

    def check_console(self, allowed: tuple[str, ...] = ()) -> None:
        """No uncaught errors; console errors only for the expected HTTP statuses."""
        assert not self.page_errors, f"uncaught errors in the page: {self.page_errors}"
        unexpected = [m for m in self.console_errors
                      if not any(f"status of {status}" in m for status in allowed)]
        assert not unexpected, f"console errors: {unexpected}"

    async def shot(self, path: Path) -> None:
        await self.page.screenshot(path=str(path))

    async def text(self, selector: str) -> str:
        return str(await self.page.inner_text(selector))


@pytest_asyncio.fixture(loop_scope="module")
async def open_user_page(browser: Any) -> AsyncIterator[Callable[..., Awaitable[UserPage]]]:
    contexts: list[Any] = []

    async def open_(url: str, context: Any = None) -> UserPage:
        if context is None:
            context = await browser.new_context(viewport={"width": 1280, "height": 860})
            contexts.append(context)
        page = UserPage(context, await context.new_page())
        await page.page.goto(url)
        return page

    yield open_
    for context in contexts:
        with contextlib.suppress(playwright_api.Error):
            await context.close()


async def stream_info(node: Any, stream: str, token: str = ADMIN) -> dict[str, Any] | None:
    async with httpx.AsyncClient(base_url=node.url, timeout=5) as client:
        answer = await client.get(f"/api/streams/{stream}",
                                  headers={"Authorization": f"Bearer {token}"})
    return answer.json() if answer.status_code == 200 else None


async def eventually(probe: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool], what: str,
                     log: Callable[[], str], timeout: float = 20.0) -> Any:
    value = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await probe()
        if ok(value):
            return value
        await asyncio.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}; last value: {value!r}\n{log()[-6000:]}")


def frames_of(selector: str) -> str:
    return (f"() => document.querySelector({selector!r})"
            ".getVideoPlaybackQuality().totalVideoFrames")


async def test_dashboard_walk_with_auth_preview_kick_record_and_playback(
        start_liveion: Callable[..., LiveionProcess], tmp_path: Path,
        open_user_page: Callable[..., Awaitable[UserPage]]) -> None:
    node = start_liveion(AUTH + recorder_config(tmp_path))
    auth = {"Authorization": f"Bearer {ADMIN}"}
    user = await open_user_page(node.url + "/")
    page = user.page

    # Auth is on and no token is known: the page asks for one.
    await page.wait_for_selector("#auth-dialog[open]", timeout=WAIT_MS)
    assert "needs a token" in await user.text("#auth-message")
    await page.fill("#auth-token", "wrong-token")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#auth-error:not([hidden])", timeout=WAIT_MS)
    assert "refused" in await user.text("#auth-error")
    await page.fill("#auth-token", ADMIN)
    await page.click("#token-form button[type=submit]")
    await page.wait_for_selector("#auth-dialog:not([open])", state="attached",
                                 timeout=WAIT_MS)
    await page.wait_for_function(
        "document.getElementById('streams-status').textContent === 'Live'", timeout=WAIT_MS)
    assert await user.text("#auth-button") == "Sign out"
    assert await page.evaluate("localStorage.getItem('live777.token')") == ADMIN

    # A publisher arrives: its row appears, live, with its codecs and state.
    publisher = await publish(node.url, "cam", headers=auth)
    viewer = None
    try:
        row = 'tr[data-stream="cam"]'
        await page.wait_for_function(
            f"""() => {{ const r = document.querySelector('{row}');
                return r && r.querySelector('.publisher').textContent === 'connected'
                    && /H264/i.test(r.querySelector('.codecs').textContent); }}""",
            timeout=WAIT_MS)
        assert await user.text(f"{row} .subscribers") == "0"
        assert await user.text(f"{row} .recording") == "Off"
        await page.wait_for_function(  # the snapshot thumbnail loads (a decoded keyframe)
            f"() => document.querySelector('{row} .thumb img').naturalWidth > 0",
            timeout=WAIT_MS)

        # Preview (by keyboard): WHEP in a dialog; the video advances and decode stats show.
        await page.focus('button[aria-label="Preview cam"]')
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#preview-dialog[open]")
        await page.wait_for_function(f"({frames_of('#preview-dialog video')})() > 10",
                                     timeout=WAIT_MS)
        first = await page.evaluate(frames_of("#preview-dialog video"))
        await page.wait_for_function(f"({frames_of('#preview-dialog video')})() > {first + 10}",
                                     timeout=WAIT_MS)
        await page.wait_for_function(
            "document.querySelector('#preview-dialog .stats').textContent.includes('video/H264')",
            timeout=WAIT_MS)
        assert "Decode time" in await page.text_content("#preview-dialog .stats")
        await page.wait_for_function(
            f"document.querySelector('{row} .subscribers').textContent === '1'", timeout=WAIT_MS)
        await user.shot(tmp_path / "preview.png")
        await page.keyboard.press("Escape")  # closes the dialog, which hangs up
        await page.wait_for_selector("#preview-dialog:not([open])", state="attached")
        assert await page.evaluate(  # the focus is back on the row's button
            "document.activeElement.getAttribute('aria-label')") == "Preview cam"
        await page.wait_for_function(
            f"document.querySelector('{row} .subscribers').textContent === '0'", timeout=WAIT_MS)

        # Sessions: an aiortc viewer (its own token) is listed and kicked by the admin.
        viewer = await play(node.url, "cam", headers={"Authorization": f"Bearer {VIEWER}"})
        await page.wait_for_function(
            f"document.querySelector('{row} .subscribers').textContent === '1'", timeout=WAIT_MS)
        await page.click('button[aria-label="Sessions of cam"]')
        await page.wait_for_selector("#sessions-dialog[open] tr[data-role=viewer]")
        assert await page.locator("#sessions-dialog tr[data-role=publisher]").count() == 1
        await page.click("#sessions-dialog tr[data-role=viewer] button")
        await page.wait_for_function(
            "document.querySelector('#sessions-dialog .status').textContent.startsWith('Kicked')",
            timeout=WAIT_MS)
        await eventually(lambda: stream_info(node, "cam"),
                         lambda s: bool(s) and not s["subscribe"]["sessions"],
                         "the kicked viewer to be gone", node.log)
        await page.wait_for_selector("#sessions-dialog tr[data-role=viewer]", state="detached",
                                     timeout=WAIT_MS)
        await page.keyboard.press("Escape")
        await viewer.close(delete=False)
        viewer = None

        # Record from the row, then stop (with a confirmation).
        await page.click('button[aria-label="Record cam"]')
        await page.wait_for_function(
            f"document.querySelector('{row} .recording').textContent === 'Recording'",
            timeout=WAIT_MS)
        assert "Play now" in await user.text("#notice")
        await user.shot(tmp_path / "dashboard.png")
        await asyncio.sleep(3.5)  # three 1 s segments
        await page.click('button[aria-label="Stop recording cam"]')
        await page.click("dialog[open] .confirm-ok")
        await page.wait_for_function(
            f"document.querySelector('{row} .recording').textContent === 'Off'",
            timeout=WAIT_MS)
    finally:
        if viewer is not None:
            await viewer.close()
        await publisher.close()
    user.check_console(allowed=("401",))  # the wrong token

    # The recordings page (same browser context: the token is remembered) plays it to the end.
    rec = await open_user_page(node.url + "/recordings.html", user.context)
    rpage = rec.page
    await rpage.click('#stream-list button[data-stream="cam"]')
    completed = '#records-table tr[data-status="Completed"]'
    deadline = time.monotonic() + 20
    while not await rpage.locator(completed).count():
        assert time.monotonic() < deadline, await rec.text("#records-table")
        await rpage.click("#reload")
        await asyncio.sleep(0.5)
    record_row = rpage.locator(completed).first
    assert re.search(r"0:0[2-9]", await record_row.locator(".duration").inner_text())
    href = await record_row.locator("a").get_attribute("href")
    assert href.endswith(f"manifest.mpd?token={ADMIN}"), href
    await record_row.locator("button").click()
    await rpage.wait_for_function("recordingsPage.state().ended || "
                                  "recordingsPage.state().errors.length", timeout=30_000)
    state = await rpage.evaluate("recordingsPage.state()")
    assert state["ended"] and not state["errors"], state
    assert state["frames"] >= 30 and abs(state["currentTime"] - state["duration"]) < 1, state
    assert (await rec.text("#dash-status")).startswith("Finished"), state
    await rec.shot(tmp_path / "recordings.png")
    rec.check_console()


async def test_player_page_waits_for_the_publisher_and_plays_when_it_returns(
        start_liveion: Callable[..., LiveionProcess], tmp_path: Path,
        open_user_page: Callable[..., Awaitable[UserPage]]) -> None:
    node = start_liveion(AUTH)
    auth = {"Authorization": f"Bearer {ADMIN}"}
    user = await open_user_page(
        f"{node.url}/player.html?id=late&token={VIEWER}&reconnect=1000&stats=1")
    page = user.page
    await page.wait_for_function("window.livePlayer?.state() === 'waiting'", timeout=WAIT_MS)
    assert "Waiting for the publisher of late" in await user.text("#player-message")
    await user.shot(tmp_path / "waiting.png")
    # Waiting does not create the stream (a WHEP offer would).
    assert await stream_info(node, "late") is None

    async def publish_and_see_frames(screenshot: Path | None = None) -> None:
        publisher = await publish(node.url, "late", headers=auth)
        try:
            await page.wait_for_function("livePlayer.state() === 'playing'", timeout=WAIT_MS)
            first = await page.evaluate("livePlayer.frames()")
            await page.wait_for_function(f"livePlayer.frames() > {first + 15}", timeout=WAIT_MS)
            assert await page.is_hidden("#player-message")
            assert "Frames decoded" in await page.text_content("#player-stats")
            if screenshot:
                await user.shot(screenshot)
        finally:
            await publisher.close()

    await publish_and_see_frames(tmp_path / "playing.png")
    # The publisher leaves, and comes back: playback resumes.
    await page.wait_for_function("livePlayer.state() !== 'playing'", timeout=WAIT_MS)
    assert "Waiting for the publisher" in await user.text("#player-message")
    await publish_and_see_frames()
    user.check_console()


async def test_pages_say_what_is_wrong(
        start_liveion: Callable[..., LiveionProcess], tmp_path: Path,
        open_user_page: Callable[..., Awaitable[UserPage]]) -> None:
    node = start_liveion(AUTH)
    # A wrong token in the player's address: said plainly, no endless spinner.
    bad = await open_user_page(f"{node.url}/player.html?id=cam&token=nope")
    await bad.page.wait_for_function("livePlayer.state() === 'error'", timeout=WAIT_MS)
    assert "token was refused" in await bad.text("#player-message")
    bad.check_console(allowed=("401",))
    # No stream named: the player asks for one.
    ask = await open_user_page(f"{node.url}/player.html")
    await ask.page.wait_for_selector("#player-form:not([hidden])")
    assert "Which stream?" in await ask.text("#player-message")
    # The dashboard with a wrong ?token=: the sign-in dialog says it was refused.
    dash = await open_user_page(f"{node.url}/?token=nope")
    await dash.page.wait_for_selector("#auth-dialog[open]", timeout=WAIT_MS)
    assert "refused" in await dash.text("#auth-message")
    # The recordings page of a stream without recordings, with a good token.
    rec = await open_user_page(f"{node.url}/recordings.html?stream=nosuch&token={ADMIN}")
    await rec.page.wait_for_function(
        "document.querySelector('#records-table td.empty')?.textContent.includes('nosuch')",
        timeout=WAIT_MS)
    assert "No recordings yet" in await rec.text("#page-status")
    await rec.shot(tmp_path / "recordings-empty.png")
    ask.check_console()
    rec.check_console()

    # A pip-only install (no node_modules): the recordings page says dash.js is missing.
    context = await browser_context(rec)
    await context.route("**/vendor/dashjs/**", lambda route: route.fulfill(status=404))
    await context.route("**/api/playback/fake", lambda route: route.fulfill(
        status=200, content_type="application/json",
        body='[{"record": "1700000000", "mpd_path": "fake/1700000000/manifest.mpd",'
             ' "duration_ms": 4000, "status": "Completed"}]'))
    nodash = await open_user_page(
        f"{node.url}/recordings.html?stream=fake&record=1700000000&token={ADMIN}", context)
    await nodash.page.wait_for_function(
        "document.getElementById('dash-status').dataset.kind === 'error'", timeout=WAIT_MS)
    assert "dash.js is not installed" in await nodash.text("#dash-status")
    assert await nodash.page.is_visible("#dash-download")  # the manifest can still be fetched
    nodash.check_console(allowed=("404",))

    # A server without a recorder (as /api/info says): the page says so instead of failing.
    await context.route("**/api/info", lambda route: route.fulfill(
        status=200, content_type="application/json",
        body='{"version": "x", "features": ["metrics", "sse"]}'))
    norec = await open_user_page(f"{node.url}/recordings.html", context)
    await norec.page.wait_for_function(
        "document.getElementById('page-status').textContent.includes('no recorder')",
        timeout=WAIT_MS)
    norec.check_console()
    await context.close()


async def browser_context(page: UserPage) -> Any:
    """A fresh context in the same browser as `page`."""
    return await page.context.browser.new_context(viewport={"width": 1280, "height": 860})
