"""What liveman's routers share: access to the app's objects, answers from nodes as
responses, bounded bodies."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import Response

from liveion.http.common import read_bounded_body

from ..ice import merge_links
from ..proxy import PASS_RESPONSE, Answer

if TYPE_CHECKING:
    from ..app import Cluster

MAX_BODY = 64 * 1024


def cluster_of(request: Request) -> Cluster:
    cluster: Cluster = request.app.state.cluster
    return cluster


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request body, at most ``limit`` bytes (413 beyond)."""
    return await read_bounded_body(request, limit)


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
