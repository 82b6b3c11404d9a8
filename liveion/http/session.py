"""The session resource `/session/{stream}/{session}`: trickle ICE (PATCH), teardown (DELETE)
and, as in Live777, muting one kind of media for a subscriber (POST with JSON)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ..auth import Claims, Mode
from ..events import Reason
from ..sfu.sdp import parse_sdpfrag
from .common import SDPFRAG, Problem, parse_json, read_text_body
from .deps import authenticator_of, manager_of, require_session

router = APIRouter(tags=["session"])

SESSION_METHODS = "OPTIONS, POST, PATCH, DELETE"
JSON = "application/json"
MAX_CONTROL_BYTES = 4096


@router.patch("/session/{stream}/{session_id}", status_code=204,
              dependencies=[Depends(require_session())])
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


@router.delete("/session/{stream}/{session_id}", status_code=200)
async def delete_session(stream: str, session_id: str, request: Request,
                         claims: Annotated[Claims, Depends(require_session())]) -> Response:
    """End the session: ICE, DTLS and every resource it held (W26): 200 with no body, as in
    RFC 9725's figure (OBS logs a warning for any other status). If-Match is ignored.

    An admin ending a session opened with another credential kicks it (reason `kicked`).
    """
    manager = manager_of(request)
    session = manager.session(stream, session_id)
    kicked = (authenticator_of(request).enabled and claims.allows(Mode.ADMIN, stream)
              and claims.credential != session.owner)
    await manager.delete_session(stream, session_id,
                                 Reason.KICKED if kicked else Reason.API_DELETED)
    return Response(status_code=200)


def _media_control(text: str) -> tuple[str, bool]:
    """`{"kind": "audio"|"video", "enabled": bool}` (Live777's ChangeResource)."""
    body = parse_json(text.encode())
    if not isinstance(body, dict):
        raise Problem(400, 'body must be a JSON object {"kind": ..., "enabled": ...}')
    kind, enabled = body.get("kind"), body.get("enabled")
    if kind not in ("audio", "video"):
        raise Problem(400, '"kind" must be "audio" or "video"')
    if not isinstance(enabled, bool):
        raise Problem(400, '"enabled" must be true or false')
    return kind, enabled


@router.post("/session/{stream}/{session_id}", status_code=204,
             dependencies=[Depends(require_session())])
async def control_session(stream: str, session_id: str, request: Request) -> Response:
    """Mute (`enabled: false`) or unmute one kind of media for a subscriber: 204.

    Only a JSON body is this control; any other POST stays 405 as RFC 9725 §4.3 asks.
    A publisher session is 409; a kind the subscriber did not negotiate is 422.
    """
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != JSON:
        raise Problem(405, "POST on a session only takes a JSON media control "
                           '{"kind": "audio"|"video", "enabled": bool}',
                      headers={"Allow": SESSION_METHODS, "Accept-Post": JSON})
    kind, enabled = _media_control(await read_text_body(request, JSON, MAX_CONTROL_BYTES))
    manager_of(request).set_muted(stream, session_id, kind, not enabled)
    return Response(status_code=204)


@router.options("/session/{stream}/{session_id}")
async def session_options(stream: str, session_id: str) -> Response:
    response = Response(status_code=200)
    response.headers["Accept-Patch"] = SDPFRAG
    response.headers["Accept-Post"] = JSON
    response.headers["Allow"] = SESSION_METHODS
    return response


@router.api_route("/session/{stream}/{session_id}", methods=["GET", "HEAD", "PUT"],
                  include_in_schema=False)
async def session_reserved(request: Request) -> Response:
    """RFC 9725 §4.3: GET, HEAD and PUT on the session are reserved: 405 (POST: above)."""
    raise Problem(405, f"{request.method} is not supported on a session",
                  headers={"Allow": SESSION_METHODS})
