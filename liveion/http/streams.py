"""The streams API in Live777's JSON shape: `/api/streams/`."""

from __future__ import annotations

from typing import Annotated, cast
from weakref import WeakKeyDictionary

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from liveapi.types import CascadeInfo, CodecJson, SessionJson, SessionState, StreamJson

from ..auth import Claims, Mode
from ..sfu.stream import Session, Stream, now_ms
from .common import check_stream_name
from .deps import authenticated, manager_of, require

router = APIRouter(prefix="/api/streams", tags=["streams"])


_GONE_STATES = ("disconnected", "failed", "closed")
_left_at: WeakKeyDictionary[Session, int] = WeakKeyDictionary()


def session_leave_at(session: Session, state: str) -> int:
    """0 while the peer is present; once its connection is lost, when that was first seen
    (a lost session is listed only until the manager removes it)."""
    if state not in _GONE_STATES:
        _left_at.pop(session, None)
        return 0
    return _left_at.setdefault(session, now_ms())


def session_json(session: Session) -> SessionJson:
    # aiortc's RTCPeerConnection.connectionState takes exactly SessionState's values.
    state = cast(SessionState, session.peer.state)
    out: SessionJson = {
        "id": session.id,
        "createdAt": session.created_at,
        "leaveAt": session_leave_at(session, state),
        "state": state,
        "hasDataChannel": session.peer.has_data_channel,
        "stats": {"bytes": session.bytes, "packets": session.packets,
                  "bitrate": session.bitrate},
    }
    if session.cascade is not None:  # Live777 omits the key on other sessions
        cascade: CascadeInfo = {}
        if session.cascade.source_url is not None:
            cascade["sourceUrl"] = session.cascade.source_url
        if session.cascade.target_url is not None:
            cascade["targetUrl"] = session.cascade.target_url
        if session.cascade.session_url is not None:
            cascade["sessionUrl"] = session.cascade.session_url
        out["cascade"] = cascade
    return out


def stream_json(stream: Stream) -> StreamJson:
    publisher = [stream.publisher] if stream.publisher else []
    subscribers = list(stream.subscribers.values())
    codecs: list[CodecJson] = []
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


def for_caller(stream: Stream, claims: Claims) -> StreamJson:
    """`stream_json`, with session ids blanked for a caller without admin on the stream:
    a session id is what controls a session, so one viewer must not learn another's."""
    out = stream_json(stream)
    if not claims.allows(Mode.ADMIN, stream.name):
        for side in (out["publish"], out["subscribe"]):
            for session in side["sessions"]:
                session["id"] = ""
                if "cascade" in session:
                    session["cascade"].pop("sessionUrl", None)
    return out


# response_model=None: the dicts are built to their TypedDicts already; FastAPI would
# otherwise validate every answer again.
@router.get("/", response_model=None)
async def list_streams(
    request: Request, claims: Annotated[Claims, Depends(authenticated)],
    streams: Annotated[list[str] | None, Query()] = None,
) -> list[StreamJson]:
    """Every stream, or only those named by `?streams=a&streams=b`. A token for one stream
    sees only that stream."""
    found = manager_of(request).streams.values()
    return [for_caller(s, claims) for s in found
            if (not streams or s.name in streams) and claims.scoped_to(s.name)]


@router.get("/{stream}", response_model=None)
async def get_stream(stream: str, request: Request,
                     claims: Annotated[Claims, Depends(require(Mode(0)))]) -> StreamJson:
    """Any token for the stream may read it."""
    return for_caller(manager_of(request).get(stream), claims)


@router.post("/{stream}", status_code=204, dependencies=[Depends(require(Mode.ADMIN))])
async def create_stream(stream: str, request: Request) -> Response:
    check_stream_name(stream)
    manager_of(request).create_stream(stream)
    return Response(status_code=204)


@router.delete("/{stream}", status_code=204, dependencies=[Depends(require(Mode.ADMIN))])
async def delete_stream(stream: str, request: Request) -> Response:
    await manager_of(request).delete_stream(stream)
    return Response(status_code=204)
