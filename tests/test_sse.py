"""`GET /api/sse/streams`: Live777's snapshot feed, watched the way liveman and dashboards do,
against real liveion processes with real aiortc publishers and players."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from clients import play, publish
from conftest import LiveionProcess
from helpers.inprocess import serve_inprocess

from liveion.http import sse


@dataclass
class Message:
    event: str | None
    id: str | None
    data: str
    comment: bool = False

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SseReader:
    """Reads one SSE response in the background; messages (and comments) land in a queue."""

    response: httpx.Response
    client: httpx.AsyncClient
    messages: asyncio.Queue[Message] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        event: str | None = None
        event_id: str | None = None
        data: list[str] = []
        async for line in self.response.aiter_lines():
            if line.startswith(":"):
                await self.messages.put(Message(None, None, line[1:].strip(), comment=True))
            elif line == "":
                if data:
                    await self.messages.put(Message(event, event_id, "\n".join(data)))
                event, event_id, data = None, None, []
            else:
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "data":
                    data.append(value)
                elif name == "event":
                    event = value
                elif name == "id":
                    event_id = value

    async def next(self, timeout: float = 20, comments: bool = False) -> Message:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("no SSE message in time")
            message = await asyncio.wait_for(self.messages.get(), remaining)
            if comments or not message.comment:
                return message

    async def until(self, predicate: Callable[[Message], bool], timeout: float = 20) -> Message:
        deadline = time.monotonic() + timeout
        while True:
            message = await self.next(max(deadline - time.monotonic(), 0.01))
            if predicate(message):
                return message

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await self.task
        await self.response.aclose()
        await self.client.aclose()


async def open_sse(url: str, headers: dict[str, str] | None = None) -> SseReader:
    client = httpx.AsyncClient(timeout=httpx.Timeout(10, read=None))
    request = client.build_request("GET", url, headers=headers)
    response = await client.send(request, stream=True)
    assert response.status_code == 200, response.status_code
    assert response.headers["content-type"].startswith("text/event-stream")
    reader = SseReader(response, client)
    reader.task = asyncio.ensure_future(reader._read())
    return reader


def by_id(snapshot: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in snapshot}


@pytest.fixture
async def inprocess(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[str, Any]]:
    """In-process liveion with a short keep-alive, so the test can see the keep-alive
    comments and count the feeds' listeners."""
    monkeypatch.setattr(sse, "KEEPALIVE", 0.5)
    async with serve_inprocess() as served:
        yield served


async def test_snapshots_follow_publish_play_and_leave(liveion: LiveionProcess) -> None:
    feed = await open_sse(f"{liveion.url}/api/sse/streams")
    try:
        first = (await feed.next()).json()
        assert first == [], "the initial snapshot comes at once, even with no streams"

        publisher = await publish(liveion.url, "room")
        session_id = publisher.location.rsplit("/", 1)[1]
        snap = by_id((await feed.until(
            lambda m: any(s["publish"]["sessions"] for s in m.json()))).json())
        room = snap["room"]
        assert room["publish"]["leaveAt"] == 0
        assert [s["id"] for s in room["publish"]["sessions"]] == [session_id]
        assert {c["kind"] for c in room["codecs"]} == {"audio", "video"}

        player = await play(liveion.url, "room")
        assert await player.wait_frames("video", 10) >= 10
        snap = by_id((await feed.until(
            lambda m: any(s["subscribe"]["sessions"] for s in m.json()))).json())
        assert snap["room"]["subscribe"]["leaveAt"] == 0
        # Media flows: later ticks carry growing byte counts.
        grown = by_id((await feed.until(lambda m: by_id(m.json())["room"]["stats"]["subscribe"]
                                        ["bytes"] > 0)).json())
        assert grown["room"]["stats"]["publish"]["bytes"] > 0
        assert grown["room"]["subscribe"]["sessions"][0]["state"] == "connected"

        await player.close()
        snap = by_id((await feed.until(
            lambda m: not by_id(m.json())["room"]["subscribe"]["sessions"])).json())
        assert snap["room"]["subscribe"]["leaveAt"] > 0

        await publisher.close()
        snap = by_id((await feed.until(
            lambda m: not by_id(m.json())["room"]["publish"]["sessions"])).json())
        assert snap["room"]["publish"]["leaveAt"] > 0

        assert httpx.delete(f"{liveion.url}/api/streams/room").status_code == 204
        await feed.until(lambda m: m.json() == [])
    finally:
        await feed.close()


