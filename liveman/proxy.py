"""Talking to nodes over HTTP: forwarded client requests and liveman's own calls.

Every failure becomes a :class:`NodeError` that names the node and what went wrong, which
the routers turn into 502/504 answers; liveman itself keeps serving.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

# Request headers a node must not see from the client: the client's credentials are for
# liveman, and hop-by-hop headers belong to one connection.
_DROP_REQUEST = {"authorization", "host", "content-length", "connection", "keep-alive",
                 "transfer-encoding", "te", "upgrade", "proxy-authorization", "cookie"}
# Response headers passed back to the client (others are the node's business).
PASS_RESPONSE = ("content-type", "etag", "accept-patch", "accept-post", "link", "location",
                 "retry-after", "www-authenticate", "allow", "content-range", "accept-ranges",
                 "cache-control")


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how to reach a node."""

    alias: str
    url: str
    token: str = ""


class NodeError(Exception):
    """The node could not be asked, or did not answer in time."""

    def __init__(self, target: Target, what: str, *, timeout: bool = False,
                 connect: bool = False) -> None:
        super().__init__(f"node '{target.alias}' ({target.url}): {what}")
        self.target = target
        self.timeout = timeout
        self.connect = connect
        """True when nothing reached the node: trying another node is safe."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: httpx.Headers
    body: bytes
    elapsed: float

    def json(self) -> Any:
        return httpx.Response(self.status, content=self.body).json()


class NodeClient:
    """One pooled HTTP client for every node."""

    def __init__(self, connect_timeout_s: float = 1.0, request_timeout_s: float = 10.0) -> None:
        self.timeout = httpx.Timeout(request_timeout_s, connect=connect_timeout_s)
        # httpcore scans every pooled connection on each request and response: a small
        # pool of kept-alive connections is what keeps a proxied request cheap.
        self.http = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False,
                                      limits=httpx.Limits(max_connections=100,
                                                          max_keepalive_connections=16))

    async def close(self) -> None:
        await self.http.aclose()

    async def request(self, target: Target, method: str, path: str, *,
                      headers: Mapping[str, str] | None = None, content: bytes | None = None,
                      json: Any = None, params: Any = None,
                      timeout: float | None = None) -> Answer:
        """``method path`` on the node with its token; raises NodeError when it cannot
        be reached or times out."""
        sent = {k: v for k, v in (headers or {}).items() if k.lower() not in _DROP_REQUEST}
        if target.token:
            sent["Authorization"] = f"Bearer {target.token}"
        started = time.perf_counter()
        try:
            response = await self.http.request(
                method, target.url + path, headers=sent, content=content, json=json,
                params=params,
                timeout=self.timeout if timeout is None else httpx.Timeout(
                    timeout, connect=min(timeout, self.timeout.connect or timeout)))
        except httpx.ConnectTimeout:
            raise NodeError(target, "connect timed out", connect=True, timeout=True) from None
        except httpx.ConnectError as exc:
            raise NodeError(target, f"cannot connect: {exc or 'refused'}",
                            connect=True) from None
        except httpx.TimeoutException:
            raise NodeError(target, "no answer in time", timeout=True) from None
        except httpx.HTTPError as exc:
            raise NodeError(target, f"{type(exc).__name__}: {exc}") from None
        return Answer(response.status_code, response.headers, response.content,
                      time.perf_counter() - started)
