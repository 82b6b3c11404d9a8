"""The in-process event bus: one place that says what happened to streams and sessions.

The manager emits; SSE, webhooks, hook scripts, metrics and the recorder listen. Emitting is
synchronous and cheap: a listener that needs to do I/O queues the event and returns, so the
media path is never blocked by a slow consumer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

logger = logging.getLogger(__name__)


class EventType(StrEnum):
    STREAM_CREATED = "stream-created"
    STREAM_DELETED = "stream-deleted"
    PUBLISH_STARTED = "publish-started"
    PUBLISH_STOPPED = "publish-stopped"
    SUBSCRIBE_STARTED = "subscribe-started"
    SUBSCRIBE_STOPPED = "subscribe-stopped"
    RECORD_STARTED = "record-started"
    RECORD_STOPPED = "record-stopped"


class Reason(StrEnum):
    """Why something started or stopped (Live777's hook reasons plus ours)."""

    API = "api"
    """Created or started by an API request or a WHIP/WHEP POST."""
    AUTO_CREATED = "auto-created"
    CONFIG = "config"
    CASCADE = "cascade"
    API_DELETED = "api-deleted"
    PEER_CLOSED = "peer-closed"
    SETUP_TIMEOUT = "setup-timeout"
    KICKED = "kicked"
    STREAM_DELETED = "stream-deleted"
    PUBLISH_LEAVE_TIMEOUT = "publish-leave-timeout"
    SUBSCRIBE_LEAVE_TIMEOUT = "subscribe-leave-timeout"
    IDLE_TIMEOUT = "idle-timeout"
    ORPHANED = "orphaned"
    SHUTDOWN = "shutdown"
    ROTATED = "rotated"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    stream: str
    reason: str = ""
    session: str | None = None
    at_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type.value, "stream": self.stream,
                               "reason": self.reason, "session": self.session,
                               "at": self.at_ms}
        if self.detail:
            out["detail"] = self.detail
        return out


Listener = Callable[[Event], None]


class EventBus:
    """Synchronous fan-out of events to listeners; `stream()` gives an async view."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` for every event from now on; returns the function that stops it."""
        self._listeners.append(listener)

        def stop() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return stop

    def emit(self, event: Event) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # one broken listener must not hide the event from the rest
                logger.exception("event listener failed on %s", event.type)

    async def stream(self, max_queued: int = 1024) -> AsyncIterator[Event]:
        """Events as an async iterator. A consumer that falls `max_queued` events behind
        loses the oldest ones rather than holding memory without bound."""
        queue: asyncio.Queue[Event] = asyncio.Queue(max_queued)

        def put(event: Event) -> None:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

        stop = self.listen(put)
        try:
            while True:
                yield await queue.get()
        finally:
            stop()
