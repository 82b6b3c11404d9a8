"""A lean kept-alive HTTP/1.1 client for liveman's calls to its nodes.

Every WHIP/WHEP request through liveman is one request to a node, so this client is on
liveman's busiest path. httpx costs about as much CPU per request as the rest of the
proxy together (its pool scans and polls every kept-alive connection on each request);
this one keeps idle connections in a LIFO list per origin, writes the request in one
``write`` and parses the answer with httptools (the parser uvicorn uses). It speaks only
what nodes answer: HTTP/1.1 with ``Content-Length`` or chunked bodies, or a body that
ends with the connection.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

import httptools


class ConnectFailed(OSError):
    """Nothing reached the server: retrying elsewhere is safe."""


class ConnectTimeout(ConnectFailed, TimeoutError):
    pass


class AnswerTimeout(TimeoutError):
    """The request went out; no complete answer came in time."""


class ProtocolFailure(OSError):
    """The connection broke or the answer was not HTTP/1.1."""


class Headers:
    """Response headers: case-insensitive, repeated names kept in order."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items = [(name.lower(), value) for name, value in items]

    def get(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for key, value in self._items:
            if key == name:
                return value
        return default

    def get_list(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self._items if key == name]

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None


@dataclass(slots=True)
class Response:
    status: int
    headers: Headers
    body: bytes


@dataclass(slots=True)
class _Reading:
    """What the parser has produced for the request in flight."""

    future: asyncio.Future[Response]
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: list[bytes] = field(default_factory=list)
    status: int = 0
    headers_done: bool = False
    sized: bool = False  # Content-Length or chunked: the end is known without EOF
    any_byte: bool = False


class _Connection(asyncio.Protocol):
    """One connection, one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.reading: _Reading | None = None
        self.reusable = False
        self.closed = False

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        reading = self.reading
        if reading is None:  # the server spoke out of turn: this connection is done
            self.close()
            return
        reading.any_byte = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ProtocolFailure(f"bad HTTP answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        reading = self.reading
        if reading is None or reading.future.done():
            return
        if reading.headers_done and not reading.sized:  # the body ended with the stream
            self._finish(reading)
        elif not reading.any_byte:
            self._fail(ConnectionResetError("closed before answering"))
        else:
            self._fail(ProtocolFailure("connection closed mid-answer"))

    # -- httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.reading is not None
        self.reading.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        reading = self.reading
        assert reading is not None
        reading.status = self.parser.get_status_code()
        reading.headers_done = True
        for name, value in reading.headers:
            key = name.lower()
            if key == "content-length" or (key == "transfer-encoding"
                                           and "chunked" in value.lower()):
                reading.sized = True

    def on_body(self, body: bytes) -> None:
        assert self.reading is not None
        self.reading.body.append(body)

    def on_message_complete(self) -> None:
        reading = self.reading
        assert reading is not None
        if 100 <= reading.status < 200:  # an interim answer; the real one follows
            reading.headers.clear()
            reading.headers_done = False
            return
        self.reusable = self.parser.should_keep_alive()
        self._finish(reading)

    # -- ours

    def _finish(self, reading: _Reading) -> None:
        if not reading.future.done():
            reading.future.set_result(Response(reading.status, Headers(reading.headers),
                                               b"".join(reading.body)))

    def _fail(self, exc: Exception) -> None:
        reading = self.reading
        if reading is not None and not reading.future.done():
            reading.future.set_exception(exc)
        self.close()

    def send(self, request: bytes) -> asyncio.Future[Response]:
        assert self.transport is not None
        self.reusable = False
        self.parser = httptools.HttpResponseParser(self)
        self.reading = _Reading(asyncio.get_running_loop().create_future())
        self.transport.write(request)
        return self.reading.future

    def done(self) -> None:
        self.reading = None

    def close(self) -> None:
        self.closed = True
        self.reusable = False
        if self.transport is not None:
            self.transport.close()


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int
    prefix: str  # a path the node's URL carries, put before every request path

    @classmethod
    def parse(cls, url: str) -> Origin:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _safe(text: str, what: str) -> str:
    """Request line and header text must not be able to start another line."""
    if _CONTROL.search(text):
        raise ValueError(f"control character in {what}")
    return text


class Client:
    """Kept-alive connections to many origins."""

    def __init__(self, *, keepalive_per_origin: int = 16) -> None:
        self.keepalive_per_origin = keepalive_per_origin
        self._idle: dict[Origin, list[_Connection]] = {}
        self._origins: dict[str, Origin] = {}
        self._ssl: ssl.SSLContext | None = None

    def origin(self, url: str) -> Origin:
        origin = self._origins.get(url)
        if origin is None:
            origin = self._origins[url] = Origin.parse(url)
        return origin

    async def request(self, url: str, method: str, path: str, *,
                      headers: Iterable[tuple[str, str]] = (), body: bytes = b"",
                      connect_timeout: float, timeout: float) -> Response:
        """``method path`` on the origin of ``url``; ``timeout`` bounds the whole
        request including connecting. Raises ConnectFailed/ConnectTimeout when nothing
        was sent, AnswerTimeout or ProtocolFailure after."""
        origin = self.origin(url)
        target = origin.prefix + path
        if " " in target:
            raise ValueError("space in path")
        lines = [f"{method} {_safe(target, 'path')} HTTP/1.1",
                 f"Host: {origin.host_header}"]
        lines += [f"{_safe(name, 'header')}: {_safe(value, 'header')}"
                  for name, value in headers]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            connection, reused = self._take_idle(origin), True
            if connection is None:
                connection, reused = await self._connect(origin, min(connect_timeout,
                                                                     timeout)), False
            future = connection.send(request)
            try:
                async with asyncio.timeout_at(deadline):
                    response = await future
            except TimeoutError:
                connection.close()
                raise AnswerTimeout("no answer in time") from None
            except ConnectionResetError:
                # A kept-alive connection the server had just closed: the request never
                # got there, so sending it again on a fresh connection is safe.
                connection.close()
                if reused:
                    continue
                raise ProtocolFailure("connection closed before answering") from None
            except BaseException:
                connection.close()
                raise
            connection.done()
            self._put_idle(origin, connection)
            return response

    def _take_idle(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if not connection.closed and connection.transport is not None \
                    and not connection.transport.is_closing():
                return connection
        return None

    def _put_idle(self, origin: Origin, connection: _Connection) -> None:
        if not connection.reusable or connection.closed:
            connection.close()
            return
        idle = self._idle.setdefault(origin, [])
        if len(idle) >= self.keepalive_per_origin:
            idle.pop(0).close()  # keep the most recently used ones
        idle.append(connection)

    async def _connect(self, origin: Origin, timeout: float) -> _Connection:
        loop = asyncio.get_running_loop()
        context: ssl.SSLContext | None = None
        if origin.scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        try:
            async with asyncio.timeout(timeout):
                _, connection = await loop.create_connection(
                    _Connection, origin.host, origin.port, ssl=context)
        except TimeoutError:
            raise ConnectTimeout("connect timed out") from None
        except OSError as exc:
            raise ConnectFailed(exc.strerror or str(exc) or "refused") from None
        return connection

    async def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