async def test_identical_snapshots_are_not_repeated_and_filter_applies(
        liveion: LiveionProcess) -> None:
    httpx.post(f"{liveion.url}/api/streams/one")
    httpx.post(f"{liveion.url}/api/streams/two")
    feed = await open_sse(f"{liveion.url}/api/sse/streams?streams=two&streams=three")
    try:
        assert [s["id"] for s in (await feed.next()).json()] == ["two"]
        # Nothing changes for 5 s (two stats ticks): no message may arrive.
        with pytest.raises((AssertionError, TimeoutError)):
            await feed.next(timeout=5)
        # A stream outside the filter changes: still nothing new for this client.
        httpx.delete(f"{liveion.url}/api/streams/one")
        httpx.post(f"{liveion.url}/api/streams/three")
        snapshot = (await feed.next()).json()
        assert [s["id"] for s in snapshot] == ["two", "three"]
    finally:
        await feed.close()


async def test_keepalive_comments_and_disconnect_cleanup(inprocess) -> None:
    url, app = inprocess
    manager = app.state.manager
    listeners_before = len(manager.events._listeners)
    feeds = [await open_sse(f"{url}/api/sse/streams") for _ in range(3)]
    events = await open_sse(f"{url}/api/sse/events")
    try:
        await feeds[0].next()
        comment = await feeds[0].next(timeout=10, comments=True)
        assert comment.comment and "keep-alive" in comment.data
        comment = await events.next(timeout=10, comments=True)
        assert comment.comment
        assert len(manager.events._listeners) == listeners_before + 3
        assert app.state.event_feed.clients == 1
    finally:
        for reader in [*feeds, events]:
            await reader.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if len(manager.events._listeners) == listeners_before and \
                app.state.event_feed.clients == 0:
            break
        await asyncio.sleep(0.1)
    assert len(manager.events._listeners) == listeners_before, "a closed feed kept listening"
    assert app.state.event_feed.clients == 0


async def test_stream_totals_stay_monotonic_under_churn(liveion: LiveionProcess) -> None:
    url = f"{liveion.url}/api/streams/churn"
    samples: list[dict[str, Any]] = []
    stop = asyncio.Event()

    async def sample() -> None:
        async with httpx.AsyncClient() as client:
            while not stop.is_set():
                response = await client.get(url)
                if response.status_code == 200:
                    samples.append(response.json())
                await asyncio.sleep(0.2)

    sampler = asyncio.ensure_future(sample())
    try:
        for _round in range(2):
            publisher = await publish(liveion.url, "churn")
            players = [await play(liveion.url, "churn") for _ in range(2)]
            for player in players:
                assert await player.wait_frames("video", 5) >= 5
            await asyncio.sleep(2.5)  # one stats tick with everyone present
            await players[0].close()
            await players[1].close(delete=False)  # just vanishes
            await publisher.close()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:  # until both leaves are seen
                state = httpx.get(url).json()
                if not state["subscribe"]["sessions"] and not state["publish"]["sessions"]:
                    break
                await asyncio.sleep(0.2)
    finally:
        stop.set()
        await sampler
    assert len(samples) > 10
    for key in ("publish", "subscribe"):
        for field_name in ("bytes", "packets"):
            values = [s["stats"][key][field_name] for s in samples]
            assert values == sorted(values), f"{key}.{field_name} went down: {values}"
            assert values[-1] > 0
    # Sessions that were present showed as connected with leaveAt 0.
    seen = [sess for s in samples for part in ("publish", "subscribe")
            for sess in s[part]["sessions"]]
    assert any(sess["state"] == "connected" for sess in seen)
    assert all(sess["leaveAt"] == 0 for sess in seen if sess["state"] == "connected")


async def test_open_feed_does_not_hold_up_shutdown(liveion: LiveionProcess) -> None:
    feed = await open_sse(f"{liveion.url}/api/sse/streams")
    events = await open_sse(f"{liveion.url}/api/sse/events")
    try:
        await feed.next()
        liveion.proc.terminate()
        # The feeds end (the server closes them), then the process exits on its own.
        await asyncio.wait_for(asyncio.gather(feed.task, events.task), 15)  # type: ignore[arg-type]
        deadline = time.monotonic() + 15
        while liveion.proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert liveion.proc.returncode is not None, "liveion kept running with a feed open"
    finally:
        await feed.close()
        await events.close()
