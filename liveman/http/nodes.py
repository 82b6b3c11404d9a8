"""The node list (Live777's shape plus liveness and load) and self-registration."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import ValidationError

from liveapi.types import heartbeat_adapter
from liveion.auth import Mode
from liveion.config import is_node_alias
from liveion.http.common import Problem, read_json
from liveion.http.deps import require

from ..nodes import NodeState
from .common import cluster_of

router = APIRouter(prefix="/api/nodes", tags=["nodes"])

MAX_HEARTBEAT_BYTES = 4 * 1024 * 1024
"""A heartbeat lists every stream of the node with its sessions: larger than other bodies."""


def node_json(node: NodeState, now: float) -> dict[str, Any]:
    latency = f"{node.latency_ms:.0f}ms" if node.latency_ms is not None and node.alive else "-"
    out: dict[str, Any] = {
        "alias": node.alias,
        "url": node.url,
        "status": "running" if node.alive else "stopped",
        "duration": latency,
        "kind": node.kind,
        "mode": node.mode,
        "lastSeen": int(node.last_seen * 1000) if node.last_seen is not None else None,
        "latency": node.latency_ms,
        "load": node.load,
        "streams": len(node.streams),
        "error": node.error,
    }
    if node.strategy is not None:
        out["strategy"] = node.strategy
    return out


@router.get("/", dependencies=[Depends(require(Mode.ADMIN))])
async def list_nodes(request: Request) -> list[dict[str, Any]]:
    now = time.time()
    return [node_json(n, now) for n in await cluster_of(request).registry.states()]


@router.post("/heartbeat", status_code=204, dependencies=[Depends(require(Mode.ADMIN))])
async def heartbeat(request: Request) -> Response:
    """A liveion with a `[liveman]` section registers itself and reports its load."""
    data = await read_json(request, MAX_HEARTBEAT_BYTES)
    try:
        beat = heartbeat_adapter.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise Problem(400, f"heartbeat: {where}: {first['msg']}") from None
    if not is_node_alias(beat["alias"]):
        raise Problem(400, "alias: use 1-64 characters from A-Za-z0-9_.:-")
    if not beat["url"].startswith(("http://", "https://")):
        raise Problem(400, "url: must be an http:// or https:// URL")
    await cluster_of(request).registry.heartbeat(beat)
    return Response(status_code=204)


@router.delete("/{alias}", status_code=204, dependencies=[Depends(require(Mode.ADMIN))])
async def deregister(alias: str, request: Request) -> Response:
    """A self-registered node leaves (configured nodes stay in the list)."""
    if not await cluster_of(request).registry.deregister(alias):
        raise Problem(404, f"no self-registered node '{alias}'")
    return Response(status_code=204)
