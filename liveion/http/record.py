"""The recorder API (`/api/record/...`, `/api/recordings`, `/api/playback`) as the spec says."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from liveapi.types import RecordStarted, RecordStatus

from ..auth import Mode
from ..recorder.index import RecordingEntry
from ..recorder.paths import BadPath, check_relative_path
from ..recorder.task import Recorder
from ..storage import Storage, StorageError, content_type_for, safe_path
from .common import Problem, read_json, read_json_object
from .deps import require

router = APIRouter(tags=["recorder"])

MAX_BODY = 4096
MAX_RECORDS_BODY = 4 * 1024 * 1024
"""`PATCH`/`DELETE /api/recordings`: liveman acks up to a page of `[record_sync] limit`
(at most 10,000) entries at once."""
DEFAULT_LIST_LIMIT = 100
_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")
_MAX_POSITION_DIGITS = 18
"""A byte position with more digits is past the end of any object."""


def recorder_of(request: Request) -> Recorder:
    recorder: Recorder | None = getattr(request.app.state, "recorder", None)
    if recorder is None:
        raise Problem(503, "the recorder is not running")
    return recorder


def storage_of(request: Request) -> Storage:
    storage: Storage | None = getattr(request.app.state, "storage", None)
    if storage is None:
        raise Problem(503, "recording storage is not available")
    return storage


async def _base_dir(request: Request) -> str | None:
    """`{"base_dir": …}` from an optional JSON body (empty body, `{}` and `null` are fine)."""
    data = await read_json_object(request, MAX_BODY, optional=True)
    base_dir = data.get("base_dir")
    if base_dir is None:
        return None
    if not isinstance(base_dir, str):
        raise Problem(400, "base_dir must be a string")
    try:
        return check_relative_path(base_dir)
    except BadPath as exc:
        raise Problem(400, f"base_dir: {exc}") from None


@router.post("/api/record/{stream}", dependencies=[Depends(require(Mode.ADMIN))])
async def start_record(stream: str, request: Request) -> RecordStarted:
    """Start recording (idempotent: a stream already recording answers its current part)."""
    base_dir = await _base_dir(request)
    info = recorder_of(request).start_recording(stream, base_dir)
    return {"id": info.id, "record_id": info.record_id, "record_dir": info.record_dir,
            "mpd_path": info.mpd_path}


@router.get("/api/record/{stream}", dependencies=[Depends(require(Mode.SUBSCRIBE))])
async def record_status(stream: str, request: Request) -> RecordStatus:
    return {"recording": recorder_of(request).is_recording(stream)}


@router.delete("/api/record/{stream}", dependencies=[Depends(require(Mode.ADMIN))])
async def stop_record(stream: str, request: Request) -> Response:
    if not recorder_of(request).stop_recording(stream):
        raise Problem(404, f"stream '{stream}' is not being recorded")
    return Response(status_code=200)


def _entry_json(entry: RecordingEntry) -> dict[str, Any]:
    out: dict[str, Any] = {"id": entry.record, "stream": entry.stream,
                           "start_ts": entry.start_ts, "mpd_path": entry.mpd_path,
                           "record_dir": entry.record_dir, "status": entry.status}
    if entry.end_ts is not None:
        out["end_ts"] = entry.end_ts
    if entry.duration_ms is not None:
        out["duration_ms"] = entry.duration_ms
    if entry.node_alias:
        out["node_alias"] = entry.node_alias
    return out


@router.get("/api/recordings", dependencies=[Depends(require(Mode.ADMIN))])
async def list_recordings(
    request: Request,
    limit: Annotated[int, Query(ge=0, le=10_000)] = DEFAULT_LIST_LIMIT,
    stream: str | None = None,
    since_ts: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Recordings in the node's index, oldest update first (Live777: `limit` 0 means 100)."""
    entries = recorder_of(request).index.list(stream=stream, since_ts=since_ts,
                                              limit=limit or DEFAULT_LIST_LIMIT)
    out: dict[str, Any] = {"sessions": [_entry_json(e) for e in entries]}
    if entries:
        out["last_ts"] = entries[-1].updated_at
    return out


