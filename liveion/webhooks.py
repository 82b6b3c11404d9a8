"""`[webhook]`: every event POSTed as JSON to each configured URL.

Per URL one background task delivers events in the order they happened, retrying a failed
attempt with exponential backoff (0.5 s, 1 s, 2 s, ...) up to `max_attempts`. Each URL has a
bounded queue: while a receiver is down for long, the oldest undelivered events are dropped
(with a warning) rather than memory growing. Emitting an event only appends to those queues,
so neither the media path nor an HTTP handler ever waits for a receiver.

Request: `POST <url>`, `Content-Type: application/json`, body = the event JSON plus `node`
(which node sent it) and `id` (unique per event, the same for every URL and every retry, so
a receiver can drop duplicates). Headers: `X-Live777-Event: <type>`,
`X-Live777-Delivery: <id>` and, when `secret` is set,
`X-Live777-Signature: sha256=<hex HMAC-SHA256 of the raw body>`.
A 2xx answer is success. 408, 425, 429, 5xx and network errors are retried; other 4xx
answers mean the receiver refuses the event, which is then dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
from collections import deque
from dataclasses import dataclass

import httpx

from . import __version__
from .config import WebhookConfig
from .events import Event, EventBus

logger = logging.getLogger(__name__)

QUEUE_SIZE = 1000
"""Undelivered events kept per URL."""
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 60.0
SHUTDOWN_GRACE = 3.0
"""Seconds given at shutdown to deliver what is queued (the last stream-deleted events)."""
RETRYABLE = frozenset({408, 425, 429})

SIGNATURE_HEADER = "X-Live777-Signature"
EVENT_HEADER = "X-Live777-Event"
DELIVERY_HEADER = "X-Live777-Delivery"


# ---- pure pieces --------------------------------------------------------------------------


def sign(secret: str, body: bytes) -> str:
    """The signature header value: `sha256=<hex HMAC-SHA256 of body keyed by secret>`."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does: compare in constant time."""
    return hmac.compare_digest(sign(secret, body), header.strip())


def backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): 0.5, 1, 2, 4..."""
    return float(min(FIRST_BACKOFF * (2 ** (attempt - 1)), MAX_BACKOFF))


def retryable(status: int) -> bool:
    return status >= 500 or status in RETRYABLE


def encode(event: Event, node: str, delivery_id: str) -> bytes:
    body = {**event.to_json(), "node": node, "id": delivery_id}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    event_type: str
    body: bytes


# ---- glue ---------------------------------------------------------------------------------


class _Target:
    """One receiver URL: its queue and its delivery task."""

    def __init__(self, url: str, size: int) -> None:
        self.url = url
        self.queue: deque[Delivery] = deque(maxlen=size)
        self.wake = asyncio.Event()
        self.dropped = 0
        self.busy = False
        """An event is being delivered (it has left the queue)."""
        self.task: asyncio.Task[None] | None = None

    def put(self, delivery: Delivery) -> None:
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                logger.warning("webhook %s is not keeping up: dropped %d oldest event(s)",
                               self.url, self.dropped)
        self.queue.append(delivery)
        self.wake.set()


class WebhookDispatcher:
    """Listens on the event bus and delivers each event to every `[webhook] urls` entry."""

    def __init__(self, config: WebhookConfig, bus: EventBus, node: str,
                 queue_size: int = QUEUE_SIZE) -> None:
        self.config = config
        self.node = node
        self._boot = secrets.token_hex(4)
        self._seq = 0
        self._targets = [_Target(url, queue_size) for url in config.urls]
        self._client: httpx.AsyncClient | None = None
        self._stop_listening = bus.listen(self._on_event) if self._targets else None

    @property
    def enabled(self) -> bool:
        return bool(self._targets)

    def _on_event(self, event: Event) -> None:
        self._seq += 1
        delivery_id = f"{self._boot}-{self._seq}"
        delivery = Delivery(delivery_id, event.type.value, encode(event, self.node, delivery_id))
        for target in self._targets:
            target.put(delivery)

    def start(self) -> None:
        if not self._targets:
            return
        self._client = httpx.AsyncClient(
            timeout=self.config.timeout_ms / 1000,
            headers={"User-Agent": f"liveion/{__version__}"},
            follow_redirects=False,
        )
        for target in self._targets:
            target.task = asyncio.get_running_loop().create_task(
                self._run(target), name=f"webhook:{target.url}")

    async def stop(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop taking events, give queued ones `grace` seconds, then cancel."""
        if self._stop_listening is not None:
            self._stop_listening()
            self._stop_listening = None
        tasks = [t.task for t in self._targets if t.task is not None]
        if tasks:
            deadline = asyncio.get_running_loop().time() + grace
            while any(t.queue or t.busy for t in self._targets) and \
                    asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            left = sum(len(t.queue) for t in self._targets)
            if left:
                logger.warning("shutdown: %d webhook event(s) not delivered", left)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(self, target: _Target) -> None:
        while True:
            if not target.queue:
                target.wake.clear()
                await target.wake.wait()
                continue
            delivery = target.queue.popleft()
            target.busy = True
            try:
                await self._deliver(target.url, delivery)
            except Exception:  # the worker must outlive any one delivery
                logger.exception("webhook %s: delivery of %s failed", target.url, delivery.id)
            finally:
                target.busy = False

    async def _deliver(self, url: str, delivery: Delivery) -> bool:
        assert self._client is not None
        headers = {"Content-Type": "application/json", EVENT_HEADER: delivery.event_type,
                   DELIVERY_HEADER: delivery.id}
        if self.config.secret:
            headers[SIGNATURE_HEADER] = sign(self.config.secret, delivery.body)
        timeout = self.config.timeout_ms / 1000
        attempts = self.config.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                async with asyncio.timeout(timeout):
                    response = await self._client.post(url, content=delivery.body,
                                                        headers=headers)
                if 200 <= response.status_code < 300:
                    return True
                problem = f"HTTP {response.status_code}"
                if not retryable(response.status_code):
                    logger.warning("webhook %s refused %s event %s (%s): not retried", url,
                                   delivery.event_type, delivery.id, problem)
                    return False
            except (httpx.HTTPError, TimeoutError, OSError) as exc:
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if attempt < attempts:
                logger.info("webhook %s attempt %d/%d for %s failed (%s)", url, attempt,
                            attempts, delivery.event_type, problem)
                await asyncio.sleep(backoff(attempt))
            else:
                logger.warning("webhook %s: giving up on %s event %s after %d attempts (%s)",
                               url, delivery.event_type, delivery.id, attempts, problem)
        return False
