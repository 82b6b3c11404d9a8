"""Data-channel fan-out through a real liveion process: aiortc peers and Chromium pages.

A message the publisher sends reaches every subscriber that opened a data channel; a
subscriber's message reaches the publisher (and not the other subscribers).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from clients import PatternTrack, play, prefer
from conftest import LiveionProcess

Start = Callable[..., LiveionProcess]
Message = tuple[str, str | bytes]


@dataclass
class DataPeer:
    """An aiortc WHIP publisher or WHEP player with data channels, recording what arrives."""

    pc: RTCPeerConnection
    channels: dict[str, RTCDataChannel]
    location: str = ""
    received: list[Message] = field(default_factory=list)

    async def opened(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while any(c.readyState != "open" for c in self.channels.values()):
            assert time.monotonic() < deadline, "data channels did not open"
            await asyncio.sleep(0.05)

    async def wait_for(self, count: int, timeout: float = 10) -> list[Message]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.received

    async def close(self) -> None:
        await self.pc.close()


async def connect(base: str, path: str, labels: tuple[str, ...], media: str) -> DataPeer:
    """`media`: "send" (a publisher's camera), "recv" (a player) or "none"."""
    pc = RTCPeerConnection()
    if media == "send":
        prefer(pc.addTransceiver(PatternTrack(), direction="sendonly"), "video/VP8")
    elif media == "recv":
        pc.addTransceiver("video", direction="recvonly")
    peer = DataPeer(pc, {label: pc.createDataChannel(label) for label in labels})
    for label, channel in peer.channels.items():
        channel.on("message", lambda data, label=label: peer.received.append((label, data)))
    await pc.setLocalDescription(await pc.createOffer())
    async with httpx.AsyncClient(timeout=15) as client:
        response = await client.post(f"{base}{path}", content=pc.localDescription.sdp,
                                     headers={"Content-Type": "application/sdp"})
    assert response.status_code == 201, response.text
    assert "m=application" in response.text, "the answer dropped the data channel"
    await pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))
    peer.location = response.headers["location"]
    await peer.opened()
    return peer


def stream_sessions(node: LiveionProcess, stream: str) -> dict[str, list[dict[str, Any]]]:
    info = httpx.get(f"{node.url}/api/streams/{stream}", timeout=5).json()
    return {side: info[side]["sessions"] for side in ("publish", "subscribe")}


async def test_publisher_messages_reach_subscribers_and_back(liveion: LiveionProcess) -> None:
    publisher = await connect(liveion.url, "/whip/room", ("chat",), "send")
    first = await connect(liveion.url, "/whep/room", ("chat",), "recv")
    second = await connect(liveion.url, "/whep/room", ("other-label",), "recv")
    silent = await play(liveion.url, "room")  # no data channel: still a normal viewer
    try:
        publisher.channels["chat"].send("hello room")
        publisher.channels["chat"].send(b"\x00\x01binary\xff")
        for player in (first, second):
            got = await player.wait_for(2)
            assert got == [("chat", "hello room"), ("chat", b"\x00\x01binary\xff")] \
                or got == [("other-label", "hello room"),
                           ("other-label", b"\x00\x01binary\xff")], got
        first.channels["chat"].send("from viewer 1")
        second.channels["other-label"].send(b"\x02from viewer 2")
        got = await publisher.wait_for(2)
        assert sorted(map(repr, got)) == sorted(
            map(repr, [("chat", "from viewer 1"), ("chat", b"\x02from viewer 2")])), got
        await asyncio.sleep(0.5)
        # Subscribers do not hear each other.
        assert len(first.received) == 2 and len(second.received) == 2
        sessions = stream_sessions(liveion, "room")
        assert [s["hasDataChannel"] for s in sessions["publish"]] == [True]
        assert sorted(s["hasDataChannel"] for s in sessions["subscribe"]) == [False, True, True]
        assert await silent.wait_frames("video", 10) >= 10, "media stopped for a plain viewer"
    finally:
        for peer in (publisher, first, second):
            await peer.close()
        await silent.close()


async def test_labels_pick_the_matching_channel(liveion: LiveionProcess) -> None:
    publisher = await connect(liveion.url, "/whip/labels", ("control", "chat"), "send")
    player = await connect(liveion.url, "/whep/labels", ("chat", "misc"), "recv")
    try:
        publisher.channels["chat"].send("to chat")
        publisher.channels["control"].send("no such label")
        got = await player.wait_for(2)
        assert sorted(got) == [("chat", "no such label"), ("chat", "to chat")], got
        player.channels["misc"].send("misc up")
        player.channels["chat"].send("chat up")
        got = await publisher.wait_for(2)
        assert sorted(got) == [("chat", "chat up"), ("control", "misc up")], got
    finally:
        await publisher.close()
        await player.close()


