"""Typed lifecycle events: the bus, the ring that bounds what slow clients cost, and
`GET /api/sse/events` against real liveion processes with real aiortc peers."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from clients import play, publish
from conftest import LiveionProcess
from helpers.inprocess import serve_inprocess
from test_sse import Message, SseReader, open_sse

from liveion.events import Event, EventBus, EventType
from liveion.http.sse import EventFeed, EventRing


def ev(n: int, stream: str = "s") -> Event:
    return Event(EventType.STREAM_CREATED, stream, "api", at_ms=n)


# ---- pure pieces ----------------------------------------------------------------------------


def test_ring_gives_what_followed_and_counts_what_fell_out() -> None:
    ring = EventRing(size=3)
    assert ring.since(0) == ([], 0)
    for n in range(1, 6):
        assert ring.append(ev(n)) == n
    events, missed = ring.since(0)
    assert [e.seq for e in events] == [3, 4, 5] and missed == 2
    events, missed = ring.since(3)
    assert [e.seq for e in events] == [4, 5] and missed == 0
    assert ring.since(5) == ([], 0)


def test_feed_resumes_after_last_event_id_of_this_run_only() -> None:
    bus = EventBus()
    feed = EventFeed(bus, size=10)
    for n in range(4):
        bus.emit(ev(n))
    assert feed.resume_point(None) == 4  # a new client starts with the next event
    assert feed.resume_point(feed.event_id(2)) == 2
    assert feed.resume_point("0badbeef-3") == 0  # an id from before a restart: replay all
    assert feed.resume_point(f"{feed.boot}-999") == 4
    feed.stop()
    bus.emit(ev(9))
    assert feed.ring.last_seq == 4


async def test_slow_bus_stream_drops_oldest() -> None:
    bus = EventBus()
    stream = bus.stream(max_queued=3)
    first = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0)  # the consumer is listening and waiting
    for n in range(10):
        bus.emit(ev(n))
    got = [(await asyncio.wait_for(first, 5)).at_ms]
    got += [(await asyncio.wait_for(stream.__anext__(), 5)).at_ms for _ in range(2)]
    assert got == [7, 8, 9], "a consumer that fell behind keeps only the newest events"
    await stream.aclose()
    assert not bus._listeners, "a closed consumer stops listening"


# ---- over HTTP with real peers --------------------------------------------------------------


def payload(message: Message) -> dict[str, Any]:
    data = message.json()
    assert message.event == data["type"], "the SSE event name is the event type"
    assert message.id, "every typed event carries an id"
    return data


async def take(feed: SseReader, count: int) -> list[dict[str, Any]]:
    return [payload(await feed.next()) for _ in range(count)]


def summary(events: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(e["type"], e["stream"], e["reason"]) for e in events]


async def test_publish_play_leave_delete_sequence(liveion: LiveionProcess) -> None:
    feed = await open_sse(f"{liveion.url}/api/sse/events")
    try:
        publisher = await publish(liveion.url, "seq")
        pub_id = publisher.location.rsplit("/", 1)[1]
        got = await take(feed, 2)
        assert summary(got) == [("stream-created", "seq", "auto-created"),
                                ("publish-started", "seq", "api")]
        assert got[1]["session"] == pub_id and got[1]["at"] > 0

        player = await play(liveion.url, "seq")
        assert await player.wait_frames("video", 5) >= 5
        sub_id = player.location.rsplit("/", 1)[1]
        [started] = await take(feed, 1)
        assert (started["type"], started["session"]) == ("subscribe-started", sub_id)

        # The viewer's peer just goes away (no DELETE): the node notices the DTLS close.
        await player.close(delete=False)
        [stopped] = await take(feed, 1)
        assert summary([stopped]) == [("subscribe-stopped", "seq", "peer-closed")]
        assert stopped["session"] == sub_id

        await publisher.close()  # DELETE on the session resource
        [unpublished] = await take(feed, 1)
        assert summary([unpublished]) == [("publish-stopped", "seq", "api-deleted")]
        assert unpublished["session"] == pub_id

        assert httpx.delete(f"{liveion.url}/api/streams/seq").status_code == 204
        assert summary(await take(feed, 1)) == [("stream-deleted", "seq", "api-deleted")]
    finally:
        await feed.close()


async def test_auto_delete_and_orphan_reasons(start_liveion) -> None:
    server = start_liveion("[strategy]\nauto_delete_whip = 0\n")
    feed = await open_sse(f"{server.url}/api/sse/events")
    try:
        publisher = await publish(server.url, "gone")
        assert [e["type"] for e in await take(feed, 2)] == ["stream-created", "publish-started"]
        await publisher.close()
        assert summary(await take(feed, 2)) == [
            ("publish-stopped", "gone", "api-deleted"),
            ("stream-deleted", "gone", "publish-leave-timeout")]

        # A stream created by a viewer alone is reaped once nobody is left.
        player = await play(server.url, "lonely")
        await take(feed, 2)  # stream-created, subscribe-started
        await player.close()
        assert summary(await take(feed, 2)) == [
            ("subscribe-stopped", "lonely", "api-deleted"),
            ("stream-deleted", "lonely", "orphaned")]
    finally:
        await feed.close()


async def test_filter_and_resume_with_last_event_id(liveion: LiveionProcess) -> None:
    only_b = await open_sse(f"{liveion.url}/api/sse/events?streams=b")
    everything = await open_sse(f"{liveion.url}/api/sse/events")
    try:
        for name in ("a", "b", "c"):
            assert httpx.post(f"{liveion.url}/api/streams/{name}").status_code == 204
        [b_created] = await take(only_b, 1)
        assert (b_created["type"], b_created["stream"]) == ("stream-created", "b")
        first = await everything.next()
        assert first.json()["stream"] == "a"
        await take(everything, 2)

        # Reconnect after "a": the events that followed are replayed, nothing else.
        resumed = await open_sse(f"{liveion.url}/api/sse/events",
                                 headers={"Last-Event-ID": first.id or ""})
        try:
            assert [e["stream"] for e in await take(resumed, 2)] == ["b", "c"]
            httpx.delete(f"{liveion.url}/api/streams/b")
            assert summary(await take(resumed, 1)) == [("stream-deleted", "b", "api-deleted")]
            assert summary(await take(only_b, 1)) == [("stream-deleted", "b", "api-deleted")]
        finally:
            await resumed.close()
    finally:
        await only_b.close()
        await everything.close()


async def test_a_client_that_does_not_read_loses_old_events_not_memory() -> None:
    async with serve_inprocess() as (url, app):
        await _flood_a_client_that_does_not_read(url, app)


async def _flood_a_client_that_does_not_read(url: str, app: Any) -> None:
    manager = app.state.manager
    feed = await open_sse(f"{url}/api/sse/events")
    feed.task.cancel()  # stop reading: the socket fills up and the server must not queue
    padding = "x" * 1000
    total = 20000
    for n in range(total):
        manager.events.emit(Event(EventType.STREAM_CREATED, f"s{n}", "api",
                                  detail={"padding": padding}))
        if n % 100 == 0:
            await asyncio.sleep(0.001)  # let the server write what the socket takes
    assert len(app.state.event_feed.ring._events) <= 1024
    reader = SseReader(feed.response, feed.client)
    reader.task = asyncio.ensure_future(reader._read())
    try:
        got: list[Message] = []
        while not got or got[-1].json().get("stream") != f"s{total - 1}":
            got.append(await reader.next(timeout=20))
        lagged = [m for m in got if m.event == "lagged"]
        delivered = [int(m.json()["stream"][1:]) for m in got if m.event != "lagged"]
        assert lagged and sum(m.json()["missed"] for m in lagged) == total - len(delivered)
        assert delivered == sorted(delivered) and len(delivered) < total
    finally:
        await reader.close()
