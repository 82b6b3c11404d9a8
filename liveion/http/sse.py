"""Server-sent events: `/api/sse/streams` (Live777's snapshots) and `/api/sse/events` (typed
lifecycle events, our extension for presence).

Both feeds hold a bounded amount of memory per client whatever the client's speed: snapshots
are recomputed when due (never queued), and typed events live in one shared ring that every
client reads with its own cursor. A client that falls further behind than the ring is told how
many events it missed. Disconnects are noticed at once (a task listens for `http.disconnect`)
and end the feed, which removes its listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ..auth import Mode
from ..events import Event, EventBus
from ..sfu.manager import StreamManager
from .deps import manager_of, require
from .streams import stream_json

router = APIRouter(prefix="/api/sse", tags=["events"],
                   dependencies=[Depends(require(Mode.ADMIN))])

STATS_TICK = 2.0
"""Seconds between snapshot recomputations while nothing happens (Live777's stats tick)."""
KEEPALIVE = 15.0
"""Seconds of silence after which a comment line is sent, so proxies keep the connection and
a vanished client is noticed on the write."""
RING_SIZE = 1024
"""Typed events kept for slow clients and for resuming with `Last-Event-ID`."""
RETRY_MS = 2000
"""Reconnect delay suggested to EventSource clients."""

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


# ---- pure pieces --------------------------------------------------------------------------


def sse_message(data: str, *, event: str | None = None, id: str | None = None) -> str:
    """One SSE message; `data` must not contain newlines (compact JSON never does)."""
    head = ""
    if event is not None:
        head += f"event: {event}\n"
    if id is not None:
        head += f"id: {id}\n"
    return f"{head}data: {data}\n\n"


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Numbered:
    seq: int
    event: Event


class EventRing:
    """The last `size` events, numbered from 1 in the order they happened (no I/O).

    A reader keeps the number of the last event it has; `since` gives what followed it and
    how many of those already fell out of the ring.
    """

    def __init__(self, size: int = RING_SIZE) -> None:
        self._events: deque[Numbered] = deque(maxlen=size)
        self.last_seq = 0

    def append(self, event: Event) -> int:
        self.last_seq += 1
        self._events.append(Numbered(self.last_seq, event))
        return self.last_seq

    def since(self, seq: int) -> tuple[list[Numbered], int]:
        """(events numbered above `seq`, how many of them are no longer held)."""
        if seq >= self.last_seq:
            return [], 0
        held = self._events
        oldest = held[0].seq if held else self.last_seq + 1
        missed = max(0, oldest - seq - 1)
        start = max(seq + 1, oldest) - oldest
        return [held[i] for i in range(start, len(held))], missed


class EventFeed:
    """The node's typed events, numbered and kept in a ring, with wake-ups for SSE clients.

    Event ids are `<boot>-<seq>`: `boot` differs on every start, so a client resuming with an
    id from before a restart is recognised and given every event of this run that is held.
    """

    def __init__(self, bus: EventBus, size: int = RING_SIZE) -> None:
        self.ring = EventRing(size)
        self.boot = secrets.token_hex(4)
        self._waiters: set[asyncio.Event] = set()
        self.stop = bus.listen(self._on_event)

    def _on_event(self, event: Event) -> None:
        self.ring.append(event)
        for waiter in self._waiters:
            waiter.set()

    def event_id(self, seq: int) -> str:
        return f"{self.boot}-{seq}"

    def resume_point(self, last_event_id: str | None) -> int:
        """Where a client starts: after its Last-Event-ID, or at the next event."""
        if last_event_id:
            boot, _, seq = last_event_id.strip().partition("-")
            if boot != self.boot:
                return 0
            # ASCII digits only: '²'.isdigit() is true and int('²') raises.
            if seq.isascii() and seq.isdigit() and len(seq) <= 18:
                return min(int(seq), self.ring.last_seq)
        return self.ring.last_seq

    def waiter(self) -> asyncio.Event:
        waiter = asyncio.Event()
        self._waiters.add(waiter)
        return waiter

    def release(self, waiter: asyncio.Event) -> None:
        self._waiters.discard(waiter)

    @property
    def clients(self) -> int:
        return len(self._waiters)


# ---- glue ---------------------------------------------------------------------------------


class EventStreamResponse(StreamingResponse):
    """A streaming response that always watches for the client going away.

    Starlette stops listening for `http.disconnect` under ASGI spec 2.4 and relies on a failed
    write instead; an idle feed writes only every `KEEPALIVE` seconds, so listen regardless and
    cancel the feed (running its cleanup) the moment the client disconnects.
    """

    media_type = "text/event-stream"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:

            async def stream() -> None:
                with contextlib.suppress(OSError):  # the client went away mid-write
                    await self.stream_response(send)
                group.cancel_scope.cancel()

            group.start_soon(stream)
            await self.listen_for_disconnect(receive)
            group.cancel_scope.cancel()


async def _wait(waiter: asyncio.Event, closing: asyncio.Event, timeout: float) -> None:
    """Until `waiter` or `closing` is set, or `timeout` seconds pass."""
    if waiter.is_set() or closing.is_set():
        return
    waits = [asyncio.ensure_future(waiter.wait()), asyncio.ensure_future(closing.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()


def _closing_of(request: Request) -> asyncio.Event:
    """Set when the node shuts down, so open feeds end and do not hold the server up."""
    health = getattr(request.app.state, "health", None)
    closing: asyncio.Event | None = getattr(health, "closing", None)
    return closing if closing is not None else asyncio.Event()


async def stream_snapshots(manager: StreamManager, names: set[str], closing: asyncio.Event,
                           clock: Callable[[], float] | None = None) -> AsyncIterator[str]:
    """Live777's feed: the full `Stream[]` JSON, sent on connect, after each lifecycle event
    and on each stats tick, but only when it differs from what this client last got."""
    now = clock or asyncio.get_running_loop().time
    changed = asyncio.Event()

    def on_event(event: Event) -> None:
        if not names or event.stream in names:
            changed.set()

    stop = manager.events.listen(on_event)
    try:
        last_payload: str | None = None
        last_sent = now()
        next_tick = now() + STATS_TICK
        while not closing.is_set():
            changed.clear()
            payload = compact_json([stream_json(s) for s in list(manager.streams.values())
                                    if not names or s.name in names])
            if payload != last_payload:
                last_payload, last_sent = payload, now()
                yield sse_message(payload)
            elif now() - last_sent >= KEEPALIVE:
                last_sent = now()
                yield ": keep-alive\n\n"
            if now() >= next_tick:
                next_tick = now() + STATS_TICK
            timeout = min(next_tick, last_sent + KEEPALIVE) - now()
            await _wait(changed, closing, max(timeout, 0.01))
    finally:
        stop()


async def stream_events(feed: EventFeed, names: set[str], start: int,
                        closing: asyncio.Event,
                        clock: Callable[[], float] | None = None) -> AsyncIterator[str]:
    """Typed events after number `start`: `event: <type>`, `id: <boot>-<seq>`, JSON data."""
    now = clock or asyncio.get_running_loop().time
    waiter = feed.waiter()
    try:
        yield f"retry: {RETRY_MS}\n\n"
        cursor = start
        last_sent = now()
        while not closing.is_set():
            waiter.clear()
            events, missed = feed.ring.since(cursor)
            if missed:
                # Fell behind the ring: say so, so the client can re-sync from /api/streams/.
                yield sse_message(compact_json({"missed": missed}), event="lagged")
                last_sent = now()
            for item in events:
                cursor = item.seq
                if names and item.event.stream not in names:
                    continue
                last_sent = now()
                yield sse_message(compact_json(item.event.to_json()),
                                  event=item.event.type.value, id=feed.event_id(item.seq))
            if not events and not missed and now() - last_sent >= KEEPALIVE:
                last_sent = now()
                yield ": keep-alive\n\n"
            await _wait(waiter, closing, max(last_sent + KEEPALIVE - now(), 0.01))
    finally:
        feed.release(waiter)


StreamsFilter = Annotated[list[str] | None, Query()]


@router.get("/streams", response_class=EventStreamResponse)
async def sse_streams(request: Request, streams: StreamsFilter = None) -> EventStreamResponse:
    """Snapshots of `GET /api/streams/` (optionally `?streams=a&streams=b`) as they change."""
    feed = stream_snapshots(manager_of(request), set(streams or ()), _closing_of(request))
    return EventStreamResponse(feed, headers=SSE_HEADERS)


@router.get("/events", response_class=EventStreamResponse)
async def sse_events(request: Request, streams: StreamsFilter = None) -> EventStreamResponse:
    """Lifecycle events (stream created/deleted, publish/subscribe started/stopped) as they
    happen; `Last-Event-ID` resumes after a reconnect."""
    feed: EventFeed = request.app.state.event_feed
    start = feed.resume_point(request.headers.get("last-event-id"))
    events = stream_events(feed, set(streams or ()), start, _closing_of(request))
    return EventStreamResponse(events, headers=SSE_HEADERS)
