"""Cascading between nodes: pull a stream from another node over WHEP, push one over WHIP.

- A **pull** (`sourceUrl`, `[[stream.X.sources]]`) makes this node a WHEP client of the
  remote stream. The session is the local stream's publisher, so local subscribers get its
  media and their PLIs/NACKs go upstream, exactly as with a WHIP publisher.
- A **push** (`targetUrl`, `[[stream.X.targets]]`) makes this node a WHIP client of the
  remote node. The session is a subscriber leg of the local stream (a "reforward").

This node is the offerer in both (`Peer.offer` / `Peer.apply_answer`); media is only
forwarded, never decoded. Each cascade also opens a data channel, so the stream's
data-channel broadcast crosses nodes too.

When the cascade session ends, the remote session is DELETEd. Unless the end was asked for
(the local session or stream deleted through the API, or shutdown), the cascade reconnects
after 5 s, doubling up to 60 s while attempts fail (Live777's backoff); a session that came
up resets the delay. Configured cascades always reconnect, except at shutdown. A configured
target waits until the stream has a publisher before it pushes.

The URL parsing and the backoff are pure; `Cascades` and `Link` are the asyncio glue.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from .config import Settings
from .events import Event, EventType, Reason
from .sfu.manager import Conflict, ManagerError, NotFound, StreamManager
from .sfu.peer import Peer, PeerError
from .sfu.stream import CascadeInfo, Session

logger = logging.getLogger(__name__)

BACKOFF_INITIAL_S = 5.0
BACKOFF_MAX_S = 60.0
CONNECT_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 30.0
DELETE_TIMEOUT_S = 5.0
DATA_CHANNEL_LABEL = "cascade"


class Direction(Enum):
    PULL = "pull"
    PUSH = "push"


# Config URLs use whep(s):// and whip(s)://; the API takes the plain http(s) endpoint URL
# (Live777's shape) and the config form alike.
_SCHEMES: dict[Direction, dict[str, str]] = {
    Direction.PULL: {"whep": "http", "wheps": "https", "http": "http", "https": "https"},
    Direction.PUSH: {"whip": "http", "whips": "https", "http": "http", "https": "https"},
}


class CascadeUrlError(ValueError):
    """A cascade URL we cannot use; the message says why."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A remote WHEP or WHIP endpoint."""

    url: str
    """The http(s) URL to POST the offer to, without credentials."""
    token: str | None = None
    """Bearer token for the remote node (from the URL's userinfo or the API's `token`)."""


