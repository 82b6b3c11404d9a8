"""`POST /api/cascade/{stream}`: pull a stream from, or push it to, another node (Live777)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from liveapi.types import CascadeRequest, CascadeResponse

from ..auth import Mode
from ..cascade import Cascades, CascadeUrlError, Direction, parse_endpoint
from .common import Problem, check_stream_name
from .deps import require

router = APIRouter(tags=["cascade"])


def cascades_of(request: Request) -> Cascades:
    cascades: Cascades = request.app.state.cascades
    return cascades


@router.post("/api/cascade/{stream}", dependencies=[Depends(require(Mode.ADMIN))])
async def cascade(stream: str, body: CascadeRequest, request: Request) -> CascadeResponse:
    """Start a cascade; 200 once the remote node accepted the session.

    400 for neither or both URLs or an unusable URL, 404 for a push of an unknown stream,
    409 for a pull into a stream that already has a publisher, 502 when the remote node
    cannot be reached or refuses.
    """
    check_stream_name(stream)
    source_url, target_url = body.get("sourceUrl"), body.get("targetUrl")
    if (source_url is None) == (target_url is None):
        raise Problem(400, "give exactly one of sourceUrl (pull over WHEP) and targetUrl "
                           "(push over WHIP)")
    direction = Direction.PULL if source_url is not None else Direction.PUSH
    url = source_url if source_url is not None else target_url
    assert url is not None
    try:
        endpoint = parse_endpoint(url, direction, body.get("token"))
    except CascadeUrlError as exc:
        raise Problem(400, str(exc)) from None
    cascades = cascades_of(request)
    if direction is Direction.PULL:
        session = await cascades.pull(stream, endpoint)
    else:
        session = await cascades.push(stream, endpoint)
    info = session.cascade
    return {"session": session.id, "sessionUrl": info.session_url if info else None}
