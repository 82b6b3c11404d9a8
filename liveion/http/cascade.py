"""`POST /api/cascade/{stream}`: pull a stream from, or push it to, another node (Live777)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from ..auth import Mode
from ..cascade import Cascades, CascadeUrlError, Direction, parse_endpoint
from .common import Problem, check_stream_name
from .deps import require

router = APIRouter(tags=["cascade"])


class CascadeRequest(BaseModel):
    """Live777's body: exactly one of `sourceUrl` (pull) and `targetUrl` (push)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source_url: str | None = Field(default=None, alias="sourceUrl")
    """The remote WHEP endpoint to pull from: `http(s)://host:port/whep/S`."""
    target_url: str | None = Field(default=None, alias="targetUrl")
    """The remote WHIP endpoint to push to: `http(s)://host:port/whip/S`."""
    token: str | None = None
    """Sent to the remote node as `Authorization: Bearer <token>`."""


def cascades_of(request: Request) -> Cascades:
    cascades: Cascades = request.app.state.cascades
    return cascades


@router.post("/api/cascade/{stream}", dependencies=[Depends(require(Mode.ADMIN))])
async def cascade(stream: str, body: CascadeRequest, request: Request) -> dict[str, Any]:
    """Start a cascade; 200 once the remote node accepted the session.

    400 for neither or both URLs or an unusable URL, 404 for a push of an unknown stream,
    409 for a pull into a stream that already has a publisher, 502 when the remote node
    cannot be reached or refuses.
    """
    check_stream_name(stream)
    if (body.source_url is None) == (body.target_url is None):
        raise Problem(400, "give exactly one of sourceUrl (pull over WHEP) and targetUrl "
                           "(push over WHIP)")
    direction = Direction.PULL if body.source_url is not None else Direction.PUSH
    url = body.source_url if body.source_url is not None else body.target_url
    assert url is not None
    try:
        endpoint = parse_endpoint(url, direction, body.token)
    except CascadeUrlError as exc:
        raise Problem(400, str(exc)) from None
    cascades = cascades_of(request)
    if direction is Direction.PULL:
        session = await cascades.pull(stream, endpoint)
    else:
        session = await cascades.push(stream, endpoint)
    info = session.cascade
    return {"session": session.id, "sessionUrl": info.session_url if info else None}
