"""What liveman's routers share: access to the app's objects, answers from nodes as
responses, bounded bodies."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import Response

from liveion.http.common import Problem

from ..ice import merge_links
from ..proxy import PASS_RESPONSE, Answer

if TYPE_CHECKING:
    from ..app import Cluster

MAX_BODY = 64 * 1024


def cluster_of(request: Request) -> Cluster:
    cluster: Cluster = request.app.state.cluster
    return cluster


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request body, refusing more than ``limit`` bytes without holding them (413)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise Problem(413, f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Problem(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def forwarded_headers(request: Request) -> dict[str, str]:
    """The client's headers a node may see, plus where the client is (for the node's
    rate limit and logs)."""
    headers = {k: v for k, v in request.headers.items()
               if k.lower() in ("content-type", "if-match", "accept", "range", "user-agent")}
    if request.client is not None:
        prior = request.headers.get("x-forwarded-for")
        headers["X-Forwarded-For"] = (f"{prior}, {request.client.host}" if prior
                                      else request.client.host)
    return headers


def relay(answer: Answer, *, ice: bool = False, request: Request | None = None) -> Response:
    """A node's answer as liveman's: status, body and the headers clients use."""
    response = Response(answer.body, status_code=answer.status)
    for name in PASS_RESPONSE:
        values = answer.headers.get_list(name)
        if name == "link" and ice and request is not None:
            values = merge_links(values, cluster_of(request).settings.extra_ice, time.time())
        elif name == "location":
            # A node's absolute URL would send the client past liveman; the path is the
            # same resource on liveman.
            values = [urlsplit(v).path or v for v in values]
        for value in values:
            response.headers.append(name, value)
    return response
