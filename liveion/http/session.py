"""The session resource `/session/{stream}/{session}`: trickle ICE (PATCH) and teardown (DELETE)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..sfu.sdp import parse_sdpfrag
from .common import SDPFRAG, Problem, read_text_body
from .deps import manager_of

router = APIRouter(tags=["session"])

SESSION_METHODS = "OPTIONS, PATCH, DELETE"


@router.patch("/session/{stream}/{session_id}", status_code=204)
async def patch_session(stream: str, session_id: str, request: Request) -> Response:
    """Trickle ICE: 204. An ICE restart (new ufrag/pwd) is refused with 422 (W21, W24).

    Conditional as W22 asks: no If-Match is 428, a stale one 412.
    """
    manager = manager_of(request)
    session = manager.session(stream, session_id)
    if_match = request.headers.get("if-match")
    if if_match is None:
        raise Problem(428, "PATCH needs If-Match with the session's ETag (or \"*\")")
    if if_match.strip() != "*" and session.etag not in [t.strip() for t in if_match.split(",")]:
        raise Problem(412, "If-Match does not match the session's ETag",
                      headers={"ETag": session.etag})
    fragment = parse_sdpfrag(await read_text_body(request, SDPFRAG))
    restart = (fragment.ice_ufrag is not None and fragment.ice_ufrag != session.peer.remote_ufrag)
    if restart:
        raise Problem(422, "ICE restart is not supported: create a new session with POST")
    await manager.add_candidates(stream, session_id, fragment)
    return Response(status_code=204)


@router.delete("/session/{stream}/{session_id}", status_code=204)
async def delete_session(stream: str, session_id: str, request: Request) -> Response:
    """End the session: ICE, DTLS and every resource it held (W26). If-Match is ignored."""
    await manager_of(request).delete_session(stream, session_id)
    return Response(status_code=204)


@router.options("/session/{stream}/{session_id}")
async def session_options(stream: str, session_id: str) -> Response:
    response = Response(status_code=200)
    response.headers["Accept-Patch"] = SDPFRAG
    response.headers["Allow"] = SESSION_METHODS
    return response


@router.api_route("/session/{stream}/{session_id}", methods=["GET", "HEAD", "PUT", "POST"],
                  include_in_schema=False)
async def session_reserved(request: Request) -> Response:
    """RFC 9725 §4.3: GET, HEAD, POST and PUT on the session are reserved: 405."""
    raise Problem(405, f"{request.method} is not supported on a session",
                  headers={"Allow": SESSION_METHODS})
