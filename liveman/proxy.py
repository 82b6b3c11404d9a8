"""Talking to nodes over HTTP: forwarded client requests and liveman's own calls.

Every failure becomes a :class:`NodeError` that names the node and what went wrong, which
the routers turn into 502/504 answers; liveman itself keeps serving.
"""

from __future__ import annotations

import json as jsonlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from . import httpclient
from .httpclient import Headers

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
    headers: Headers
    body: bytes
    elapsed: float

    def json(self) -> Any:
        return jsonlib.loads(self.body)


class NodeClient:
    """One client for every node: requests through the lean kept-alive client, the
    long-lived SSE feeds through httpx (streaming, rarely opened)."""

    def __init__(self, connect_timeout_s: float = 1.0, request_timeout_s: float = 10.0) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.request_timeout_s = request_timeout_s
        self.pool = httpclient.Client(keepalive_per_origin=16)
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(request_timeout_s,
                                                            connect=connect_timeout_s),
                                      follow_redirects=False)

    async def close(self) -> None:
        await self.pool.close()
        await self.http.aclose()

    async def request(self, target: Target, method: str, path: str, *,
                      headers: Mapping[str, str] | None = None, content: bytes | None = None,
                      json: Any = None, params: Mapping[str, Any] | None = None,
                      timeout: float | None = None) -> Answer:
        """``method path`` on the node with its token; raises NodeError when it cannot
        be reached or times out."""
        sent = [(k, v) for k, v in (headers or {}).items() if k.lower() not in _DROP_REQUEST]
        if target.token:
            sent.append(("Authorization", f"Bearer {target.token}"))
        body = content or b""
        if json is not None:
            body = jsonlib.dumps(json).encode()
            sent.append(("Content-Type", "application/json"))
        if params:
            path += ("&" if "?" in path else "?") + urlencode(params)
        limit = self.request_timeout_s if timeout is None else timeout
        started = time.perf_counter()
        try:
            response = await self.pool.request(
                target.url, method, path, headers=sent, body=body,
                connect_timeout=min(limit, self.connect_timeout_s), timeout=limit)
        except httpclient.ConnectTimeout:
            raise NodeError(target, "connect timed out", connect=True, timeout=True) from None
        except httpclient.ConnectFailed as exc:
            raise NodeError(target, f"cannot connect: {exc or 'refused'}",
                            connect=True) from None
        except httpclient.AnswerTimeout:
            raise NodeError(target, "no answer in time", timeout=True) from None
        except (httpclient.ProtocolFailure, ValueError) as exc:
            raise NodeError(target, f"{type(exc).__name__}: {exc}") from None
        return Answer(response.status, response.headers, response.body,
                      time.perf_counter() - started)
