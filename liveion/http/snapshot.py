"""`GET /api/streams/{stream}/snapshot.jpg`: the latest keyframe of a live stream as a JPEG."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ..auth import Mode
from ..snapshot import Snapshots
from .deps import require

router = APIRouter(tags=["streams"])


@router.get("/api/streams/{stream}/snapshot.jpg",
            dependencies=[Depends(require(Mode.SUBSCRIBE))],
            response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}}, 404: {}})
async def snapshot(stream: str, request: Request) -> Response:
    """404 while the stream has no publisher, no video, or has sent no keyframe yet."""
    snapshots: Snapshots = request.app.state.snapshots
    jpeg = await snapshots.jpeg(stream)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-cache"})
