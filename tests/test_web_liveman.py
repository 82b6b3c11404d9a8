"""liveman's dashboard in headless Chromium: log in with an account, see the nodes table and
the stream on its node, mint a token for one stream, and watch with it on the player page."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import test_browser
import test_web_liveion
from clients import publish
from conftest import LiveionProcess
from helpers.cluster import LivemanProcess, all_running, node_toml
from helpers.cluster import wait_until as wait_for
from test_web_liveion import WAIT_MS, UserPage

pytestmark = pytest.mark.asyncio(loop_scope="module")

browser = test_browser.browser
open_user_page = test_web_liveion.open_user_page

SECRET = "web-test-secret"
USER, PASSWORD = "operator", "correct horse"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[LivemanProcess, LiveionProcess]]:
    node = LiveionProcess(tmp_path)
    liveman = None
    try:
        liveman = LivemanProcess(
            tmp_path,
            f'[auth]\nsecret = "{SECRET}"\n'
            f'[[auth.accounts]]\nusername = "{USER}"\npassword = "{PASSWORD}"\n'
            + node_toml("node-a", node) + "[cluster]\npoll_interval_ms = 200\n")
        wait_for(lambda: all_running(liveman, ["node-a"], token=login_token(liveman)), 10,
                 "node-a running")
        yield liveman, node
    finally:
        if liveman is not None:
            liveman.stop()
        node.stop()


def login_token(liveman: LivemanProcess) -> str:
    import httpx

    answer = httpx.post(f"{liveman.url}/api/login", timeout=10,
                        json={"username": USER, "password": PASSWORD})
    answer.raise_for_status()
    token: str = answer.json()["access_token"]
    return token


async def test_liveman_dashboard_login_nodes_and_token_minting(
        cluster: tuple[LivemanProcess, LiveionProcess], tmp_path: Path,
        open_user_page: Callable[..., Any]) -> None:
    liveman, node = cluster
    user: UserPage = await open_user_page(liveman.url + "/")
    page = user.page

    # liveman answers 401 without a token: the sign-in dialog offers an account login.
    await page.wait_for_selector("#auth-dialog[open] #login-form:not([hidden])", timeout=WAIT_MS)
    await page.fill("#login-form input[name=username]", USER)
    await page.fill("#login-form input[name=password]", "wrong")
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("#auth-error:not([hidden])", timeout=WAIT_MS)
    assert "Wrong user name or password" in await user.text("#auth-error")
    await page.fill("#login-form input[name=password]", PASSWORD)
    await page.press("#login-form input[name=password]", "Enter")
    await page.wait_for_selector("#auth-dialog:not([open])", state="attached", timeout=WAIT_MS)
    assert await page.text_content("h1") == "liveman"

    # The nodes table: node-a, running, seen recently, with its latency and load.
    node_row = '#nodes-table tr[data-node="node-a"]'
    await page.wait_for_selector(node_row, timeout=WAIT_MS)
    assert await user.text(f"{node_row} .node-status") == "running"
    assert node.url in await user.text(f"{node_row} .url")
    assert "ago" in await user.text(f"{node_row} .last-seen")
    assert "ms" in await user.text(f"{node_row} .latency")

    # A publisher through liveman (the login token is an admin JWT): the merged streams
    # table shows the stream and the node it lives on.
    admin = await page.evaluate("localStorage.getItem('live777.token')")
    publisher = await publish(liveman.url, "room9", headers={"Authorization": f"Bearer {admin}"})
    try:
        row = 'tr[data-stream="room9"]'
        await page.wait_for_function(
            f"document.querySelector('{row} .nodes')?.textContent === 'node-a'", timeout=WAIT_MS)
        await page.wait_for_function(
            f"document.querySelector('{row} .publisher').textContent === 'connected'",
            timeout=WAIT_MS)
        assert await page.locator(f"{row} .thumb").count() == 0  # no snapshots on liveman
        await user.shot(tmp_path / "liveman.png")

        # Mint a subscribe-only token for room9 from the row's menu.
        await page.click(f'{row} summary')
        await page.click('button[aria-label="Create a token for room9"]')
        await page.wait_for_selector("#mint-dialog[open]")
        assert await page.input_value("#mint-dialog input[name=id]") == "room9"
        await page.select_option("#mint-dialog select[name=duration]", "3600")
        await page.click("#mint-dialog button[type=submit]")
        await page.wait_for_selector("#mint-dialog .token-result:not([hidden])", timeout=WAIT_MS)
        minted = await page.input_value("#minted-token")
        claims = json.loads(_b64(minted.split(".")[1]))
        assert claims["id"] == "room9" and claims["mode"] == 4, claims
        player_href = await page.get_attribute("#mint-dialog .token-links a", "href")
        assert player_href == f"player.html?id=room9&token={minted}"
        await page.keyboard.press("Escape")
        user.check_console(allowed=("401",))  # before login, and the wrong password

        # The minted token plays the stream through liveman.
        viewer = await open_user_page(f"{liveman.url}/{player_href}")
        await viewer.page.wait_for_function("livePlayer.state() === 'playing'", timeout=WAIT_MS)
        first = await viewer.page.evaluate("livePlayer.frames()")
        await viewer.page.wait_for_function(f"livePlayer.frames() > {first + 15}",
                                            timeout=WAIT_MS)
        viewer.check_console()
    finally:
        await publisher.close()


def _b64(part: str) -> str:
    import base64

    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()