async def _records_body(request: Request) -> list[tuple[str, str]]:
    data = await read_json(request, MAX_RECORDS_BODY)
    try:
        records = [(str(r["stream"]), str(r["record"])) for r in data["records"]]
    except (KeyError, TypeError):
        raise Problem(400, 'send {"records": [{"stream": …, "record": …}, …]}') from None
    return records


@router.patch("/api/recordings", dependencies=[Depends(require(Mode.ADMIN))])
async def ack_recordings(request: Request) -> dict[str, int]:
    return {"acked": recorder_of(request).index.ack(await _records_body(request))}


@router.delete("/api/recordings", dependencies=[Depends(require(Mode.ADMIN))])
async def delete_recordings(request: Request) -> dict[str, int]:
    return {"deleted": recorder_of(request).index.delete_acked(await _records_body(request))}


@router.get("/api/playback", dependencies=[Depends(require(Mode.ADMIN))])
async def playback_streams(request: Request) -> list[str]:
    """Streams that have at least one recording with a manifest in storage."""
    recorder, storage = recorder_of(request), storage_of(request)
    found: list[str] = []
    for entry in recorder.index.list(limit=1_000_000, include_acked=True):
        if entry.stream not in found and await storage.exists(entry.mpd_path):
            found.append(entry.stream)
    return found


@router.get("/api/playback/{stream}", dependencies=[Depends(require(Mode.SUBSCRIBE))])
async def playback_records(stream: str, request: Request) -> list[dict[str, Any]]:
    recorder, storage = recorder_of(request), storage_of(request)
    out = []
    for entry in recorder.index.list(stream=stream, limit=1_000_000, include_acked=True):
        if await storage.exists(entry.mpd_path):
            out.append({"record": entry.record, "mpd_path": entry.mpd_path,
                        "duration_ms": entry.duration_ms, "status": entry.status})
    return sorted(out, key=lambda e: str(e["record"]))


def _position(digits: str) -> int:
    """A byte position of a Range header (ASCII digits); a longer number than any object
    could need is read as "past the end" instead of converting thousands of digits."""
    return int(digits) if len(digits) <= _MAX_POSITION_DIGITS else 10 ** _MAX_POSITION_DIGITS


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) of a single-range `Range` header; None if unsatisfiable."""
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        raise Problem(416, "only a single bytes=start-end range is supported",
                      headers={"Content-Range": f"bytes */{size}"})
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        start, end = max(0, size - _position(last)), size
    else:
        start = _position(first)
        end = min(size, _position(last) + 1) if last else size
    if start >= size or start >= end:
        return None
    return start, end


@router.get("/api/record/object/{path:path}", dependencies=[Depends(require(Mode.SUBSCRIBE))])
@router.head("/api/record/object/{path:path}", include_in_schema=False,
             dependencies=[Depends(require(Mode.SUBSCRIBE))])
async def record_object(path: str, request: Request) -> Response:
    """A recording's file from storage, with its content type and HTTP Range support."""
    try:
        path = safe_path(path)
    except ValueError as exc:
        raise Problem(400, f"path: {exc}") from None
    storage = storage_of(request)
    try:
        size = await storage.stat(path)
    except StorageError as exc:
        raise Problem(503, f"storage: {exc}") from None
    if size is None:
        raise Problem(404, f"no object at '{path}'")
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "no-cache"}
    media_type = content_type_for(path)
    range_header = request.headers.get("range")
    head = request.method == "HEAD"
    try:
        if range_header:
            span = _byte_range(range_header, size)
            if span is None:
                raise Problem(416, "the range is outside the object",
                              headers={"Content-Range": f"bytes */{size}"})
            start, end = span
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
            body = b"" if head else await storage.read_range(path, start, end)
            headers["Content-Length"] = str(end - start)
            return Response(body, status_code=206, media_type=media_type, headers=headers)
        body = b"" if head else await storage.read(path)
    except StorageError as exc:
        raise Problem(503, f"storage: {exc}") from None
    headers["Content-Length"] = str(size)
    return Response(body, media_type=media_type, headers=headers)


