"""`POST /api/cascade/{stream}`: pull a stream from, or push it to, another node (Live777)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import TypeAdapter, ValidationError

from liveapi.types import CascadeRequest, CascadeResponse

from ..auth import Mode
from ..cascade import Cascades, CascadeUrlError, Direction, own_addresses, parse_endpoint, points_at
from .common import Problem, check_stream_name, read_json
from .deps import require, settings_of

router = APIRouter(tags=["cascade"])

_request_adapter: TypeAdapter[CascadeRequest] = TypeAdapter(CascadeRequest)


def cascades_of(request: Request) -> Cascades:
    cascades: Cascades = request.app.state.cascades
    return cascades


async def _cascade_request(request: Request) -> CascadeRequest:
    try:
        return _request_adapter.validate_python(await read_json(request))
    except ValidationError as exc:
        raise Problem(400, "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}"
                                     for e in exc.errors())) from None


@router.post("/api/cascade/{stream}", dependencies=[Depends(require(Mode.ADMIN))])
async def cascade(stream: str, request: Request) -> CascadeResponse:
    """Start a cascade; 200 once the remote node accepted the session.

    The body is a `CascadeRequest`. 400 for neither or both URLs, an unusable URL or one
    that points back at this node, 404 for a push of an unknown stream, 409 for a pull into
    a stream that already has a publisher, 502 when the remote node cannot be reached or
    refuses.
    """
    check_stream_name(stream)
    body = await _cascade_request(request)
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
    own = own_addresses(settings_of(request), request.url.hostname, request.url.port
                        or (443 if request.url.scheme == "https" else 80))
    if points_at(endpoint, own):
        raise Problem(400, f"{url!r} points at this node: a node cannot cascade a stream "
                           "from or to itself")
    cascades = cascades_of(request)
    if direction is Direction.PULL:
        session = await cascades.pull(stream, endpoint)
    else:
        session = await cascades.push(stream, endpoint)
    info = session.cascade
    return {"session": session.id, "sessionUrl": info.session_url if info else None}
