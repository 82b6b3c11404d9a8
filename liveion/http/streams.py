"""The streams API in Live777's JSON shape: `/api/streams/`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ..sfu.stream import Session, Stream
from .common import check_stream_name
from .deps import manager_of

router = APIRouter(prefix="/api/streams", tags=["streams"])


def session_json(session: Session) -> dict[str, Any]:
    return {
        "id": session.id,
        "createdAt": session.created_at,
        "leaveAt": 0,
        "state": session.peer.state,
        "hasDataChannel": False,
        "stats": {"bytes": session.bytes, "packets": session.packets,
                  "bitrate": session.bitrate},
    }


def stream_json(stream: Stream) -> dict[str, Any]:
    publisher = [stream.publisher] if stream.publisher else []
    subscribers = list(stream.subscribers.values())
    codecs = []
    for kind, track in stream.tracks.items():
        if stream.publisher is not None and track.source is not None:
            codecs.append({"kind": kind, "codec": track.source.name,
                           "fmtp": track.source.fmtp_line})
    published = (stream.total_in[0] + sum(s.packets for s in publisher),
                 stream.total_in[1] + sum(s.bytes for s in publisher))
    delivered = (stream.total_out[0] + sum(s.packets for s in subscribers),
                 stream.total_out[1] + sum(s.bytes for s in subscribers))
    return {
        "id": stream.name,
        "createdAt": stream.created_at,
        "publish": {"leaveAt": stream.publish_leave_at,
                    "sessions": [session_json(s) for s in publisher]},
        "subscribe": {"leaveAt": stream.subscribe_leave_at,
                      "sessions": [session_json(s) for s in subscribers]},
        "codecs": codecs,
        "provisioned": stream.provisioned,
        "onDemand": False,
        "stats": {
            "publish": {"packets": published[0], "bytes": published[1],
                        "bitrate": sum(s.bitrate for s in publisher)},
            "subscribe": {"packets": delivered[0], "bytes": delivered[1],
                          "bitrate": sum(s.bitrate for s in subscribers)},
        },
        "statsScope": "node",
    }


@router.get("/")
async def list_streams(
    request: Request, streams: Annotated[list[str] | None, Query()] = None
) -> list[dict[str, Any]]:
    """Every stream, or only those named by `?streams=a&streams=b`."""
    found = manager_of(request).streams.values()
    return [stream_json(s) for s in found if not streams or s.name in streams]


@router.get("/{stream}")
async def get_stream(stream: str, request: Request) -> dict[str, Any]:
    return stream_json(manager_of(request).get(stream))


@router.post("/{stream}", status_code=204)
async def create_stream(stream: str, request: Request) -> Response:
    check_stream_name(stream)
    manager_of(request).create_stream(stream)
    return Response(status_code=204)


@router.delete("/{stream}", status_code=204)
async def delete_stream(stream: str, request: Request) -> Response:
    await manager_of(request).delete_stream(stream)
    return Response(status_code=204)
