"""WHIP (`/whip/{stream}`, RFC 9725) and WHEP (`/whep/{stream}`) endpoints.

They translate HTTP to `StreamManager.publish` / `subscribe`; the 201 answers carry what
FFmpeg, OBS and browser clients rely on: `Content-Length`, `Location`, a strong `ETag`,
`Accept-Patch` and one `Link` per ICE server.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ..auth import Claims, Mode
from ..sfu.stream import CascadeInfo, Session
from .common import SDP, SDPFRAG, Problem, check_stream_name, ice_server_links, read_text_body
from .deps import manager_of, require, settings_of

router = APIRouter()

ENDPOINT_METHODS = {"whip": "OPTIONS, POST", "whep": "OPTIONS, POST, HEAD"}


def _created(request: Request, session: Session, claims: Claims) -> Response:
    session.owner = claims.credential
    response = Response(session.peer.answer_sdp, status_code=201, media_type=SDP)
    response.headers["Location"] = f"/session/{session.stream}/{session.id}"
    response.headers["ETag"] = session.etag
    response.headers["Accept-Patch"] = SDPFRAG
    for link in ice_server_links(settings_of(request).ice_servers):
        response.headers.append("Link", link)
    return response


@router.post("/whip/{stream}", status_code=201, tags=["whip"])
async def whip(stream: str, request: Request,
               claims: Annotated[Claims, Depends(require(Mode.PUBLISH))]) -> Response:
    """Publish: the body is the SDP offer; 201 with the SDP answer."""
    check_stream_name(stream)
    manager = manager_of(request)
    session = await manager.publish(stream, await read_text_body(request, SDP))
    return _created(request, session, claims)


@router.post("/whep/{stream}", status_code=201, tags=["whep"])
async def whep(stream: str, request: Request,
               claims: Annotated[Claims, Depends(require(Mode.SUBSCRIBE))]) -> Response:
    """Subscribe: the body is the player's SDP offer; 201 with the SDP answer."""
    check_stream_name(stream)
    manager = manager_of(request)
    leg = (request.headers.get("x-cascade") == "pull" and claims.allows(Mode.ADMIN, stream))
    session = await manager.subscribe(stream, await read_text_body(request, SDP),
                                      CascadeInfo() if leg else None)
    return _created(request, session, claims)


@router.head("/whep/{stream}", tags=["whep"], dependencies=[Depends(require(Mode.SUBSCRIBE))])
async def whep_head(stream: str) -> Response:
    """E4: players discover WHEP endpoints with HEAD."""
    check_stream_name(stream)
    return Response(status_code=200, media_type=SDP)


@router.options("/whip/{stream}", tags=["whip"])
@router.options("/whep/{stream}", tags=["whep"])
async def endpoint_options(stream: str, request: Request) -> Response:
    """W3: 200 with Accept-Post. ICE servers only when this is not a CORS preflight (W15)."""
    kind = request.url.path.split("/")[1]
    response = Response(status_code=200)
    response.headers["Accept-Post"] = SDP
    response.headers["Allow"] = ENDPOINT_METHODS[kind]
    if "access-control-request-method" not in request.headers:
        for link in ice_server_links(settings_of(request).ice_servers):
            response.headers.append("Link", link)
    return response


@router.api_route("/whip/{stream}", methods=["GET", "HEAD", "PUT"], include_in_schema=False)
@router.api_route("/whep/{stream}", methods=["GET", "PUT"], include_in_schema=False)
async def endpoint_reserved(request: Request) -> Response:
    """RFC 9725 §4.2: GET, HEAD and PUT on the endpoint are reserved: 405."""
    kind = request.url.path.split("/")[1]
    raise Problem(405, f"{request.method} is reserved on the {kind.upper()} endpoint",
                  headers={"Allow": ENDPOINT_METHODS[kind]})
