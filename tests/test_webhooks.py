"""`[webhook]`: events POSTed to a real HTTP receiver in the test, signed, retried with
backoff while the receiver is down, in order, and never holding up the node."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from clients import play, publish
from conftest import LiveionProcess, free_port

from liveion.config import WebhookConfig
from liveion.events import Event, EventBus, EventType
from liveion.webhooks import WebhookDispatcher, backoff, retryable, sign, verify

SECRET = "hook-s3cret"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class Receiver:
    """A webhook receiver: answers `fail_first` requests with 503, then 204 (or `status`)."""

    port: int
    fail_first: int = 0
    status: int = 204
    hold: threading.Event | None = None
    """When set up, requests wait for it before answering (a stalled receiver)."""
    attempts: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if receiver.hold is not None:
                    receiver.hold.wait(30)
                with receiver.lock:
                    receiver.attempts.append(Received(dict(self.headers.items()), body))
                    failing = len(receiver.attempts) <= receiver.fail_first
                self.send_response(503 if failing else receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def delivered(self) -> list[Received]:
        """Successful deliveries, in arrival order."""
        with self.lock:
            return [a for i, a in enumerate(self.attempts) if i >= self.fail_first]

    async def wait_delivered(self, count: int, timeout: float = 20) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.delivered()) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        return self.delivered()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver(free_port())
    yield made
    made.stop()


def webhook_toml(url: str, **extra: object) -> str:
    values: dict[str, object] = {"urls": [url], "secret": SECRET, "timeout_ms": 1000,
                                 "max_attempts": 6, **extra}
    lines = [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    return "[webhook]\n" + "\n".join(lines) + "\n"


def kinds(received: list[Received]) -> list[tuple[str, str, str]]:
    return [(r.json["type"], r.json["stream"], r.json["reason"]) for r in received]


# ---- pure pieces ----------------------------------------------------------------------------


def test_signature_is_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"type":"stream-created"}'
    expected = "sha256=" + __import__("hmac").new(
        SECRET.encode(), body, "sha256").hexdigest()
    assert sign(SECRET, body) == expected
    assert verify(SECRET, body, expected)
    assert not verify(SECRET, body + b" ", expected)


def test_backoff_doubles_from_half_a_second_and_what_is_retried() -> None:
    assert [backoff(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff(30) == 60.0
    assert all(retryable(s) for s in (408, 429, 500, 502, 503))
    assert not any(retryable(s) for s in (400, 401, 404, 410))


# ---- against a real node --------------------------------------------------------------------


async def test_events_arrive_signed_in_order_after_receiver_errors(
        start_liveion, receiver: Receiver) -> None:
    receiver.fail_first = 2  # the first event needs three attempts (0.5 s, then 1 s apart)
    receiver.start()
    server: LiveionProcess = start_liveion(webhook_toml(receiver.url))
    for name in ("w1", "w2"):
        assert httpx.post(f"{server.url}/api/streams/{name}").status_code == 204
    assert httpx.delete(f"{server.url}/api/streams/w1").status_code == 204

    got = await receiver.wait_delivered(3)
    assert kinds(got) == [("stream-created", "w1", "api"), ("stream-created", "w2", "api"),
                          ("stream-deleted", "w1", "api-deleted")]
    for item in receiver.attempts:
        assert item.headers["Content-Type"] == "application/json"
        assert verify(SECRET, item.body, item.headers["X-Live777-Signature"])
        assert item.headers["X-Live777-Event"] == item.json["type"]
        assert item.headers["X-Live777-Delivery"] == item.json["id"]
        assert item.json["node"]
    # The failed attempts were the same event, retried (same delivery id).
    assert len({a.json["id"] for a in receiver.attempts[:3]}) == 1
    assert len({r.json["id"] for r in got}) == 3
    # Stopping the node deletes its streams; those last events are still delivered.
    server.stop()
    assert kinds(receiver.delivered()[3:]) == [("stream-deleted", "w2", "shutdown")]


async def test_receiver_down_at_first_gets_everything_when_it_comes_up(
        start_liveion, receiver: Receiver) -> None:
    server: LiveionProcess = start_liveion(webhook_toml(receiver.url))
    publisher = await publish(server.url, "live")
    player = await play(server.url, "live")
    assert await player.wait_frames("video", 5) >= 5
    await player.close()
    await asyncio.sleep(1.0)  # connection refused for a while: attempts are backing off
    receiver.start()
    got = await receiver.wait_delivered(4)
    assert [r.json["type"] for r in got] == [
        "stream-created", "publish-started", "subscribe-started", "subscribe-stopped"]
    assert got[1].json["session"] == publisher.location.rsplit("/", 1)[1]
    assert got[3].json["reason"] == "api-deleted"
    await publisher.close()
    got = await receiver.wait_delivered(5)
    assert got[4].json["type"] == "publish-stopped"
    server.stop()


async def test_a_stalled_receiver_does_not_hold_up_the_node(
        start_liveion, receiver: Receiver) -> None:
    receiver.hold = threading.Event()  # the receiver accepts, then does not answer
    receiver.start()
    server: LiveionProcess = start_liveion(webhook_toml(receiver.url, timeout_ms=60000))
    try:
        # Were delivery in the request's path, the first POST would wait for the receiver.
        async with httpx.AsyncClient(timeout=5) as client:
            for n in range(5):
                response = await client.post(f"{server.url}/api/streams/s{n}")
                assert response.status_code == 204
            listed = await client.get(f"{server.url}/api/streams/")
            assert {s["id"] for s in listed.json()} == {f"s{n}" for n in range(5)}
        publisher = await publish(server.url, "media")
        player = await play(server.url, "media")
        assert await player.wait_frames("video", 10) >= 10
        await player.close()
        await publisher.close()
    finally:
        receiver.hold.set()
    got = await receiver.wait_delivered(9)
    assert [r.json["stream"] for r in got[:5]] == [f"s{n}" for n in range(5)]
    assert [r.json["type"] for r in got[5:9]] == [
        "stream-created", "publish-started", "subscribe-started", "subscribe-stopped"]
    server.stop()


async def test_refused_event_is_not_retried_and_the_next_one_is_sent(
        start_liveion, receiver: Receiver) -> None:
    receiver.status = 400
    receiver.start()
    server: LiveionProcess = start_liveion(webhook_toml(receiver.url))
    httpx.post(f"{server.url}/api/streams/x")
    await receiver.wait_delivered(1)
    httpx.post(f"{server.url}/api/streams/y")
    got = await receiver.wait_delivered(2)
    await asyncio.sleep(1.5)  # longer than the first backoff: a retry would have come
    assert [r.json["stream"] for r in receiver.attempts] == ["x", "y"]
    assert len(got) == 2
    assert "refused" in server.log()
    server.stop()


async def test_queue_is_bounded_when_the_receiver_stalls(receiver: Receiver) -> None:
    receiver.hold = threading.Event()
    receiver.start()
    bus = EventBus()
    dispatcher = WebhookDispatcher(WebhookConfig(urls=[receiver.url], timeout_ms=20000),
                                   bus, node="test", queue_size=3)
    dispatcher.start()
    try:
        bus.emit(Event(EventType.STREAM_CREATED, "s0", "api"))
        deadline = time.monotonic() + 10
        while not dispatcher._targets[0].busy and time.monotonic() < deadline:
            await asyncio.sleep(0.02)  # the first event is on its way (the receiver holds it)
        for n in range(1, 10):
            bus.emit(Event(EventType.STREAM_CREATED, f"s{n}", "api"))
        assert dispatcher._targets[0].dropped == 6
        receiver.hold.set()
        got = await receiver.wait_delivered(4)
        assert [r.json["stream"] for r in got] == ["s0", "s7", "s8", "s9"]
    finally:
        receiver.hold.set()
        await dispatcher.stop()
