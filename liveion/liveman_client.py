"""`[liveman]`: this node registers itself with liveman and keeps it informed.

One task POSTs a heartbeat (`cluster.build_heartbeat`) to `{url}/api/nodes/heartbeat`:
once at startup, then every `heartbeat_ms`, plus one shortly after stream and session
events (coalesced: at most one extra beat per `EXTRA_BEAT_GAP`), so liveman places viewers
on fresh numbers. liveman marks a node dead when its beats stop for `dead_after_ms`, so a
failed beat is only logged (once per outage) and the beats go on. At shutdown
`DELETE {url}/api/nodes/{alias}` makes liveman forget the node at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from urllib.parse import quote, urlsplit

import httpx

from . import __version__
from .cluster import (
    CpuSampler,
    advertises_wildcard,
    build_heartbeat,
    node_alias,
    node_token,
    public_url,
)
from .config import Settings
from .events import Event, EventType
from .sfu.manager import StreamManager

logger = logging.getLogger(__name__)

EXTRA_BEAT_GAP = 0.2
"""Seconds between a beat and an extra one an event asks for."""
MAX_TIMEOUT = 2.0
"""A heartbeat request is given min(heartbeat interval, this) seconds."""
DEREGISTER_TIMEOUT = 1.0
LIFECYCLE = frozenset({
    EventType.STREAM_CREATED, EventType.STREAM_DELETED,
    EventType.PUBLISH_STARTED, EventType.PUBLISH_STOPPED,
    EventType.SUBSCRIBE_STARTED, EventType.SUBSCRIBE_STOPPED,
})
"""Events that change what a heartbeat says (recording events do not)."""


def _is_loopback(host: str | None) -> bool:
    if host is None or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _detail(response: httpx.Response) -> str:
    """The problem+json `detail` of an error answer, else the start of its body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail[:200]
    return response.text[:200].strip() or response.reason_phrase


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class LivemanClient:
    """Heartbeats to `[liveman] url` while the node runs; `start()` and `stop()` are
    called from the app's lifespan."""

    def __init__(self, settings: Settings, manager: StreamManager, *,
                 hostname: str | None = None, clock: Callable[[], float] = time.time,
                 cpu: CpuSampler | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        config = settings.liveman
        self.settings = settings
        self.manager = manager
        self.base = config.url
        self.token = config.token
        self.alias = node_alias(settings, hostname or socket.gethostname())
        self.public_url = public_url(settings)
        self.interval = config.heartbeat_ms / 1000
        self._clock = clock
        self._cpu = cpu
        self._transport = transport
        """Tests hand in an httpx.MockTransport; None is the network."""
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._stop_listening: Callable[[], None] | None = None
        self.registered = False
        """A heartbeat has been accepted since startup."""
        self._problem: str | None = None
        """The kind of failure last logged (status or exception type); None while beats
        succeed. Logging only when it changes keeps an outage to one warning."""

    @property
    def enabled(self) -> bool:
        return bool(self.base)

    def start(self) -> None:
        if not self.enabled:
            return
        if advertises_wildcard(self.settings) and not _is_loopback(urlsplit(self.base).hostname):
            logger.warning("[liveman] public_url is not set: this node advertises %s, which "
                           "liveman at %s cannot reach from another host; set public_url",
                           self.public_url, self.base)
        headers = {"User-Agent": f"liveion/{__version__}"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self._client = httpx.AsyncClient(timeout=min(self.interval, MAX_TIMEOUT),
                                         headers=headers, follow_redirects=False,
                                         transport=self._transport)
        if self._cpu is None:
            self._cpu = CpuSampler()
        self._stop_listening = self.manager.events.listen(self._on_event)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="liveman")

    async def stop(self) -> None:
        """Stop beating and tell liveman this node is gone (best effort, short timeout:
        liveman also notices when the beats stop)."""
        if self._stop_listening is not None:
            self._stop_listening()
            self._stop_listening = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is None:
            return
        url = f"{self.base}/api/nodes/{quote(self.alias, safe=':')}"
        try:
            response = await self._client.delete(url, timeout=DEREGISTER_TIMEOUT)
            if response.is_success:
                logger.info("deregistered from liveman at %s", self.base)
            else:
                logger.info("liveman at %s did not deregister %s (HTTP %d: %s)", self.base,
                            self.alias, response.status_code, _detail(response))
        except (httpx.HTTPError, OSError) as exc:
            logger.info("could not deregister from liveman at %s (%s); it will mark this "
                        "node dead when the heartbeats stop", self.base, _describe(exc))
        finally:
            await self._client.aclose()
            self._client = None

    def _on_event(self, event: Event) -> None:
        if event.type in LIFECYCLE:
            self._wake.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()  # this beat covers every event so far
            started = loop.time()
            await self.beat()
            try:
                async with asyncio.timeout_at(started + self.interval):
                    await self._wake.wait()
                    # An event: beat again soon, but at most once per EXTRA_BEAT_GAP.
                    await asyncio.sleep(max(started + EXTRA_BEAT_GAP - loop.time(), 0.0))
            except TimeoutError:
                pass

    async def beat(self) -> bool:
        """Send one heartbeat; True when liveman accepted it. Never raises."""
        assert self._client is not None and self._cpu is not None
        try:
            body = build_heartbeat(
                alias=self.alias, url=self.public_url,
                token=node_token(self.settings.auth, int(self._clock())),
                strategy=self.settings.strategy, streams=list(self.manager.streams.values()),
                cpu=self._cpu.sample())
            response = await self._client.post(f"{self.base}/api/nodes/heartbeat", json=body)
        except (httpx.HTTPError, OSError) as exc:
            self._failed(type(exc).__name__, "cannot reach liveman at %s (%s)",
                         self.base, _describe(exc))
            return False
        except Exception:  # the beats must outlive any one bug
            logger.exception("heartbeat to liveman failed")
            return False
        status = response.status_code
        if response.is_success:
            self._succeeded()
            return True
        if status in (401, 403):
            hint = ("[liveman] token is not set" if not self.token else
                    "check [liveman] token: it must be one of liveman's [auth] tokens")
            self._failed(f"HTTP {status}", "liveman at %s refused this node's heartbeat "
                         "(HTTP %d: %s): %s", self.base, status, _detail(response), hint)
        else:
            self._failed(f"HTTP {status}", "liveman at %s answered the heartbeat with "
                         "HTTP %d: %s", self.base, status, _detail(response))
        return False

    def _succeeded(self) -> None:
        if not self.registered:
            logger.info("registered with liveman at %s as %s (%s)", self.base, self.alias,
                        self.public_url)
        elif self._problem is not None:
            logger.info("liveman at %s accepts heartbeats again", self.base)
        self.registered = True
        self._problem = None

    def _failed(self, kind: str, message: str, *args: object) -> None:
        if kind != self._problem:
            logger.warning(message + "; still trying every %d ms", *args,
                           self.settings.liveman.heartbeat_ms)
        self._problem = kind
