"""Streams across the cluster: merged (Live777's `clusterNodeWork`), per node, and as SSE."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from liveapi.types import StreamJson
from liveion.auth import Claims, Mode
from liveion.http.common import Problem, check_stream_name
from liveion.http.deps import authenticated, require

from ..merge import merge_streams
from ..placement import Outcome, place_publisher
from ..proxy import NodeError
from .common import cluster_of

router = APIRouter(tags=["streams"])

SSE_TICK = 1.0
KEEPALIVE = 15.0


def for_caller(stream: StreamJson, claims: Claims) -> StreamJson:
    """Session ids are blanked for callers without admin on the stream (as liveion)."""
    if claims.allows(Mode.ADMIN, stream["id"]):
        return stream
    out: Any = json.loads(json.dumps(stream))
    for side in ("publish", "subscribe"):
        for session in out[side]["sessions"]:
            session["id"] = ""
            session.get("cascade", {}).pop("sessionUrl", None)
    result: StreamJson = out
    return result


async def _merged(request: Request, wanted: list[str] | None) -> list[StreamJson]:
    nodes = await cluster_of(request).registry.states()
    merged = merge_streams(n.streams for n in nodes if n.alive)
    return [s for s in merged if not wanted or s["id"] in wanted]


@router.get("/api/streams/")
async def list_streams(request: Request, claims: Annotated[Claims, Depends(authenticated)],
                       streams: Annotated[list[str] | None, Query()] = None,
                       ) -> list[StreamJson]:
    """Every stream on the live nodes, merged; `?streams=` filters."""
    return [for_caller(s, claims) for s in await _merged(request, streams)
            if claims.scoped_to(s["id"])]


@router.get("/api/streams/{stream}")
async def get_stream(stream: str, request: Request,
                     claims: Annotated[Claims, Depends(require(Mode(0)))],
                     ) -> dict[str, StreamJson]:
    """`{alias: Stream}` for each live node that has the stream."""
    out = {n.alias: for_caller(s, claims) for n in await cluster_of(request).registry.states()
           if n.alive for s in n.streams if s["id"] == stream}
    if not out:
        raise Problem(404, f"no node has stream '{stream}'")
    return out


@router.post("/api/streams/{stream}", status_code=204,
             dependencies=[Depends(require(Mode.ADMIN))])
async def create_stream(stream: str, request: Request,
                        nodes: Annotated[list[str] | None, Query()] = None) -> Response:
    """Create an empty stream on the least-loaded live node (or a pinned one)."""
    check_stream_name(stream)
    cluster = cluster_of(request)
    states = await cluster.registry.states()
    if any(s["id"] == stream for n in states if n.alive for s in n.streams):
        raise Problem(409, f"stream '{stream}' already exists")
    decision = place_publisher(await cluster.registry.views(), stream, nodes or ())
    if decision.outcome is not Outcome.SERVE:
        raise Problem(503, decision.reason, headers={"Retry-After": "5"})
    by_alias = {n.alias: n for n in states}
    node = by_alias[decision.nodes[0]]
    try:
        answer = await cluster.client.request(node.target, "POST", f"/api/streams/{stream}")
    except NodeError as exc:
        raise Problem(504 if exc.timeout else 502, str(exc)) from None
    return Response(answer.body, status_code=answer.status,
                    media_type=answer.headers.get("content-type"))


@router.delete("/api/streams/{stream}", status_code=204,
               dependencies=[Depends(require(Mode.ADMIN))])
async def delete_stream(stream: str, request: Request) -> Response:
    """Delete the stream on every node that has it."""
    cluster = cluster_of(request)
    holders = [n for n in await cluster.registry.states()
               if any(s["id"] == stream for s in n.streams)]
    if not holders:
        raise Problem(404, f"no node has stream '{stream}'")
    problems = []
    for node in holders:
        try:
            answer = await cluster.client.request(node.target, "DELETE", f"/api/streams/{stream}")
            if answer.status >= 300 and answer.status != 404:
                problems.append(f"node '{node.alias}' answered {answer.status}")
        except NodeError as exc:
            problems.append(str(exc))
    if problems:
        raise Problem(502, "; ".join(problems))
    return Response(status_code=204)


@router.get("/api/sse/streams", dependencies=[Depends(require(Mode.ADMIN))])
async def sse_streams(request: Request,
                      streams: Annotated[list[str] | None, Query()] = None) -> Response:
    """The merged stream list as server-sent events: a snapshot on connect, then one
    whenever it changes (checked every second)."""

    async def events() -> AsyncIterator[str]:
        last = None
        quiet = 0.0
        while not await request.is_disconnected():
            payload = json.dumps(await _merged(request, streams), separators=(",", ":"))
            if payload != last:
                last, quiet = payload, 0.0
                yield f"data: {payload}\n\n"
            elif quiet >= KEEPALIVE:
                quiet = 0.0
                yield ": keep-alive\n\n"
            await asyncio.sleep(SSE_TICK)
            quiet += SSE_TICK

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
