"""WHIP, WHEP and session resources, forwarded to the node that holds (or gets) them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from liveion.auth import Claims, Mode
from liveion.http.common import SDP, Problem, check_stream_name
from liveion.http.deps import authenticated, credentials, forbidden, require

from .common import cluster_of, forwarded_headers, read_body, relay

router = APIRouter(tags=["signaling"])

Pinned = Annotated[list[str] | None, Query(alias="nodes")]


def _options(accept_post: bool) -> Response:
    headers = {"Allow": "OPTIONS, POST" if accept_post else "OPTIONS, PATCH, DELETE, POST",
               "Accept-Post" if accept_post else "Accept-Patch":
               SDP if accept_post else "application/trickle-ice-sdpfrag"}
    return Response(status_code=204, headers=headers)


async def _offer(request: Request) -> bytes:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != SDP:
        raise Problem(415, f"Content-Type must be {SDP}", headers={"Accept-Post": SDP})
    return await read_body(request)


@router.post("/whip/{stream}", dependencies=[Depends(require(Mode.PUBLISH))])
async def whip(stream: str, request: Request, nodes: Pinned = None) -> Response:
    """Publish: to the node that has the stream, else the least-loaded live node."""
    check_stream_name(stream)
    offer = await _offer(request)
    answer = await cluster_of(request).signaling.publish(
        stream, offer, forwarded_headers(request), nodes or ())
    return relay(answer, ice=True, request=request)


@router.post("/whep/{stream}", dependencies=[Depends(require(Mode.SUBSCRIBE))])
async def whep(stream: str, request: Request, nodes: Pinned = None) -> Response:
    """Watch: on a node holding the stream with room, or through a new cascade."""
    check_stream_name(stream)
    offer = await _offer(request)
    answer = await cluster_of(request).signaling.subscribe(
        stream, offer, forwarded_headers(request), nodes or ())
    return relay(answer, ice=True, request=request)


@router.post("/api/whip/{alias}/{stream}", dependencies=[Depends(require(Mode.PUBLISH))])
async def whip_on_node(alias: str, stream: str, request: Request) -> Response:
    check_stream_name(stream)
    offer = await _offer(request)
    answer = await cluster_of(request).signaling.on_node("whip", alias, stream, offer,
                                                         forwarded_headers(request))
    return relay(answer, ice=True, request=request)


@router.post("/api/whep/{alias}/{stream}", dependencies=[Depends(require(Mode.SUBSCRIBE))])
async def whep_on_node(alias: str, stream: str, request: Request) -> Response:
    check_stream_name(stream)
    offer = await _offer(request)
    answer = await cluster_of(request).signaling.on_node("whep", alias, stream, offer,
                                                         forwarded_headers(request))
    return relay(answer, ice=True, request=request)


@router.options("/whip/{stream}", include_in_schema=False)
@router.options("/whep/{stream}", include_in_schema=False)
@router.options("/api/whip/{alias}/{stream}", include_in_schema=False)
@router.options("/api/whep/{alias}/{stream}", include_in_schema=False)
async def offer_options() -> Response:
    return _options(accept_post=True)


@router.options("/session/{stream}/{session_id}", include_in_schema=False)
async def session_options() -> Response:
    return _options(accept_post=False)


async def _session_claims(request: Request, stream: str, path: str) -> Claims:
    """Admin on the stream, or the right that matches the session's role (as liveion)."""
    claims = await authenticated(request)
    if not claims.scoped_to(stream):
        raise forbidden(f"this token is not for stream '{stream}'")
    if claims.allows(Mode.ADMIN, stream):
        return claims
    route = await cluster_of(request).signaling.route(path)
    role = route.role if route is not None else None
    need = Mode.PUBLISH if role == "publish" else Mode.SUBSCRIBE
    if not claims.allows(need, stream):
        raise forbidden(f"a {role or 'viewer'} session needs a token granting "
                        f"{need.name.lower() if need.name else 'access'} or admin")
    return claims


async def _forward_session(request: Request, stream: str, session_id: str,
                           suffix: str = "") -> Response:
    path = f"/session/{stream}/{session_id}{suffix}"
    await _session_claims(request, stream, path)
    body = await read_body(request)
    answer = await cluster_of(request).signaling.session(
        request.method, path, forwarded_headers(request), body)
    return relay(answer)


# The credentials are checked by _session_claims (they depend on the session's role);
# `credentials` only declares them in the OpenAPI document.
@router.patch("/session/{stream}/{session_id}", dependencies=[Depends(credentials)])
@router.delete("/session/{stream}/{session_id}", dependencies=[Depends(credentials)])
@router.post("/session/{stream}/{session_id}", dependencies=[Depends(credentials)])
async def session(stream: str, session_id: str, request: Request) -> Response:
    """Trickle ICE, end, or mute a session on the node that holds it."""
    return await _forward_session(request, stream, session_id)


@router.get("/session/{stream}/{session_id}/layer", dependencies=[Depends(credentials)])
@router.post("/session/{stream}/{session_id}/layer", dependencies=[Depends(credentials)])
@router.delete("/session/{stream}/{session_id}/layer", dependencies=[Depends(credentials)])
async def session_layer(stream: str, session_id: str, request: Request) -> Response:
    """Simulcast layer selection, where the node offers it."""
    return await _forward_session(request, stream, session_id, "/layer")