async def test_data_only_publisher_stays_up(start_liveion: Start) -> None:
    node = start_liveion("[webrtc]\nice_udp_addrs = [\"127.0.0.1\"]\nsetup_timeout_ms = 1500\n")
    publisher = await connect(node.url, "/whip/text", ("chat",), "none")
    player = await connect(node.url, "/whep/text", ("chat",), "recv")
    try:
        await asyncio.sleep(2.5)  # past the setup deadline: a session without RTP is kept
        assert len(stream_sessions(node, "text")["publish"]) == 1, node.log()[-3000:]
        publisher.channels["chat"].send("still here")
        assert await player.wait_for(1) == [("chat", "still here")]
    finally:
        await publisher.close()
        await player.close()


async def test_messages_cross_a_cascade(start_liveion: Start) -> None:
    a, b = start_liveion(), start_liveion()
    publisher = await connect(a.url, "/whip/far", ("chat",), "send")
    response = httpx.post(f"{b.url}/api/cascade/far", json={"sourceUrl": f"{a.url}/whep/far"},
                          timeout=30)
    assert response.status_code == 200, response.text
    player = await connect(b.url, "/whep/far", ("chat",), "recv")
    try:
        publisher.channels["chat"].send("across nodes")
        assert [m for _, m in await player.wait_for(1)] == ["across nodes"], b.log()[-3000:]
        player.channels["chat"].send("back again")
        assert [m for _, m in await publisher.wait_for(1)] == ["back again"]
    finally:
        await publisher.close()
        await player.close()


# ---- Chromium ------------------------------------------------------------------------------

CHROMIUM_ARGS = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                 "--disable-features=WebRtcHideLocalIpsWithMdns",
                 "--allow-loopback-in-peer-connection", "--no-sandbox", "--disable-gpu",
                 "--no-first-run", "--disable-background-networking"]

# Runs in the page: a WHIP or WHEP session with one data channel; incoming messages are
# kept in window.received, window.channel is the channel.
CONNECT_JS = """
async ([endpoint, publish]) => {
  const pc = new RTCPeerConnection();
  window.received = [];
  window.channel = pc.createDataChannel("chat");
  window.channel.binaryType = "arraybuffer";
  window.channel.onmessage = (e) => window.received.push(
      typeof e.data === "string" ? e.data : "bytes:" + Array.from(new Uint8Array(e.data)));
  if (publish) {
    const media = await navigator.mediaDevices.getUserMedia({video: true, audio: true});
    for (const track of media.getTracks()) pc.addTransceiver(track, {direction: "sendonly"});
  } else {
    pc.addTransceiver("video", {direction: "recvonly"});
  }
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && resolve();
    setTimeout(resolve, 3000);
  });
  const response = await fetch(endpoint, {method: "POST", body: pc.localDescription.sdp,
                                          headers: {"Content-Type": "application/sdp"}});
  const answer = await response.text();
  if (response.status !== 201) return {status: response.status, answer};
  await pc.setRemoteDescription({type: "answer", sdp: answer});
  await new Promise((resolve, reject) => {
    if (window.channel.readyState === "open") return resolve();
    window.channel.onopen = resolve;
    setTimeout(() => reject(new Error("data channel did not open")), 15000);
  });
  window.pc = pc;
  return {status: response.status};
}
"""


async def test_chromium_pages_talk_over_data_channels(liveion: LiveionProcess) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("no Chromium installed")
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=executable, headless=True,
                                           args=CHROMIUM_ARGS)
        try:
            pages = []
            for _ in range(2):
                context = await browser.new_context()
                page = await context.new_page()
                await page.goto(liveion.url + "/")
                pages.append(page)
            publisher, player = pages
            result = await publisher.evaluate(CONNECT_JS, [f"{liveion.url}/whip/web", True])
            assert result["status"] == 201, result
            result = await player.evaluate(CONNECT_JS, [f"{liveion.url}/whep/web", False])
            assert result["status"] == 201, result

            async def received(page: Any, count: int) -> list[str]:
                deadline = time.monotonic() + 10
                while True:
                    got: list[str] = await page.evaluate("window.received")
                    if len(got) >= count or time.monotonic() > deadline:
                        return got
                    await asyncio.sleep(0.1)

            await publisher.evaluate("window.channel.send('typed by the publisher')")
            await publisher.evaluate("window.channel.send(new Uint8Array([1, 2, 250]))")
            assert await received(player, 2) == ["typed by the publisher", "bytes:1,2,250"]
            await player.evaluate("window.channel.send('typed by the viewer')")
            assert await received(publisher, 1) == ["typed by the viewer"]
            sessions = stream_sessions(liveion, "web")
            assert [s["hasDataChannel"] for s in sessions["publish"]] == [True]
            assert [s["hasDataChannel"] for s in sessions["subscribe"]] == [True]
        finally:
            with contextlib.suppress(Exception):
                await browser.close()