def parse_endpoint(url: str, direction: Direction, token: str | None = None) -> Endpoint:
    """Read `whep(s)://[token@]host[:port]/path` (pull) or `whip(s)://…` (push), or the
    same with http(s); raise CascadeUrlError with the reason otherwise.

    A token in the userinfo is the Bearer token; `user:password@` is refused so that no
    password is ever sent as a token by mistake. An explicit `token` wins over the URL's.
    """
    schemes = _SCHEMES[direction]
    kind = "WHEP source" if direction is Direction.PULL else "WHIP target"
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise CascadeUrlError(f"invalid {kind} URL {url!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        allowed = ", ".join(f"{s}://" for s in schemes)
        raise CascadeUrlError(f"a {kind} URL must start with {allowed}; got {url!r}")
    if not parts.hostname:
        raise CascadeUrlError(f"the {kind} URL {url!r} has no host")
    if parts.password is not None:
        raise CascadeUrlError(f"the {kind} URL must not carry a password: put only the "
                              "token before '@' (whep://TOKEN@host/...)")
    if parts.path in ("", "/"):
        raise CascadeUrlError(f"the {kind} URL {url!r} has no endpoint path "
                              f"(e.g. /{'whep' if direction is Direction.PULL else 'whip'}/S)")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    http_url = urlunsplit((schemes[scheme], netloc, parts.path, parts.query, ""))
    return Endpoint(http_url, token or parts.username or None)


Address = tuple[str, int]
"""(host, port) where this node can be reached."""


def _default_port(scheme: str) -> int:
    return 443 if scheme in ("https", "wss") else 80


def own_addresses(settings: Settings, request_host: str | None = None,
                  request_port: int | None = None) -> list[Address]:
    """Where this node answers: its `[http] listen` address, `[liveman] public_url`, and
    the host and port a request reached it at."""
    found: list[Address] = [(settings.http.host, settings.http.port)]
    if settings.liveman.public_url:
        public = urlsplit(settings.liveman.public_url)
        if public.hostname:
            found.append((public.hostname, public.port or _default_port(public.scheme)))
    if request_host and request_port is not None:
        found.append((request_host, request_port))
    return found


def _candidates(host: str) -> set[str]:
    """What a host connects to, as far as can be told without DNS: `localhost` and the
    unspecified addresses reach the loopback; an IP in its normal form; a name as is."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost":
        return {"127.0.0.1", "::1"}
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return {host}
    if ip.is_unspecified:
        return {"127.0.0.1", "::1"}
    return {str(ip)}


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def points_at(endpoint: Endpoint, own: Iterable[Address]) -> bool:
    """Whether `endpoint` is this node itself (its port, and a host that reaches one of
    `own`): a cascade there would feed a stream from itself."""
    parts = urlsplit(endpoint.url)
    if not parts.hostname:
        return False
    port = parts.port or _default_port(parts.scheme)
    targets = _candidates(parts.hostname)
    for host, own_port in own:
        if port != own_port:
            continue
        # A wildcard listen (0.0.0.0, ::) answers on every local address.
        wildcard = host.strip("[]") in ("0.0.0.0", "::", "")
        if (wildcard and any(_is_loopback(t) for t in targets)) or targets & _candidates(host):
            return True
    return False


class Backoff:
    """Reconnect delays: 5 s, doubling on each failure, capped at 60 s; `reset` after a
    session came up."""

    def __init__(self, initial: float = BACKOFF_INITIAL_S, maximum: float = BACKOFF_MAX_S):
        self.initial = initial
        self.maximum = maximum
        self._next = initial

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.initial


def stops_for_good(reason: str, configured: bool) -> bool:
    """Whether a cascade whose session ended for `reason` stays down (no reconnect)."""
    if reason == Reason.SHUTDOWN:
        return True
    if configured:
        return False  # the configuration says it should exist: bring it back
    return reason in (Reason.API_DELETED, Reason.STREAM_DELETED, Reason.KICKED)


class CascadeError(ManagerError):
    """The remote node could not be reached or refused the session: 502 Bad Gateway."""

    status = 502


# ---- glue -----------------------------------------------------------------------------


class Link:
    """One cascade (a pull or a push of one local stream) and its reconnect loop."""

    def __init__(self, cascades: Cascades, stream: str, direction: Direction,
                 endpoint: Endpoint, *, configured: bool) -> None:
        self._cascades = cascades
        self.stream = stream
        self.direction = direction
        self.endpoint = endpoint
        self.configured = configured
        self.session: Session | None = None
        self._ended: asyncio.Future[str] | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def _manager(self) -> StreamManager:
        return self._cascades.manager

    def on_event(self, event: Event) -> None:
        session = self.session
        if session is None or event.session != session.id:
            return
        if event.type in (EventType.PUBLISH_STOPPED, EventType.SUBSCRIBE_STOPPED) \
                and self._ended is not None and not self._ended.done():
            self._ended.set_result(event.reason)

    async def connect(self) -> Session:
        """One attempt: offer, POST it to the remote endpoint, apply its answer."""
        info = CascadeInfo()
        if self.direction is Direction.PULL:
            info.source_url = self.endpoint.url
        else:
            info.target_url = self.endpoint.url

        async def negotiate(peer: Peer, ssrcs: dict[str, tuple[int, int]]) -> None:
            pull = self.direction is Direction.PULL
            offer = await peer.offer(recv=pull, send=not pull, ssrcs=None if pull else ssrcs,
                                     data_channel=DATA_CHANNEL_LABEL)
            answer, info.session_url = await self._cascades.post_offer(
                self.endpoint, offer, pull=self.direction is Direction.PULL)
            try:
                await peer.apply_answer(answer)
            except PeerError as exc:
                raise CascadeError(f"{self.endpoint.url}: {exc}") from exc

        self._ended = asyncio.get_running_loop().create_future()
        try:
            if self.direction is Direction.PULL:
                session = await self._manager.publish_cascade(self.stream, negotiate, info)
            else:
                session = await self._manager.subscribe_cascade(self.stream, negotiate, info)
        except BaseException:
            if info.session_url is not None:  # the remote said yes, we cannot go on
                self._cascades.delete_later(info.session_url, self.endpoint.token)
            raise
        self.session = session
        logger.info("cascade %s of %s via %s: session %s, remote %s", self.direction.value,
                    self.stream, self.endpoint.url, session.id, info.session_url)
        return session

    def supervise(self) -> None:
        """Watch the session (if connected) and keep the cascade up from now on."""
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"cascade-{self.direction.value}:{self.stream}")

    async def _run(self) -> None:
        try:
            await self._keep_up()
        except Exception:  # a bug here must be visible, not a silently dead cascade
            logger.exception("cascade %s of %s stopped", self.direction.value, self.stream)
        self._cascades.forget(self)

    async def _keep_up(self) -> None:
        backoff = Backoff()
        while not self._stopping:
            if self.session is None and not await self._attempt(backoff):
                continue
            session, ended = self.session, self._ended
            assert session is not None and ended is not None
            reason = await ended
            self.session = None
            await self._cascades.delete_remote(session, self.endpoint.token)
            if stops_for_good(reason, self.configured):
                logger.info("cascade %s of %s ended (%s)", self.direction.value, self.stream,
                            reason)
                break
            if session.peer.was_ready:
                backoff.reset()
            delay = backoff.next()
            logger.info("cascade %s of %s ended (%s); reconnecting in %.0f s",
                        self.direction.value, self.stream, reason, delay)
            await asyncio.sleep(delay)

    async def _attempt(self, backoff: Backoff) -> bool:
        """Connect once; on failure wait the next backoff delay. False when not connected."""
        if self.direction is Direction.PUSH and self.configured:
            await self._cascades.wait_for_publisher(self.stream)
        try:
            await self.connect()
            return True
        except (NotFound, Conflict) as exc:
            if not self.configured:  # the stream is gone or taken: nothing to reconnect to
                logger.info("cascade %s of %s stops: %s", self.direction.value, self.stream,
                            exc.reason)
                self._stopping = True
                return False
            error = exc.reason
        except ManagerError as exc:
            error = exc.reason
        except Exception as exc:  # an unexpected failure must not end the reconnect loop
            logger.exception("cascade %s of %s failed", self.direction.value, self.stream)
            error = str(exc)
        delay = backoff.next()
        logger.warning("cascade %s of %s via %s failed: %s; retrying in %.0f s",
                       self.direction.value, self.stream, self.endpoint.url, error, delay)
        await asyncio.sleep(delay)
        return False

    async def stop(self) -> None:
        """Shutdown: stop reconnecting and end the remote session."""
        self._stopping = True
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        session, self.session = self.session, None
        if session is not None:
            await self._cascades.delete_remote(session, self.endpoint.token)


class Cascades:
    """Every cascade of this node: the API's and the configured ones."""

    def __init__(self, manager: StreamManager,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.manager = manager
        self.links: list[Link] = []
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(REQUEST_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
            transport=transport)
        self._unlisten = manager.events.listen(self._on_event)
        self._publishers: dict[str, asyncio.Event] = {}
        self._background: set[asyncio.Task[None]] = set()

    def _on_event(self, event: Event) -> None:
        for link in list(self.links):
            link.on_event(event)
        waiter = self._publishers.get(event.stream)
        if waiter is not None and event.type is EventType.PUBLISH_STARTED:
            waiter.set()

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the `[[stream.X.sources]]` and `[[stream.X.targets]]` of the config."""
        for name, config in self.manager.settings.stream.items():
            for direction, entries in ((Direction.PULL, config.sources),
                                       (Direction.PUSH, config.targets)):
                for entry in entries:
                    try:
                        endpoint = parse_endpoint(entry.url, direction)
                    except CascadeUrlError as exc:
                        logger.error("stream %s: %s; this cascade is not started", name, exc)
                        continue
                    if points_at(endpoint, own_addresses(self.manager.settings)):
                        logger.error("stream %s: %s points at this node; this cascade is "
                                     "not started", name, entry.url)
                        continue
                    link = Link(self, name, direction, endpoint, configured=True)
                    self.links.append(link)
                    link.supervise()

    async def stop(self) -> None:
        self._unlisten()
        links, self.links = self.links, []
        await asyncio.gather(*(link.stop() for link in links), return_exceptions=True)
        for task in list(self._background):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, DELETE_TIMEOUT_S)
        await self._client.aclose()

    def forget(self, link: Link) -> None:
        if link in self.links:
            self.links.remove(link)

    # ---- the API --------------------------------------------------------------------------

    async def pull(self, stream: str, endpoint: Endpoint) -> Session:
        """Start pulling `stream` from a remote WHEP endpoint; raises on the first failure."""
        return await self._start(stream, Direction.PULL, endpoint)

    async def push(self, stream: str, endpoint: Endpoint) -> Session:
        """Start pushing the existing `stream` to a remote WHIP endpoint."""
        self.manager.get(stream)
        return await self._start(stream, Direction.PUSH, endpoint)

    async def _start(self, stream: str, direction: Direction, endpoint: Endpoint) -> Session:
        link = Link(self, stream, direction, endpoint, configured=False)
        session = await link.connect()
        self.links.append(link)
        link.supervise()
        return session

    # ---- helpers for links --------------------------------------------------------------

    async def wait_for_publisher(self, stream: str) -> None:
        found = self.manager.streams.get(stream)
        if found is not None and found.publisher is not None:
            return
        waiter = self._publishers.setdefault(stream, asyncio.Event())
        waiter.clear()
        await waiter.wait()

    async def post_offer(self, endpoint: Endpoint, offer: str, pull: bool = False
                         ) -> tuple[str, str]:
        """POST the offer; return (answer, absolute session URL). CascadeError otherwise."""
        headers = {"Content-Type": "application/sdp"}
        if pull:
            headers["X-Cascade"] = "pull"
        if endpoint.token:
            headers["Authorization"] = f"Bearer {endpoint.token}"
        try:
            response = await self._client.post(endpoint.url, content=offer, headers=headers)
        except httpx.HTTPError as exc:
            raise CascadeError(f"cannot reach {endpoint.url}: "
                               f"{exc or type(exc).__name__}") from exc
        if response.status_code not in (200, 201):
            raise CascadeError(f"{endpoint.url} answered {response.status_code}: "
                               f"{_detail(response)}")
        location = response.headers.get("location")
        if not location:
            raise CascadeError(f"{endpoint.url} answered without a Location header")
        return response.text, urljoin(endpoint.url, location)

    async def delete_remote(self, session: Session, token: str | None) -> None:
        """End the remote side of a cascade session (best effort)."""
        info = session.cascade
        if info is not None and info.session_url is not None:
            await self._delete(info.session_url, token)

    def delete_later(self, session_url: str, token: str | None) -> None:
        task = asyncio.get_running_loop().create_task(self._delete(session_url, token))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _delete(self, session_url: str, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = await self._client.delete(session_url, headers=headers,
                                                 timeout=DELETE_TIMEOUT_S)
            if response.status_code >= 300 and response.status_code != 404:
                logger.info("DELETE %s answered %s", session_url, response.status_code)
        except httpx.HTTPError as exc:  # the remote may be the reason the session ended
            logger.info("DELETE %s failed: %s", session_url, exc or type(exc).__name__)


def _detail(response: httpx.Response) -> str:
    """The remote's reason: a problem+json `detail`, else the start of the body."""
    with contextlib.suppress(ValueError, AttributeError):
        detail = response.json().get("detail")
        if detail:
            return str(detail)
    return response.text[:200].strip() or response.reason_phrase
