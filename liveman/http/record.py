"""Recordings through liveman: start/stop/status on the nodes, the playback index, recording
objects from liveman's own storage (bytes or a presigned redirect), presigning, ping."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response

from liveion.auth import Mode
from liveion.http.common import Problem, check_stream_name, read_json_object
from liveion.http.deps import require
from liveion.http.record import record_object as serve_object
from liveion.recorder.paths import BadPath, check_relative_path
from liveion.storage import safe_path

from ..recordings import Recordings
from .common import cluster_of

router = APIRouter(tags=["recorder"])

MAX_BODY = 4096


def recordings_of(request: Request) -> Recordings:
    return cluster_of(request).recordings


async def _json_body(request: Request) -> dict[str, Any]:
    """An optional JSON object body: empty, `{}` and `null` are an empty object."""
    return await read_json_object(request, MAX_BODY, optional=True)


@router.get("/api/record/object/{path:path}",
            dependencies=[Depends(require(Mode.SUBSCRIBE))])
@router.head("/api/record/object/{path:path}", include_in_schema=False,
             dependencies=[Depends(require(Mode.SUBSCRIBE))])
async def record_object(path: str, request: Request) -> Response:
    """A recording's file from liveman's `[recorder.storage]`, served as a node serves it
    (content types, HEAD, Range); with `[playback] signed_redirect`, segments answer 307
    to a presigned storage URL instead."""
    try:
        safe_path(path)
    except ValueError as exc:
        raise Problem(400, f"path: {exc}") from None
    recordings = recordings_of(request)
    recordings.require_storage()
    location = await recordings.redirect_for(path)
    if location is not None:
        return RedirectResponse(location, status_code=307,
                                headers={"Cache-Control": "no-store"})
    return await serve_object(path, request)


@router.post("/api/record/{stream}", dependencies=[Depends(require(Mode.ADMIN))])
async def start_record(stream: str, request: Request,
                       node: Annotated[str | None, Query()] = None) -> dict[str, Any]:
    """Record on `?node=alias`, else on the live node that has the stream's publisher.
    Body (optional): `{"base_dir": "prefix/dir"}`."""
    check_stream_name(stream)
    base_dir = (await _json_body(request)).get("base_dir")
    if base_dir is not None:
        if not isinstance(base_dir, str):
            raise Problem(400, "base_dir must be a string")
        try:
            base_dir = check_relative_path(base_dir)
        except BadPath as exc:
            raise Problem(400, f"base_dir: {exc}") from None
    started = await recordings_of(request).start_recording(stream, base_dir, node)
    return started.json()


@router.get("/api/record/{stream}", dependencies=[Depends(require(Mode.SUBSCRIBE))])
async def record_status(stream: str, request: Request) -> dict[str, bool]:
    check_stream_name(stream)
    return {"recording": await recordings_of(request).is_recording(stream)}


@router.delete("/api/record/{stream}", dependencies=[Depends(require(Mode.ADMIN))])
async def stop_record(stream: str, request: Request) -> dict[str, bool]:
    check_stream_name(stream)
    return {"stopped": await recordings_of(request).stop_recording(stream)}


@router.get("/api/playback", dependencies=[Depends(require(Mode.ADMIN))])
async def playback_streams(request: Request) -> list[str]:
    """Streams with at least one recording in the index."""
    return await recordings_of(request).playback_streams()


@router.get("/api/playback/{stream}", dependencies=[Depends(require(Mode.SUBSCRIBE))])
async def playback_records(stream: str, request: Request) -> list[dict[str, Any]]:
    """The stream's recordings from the index, sorted by record."""
    check_stream_name(stream)
    return await recordings_of(request).playback(stream)


@router.post("/api/storage/presign", dependencies=[Depends(require(Mode.ADMIN))])
async def presign(request: Request) -> dict[str, Any]:
    """`{"method": "GET"|"PUT", "path", "ttl_seconds"}` → `{"url", "method", "headers"}`;
    the TTL is at least 30 s."""
    data = await _json_body(request)
    method = data.get("method", "GET")
    path = data.get("path")
    ttl = data.get("ttl_seconds", cluster_of(request).settings.playback.signed_ttl_seconds)
    if not isinstance(method, str) or method.upper() not in ("GET", "PUT"):
        raise Problem(400, 'method: "GET" or "PUT"')
    if not isinstance(path, str):
        raise Problem(400, "path: the object's path in storage is required")
    try:
        safe_path(path)
    except ValueError as exc:
        raise Problem(400, f"path: {exc}") from None
    if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl <= 0:
        raise Problem(400, "ttl_seconds: a positive number of seconds")
    return await recordings_of(request).presign(method.upper(), path, ttl)


@router.get("/api/storage/ping", dependencies=[Depends(require(Mode.ADMIN))])
async def storage_ping(request: Request) -> Response:
    """200 `ok` when liveman's storage answers; 503 with the reason otherwise."""
    problem = await recordings_of(request).ping()
    if problem is not None:
        return PlainTextResponse(problem, status_code=503, headers={"Retry-After": "5"})
    return PlainTextResponse("ok")
