"""Status for operators: `/metrics`, `/healthz`, `/readyz`, `/api/info` (no credentials:
probes and scrapers carry none)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .. import __version__
from .common import cluster_of

router = APIRouter(tags=["admin"])


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    cluster = cluster_of(request)
    counts = {"running": 0, "stopped": 0}
    try:
        for node in await cluster.registry.states():
            counts["running" if node.alive else "stopped"] += 1
    except Exception:  # the database is away: the other metrics still tell something
        pass
    for status, value in counts.items():
        cluster.metrics.nodes.labels(status).set(value)
    return Response(generate_latest(cluster.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    """200 while the database answers; 503 with the reason otherwise."""
    problem = await cluster_of(request).db.ping()
    if problem is not None:
        return JSONResponse({"status": "unavailable", "reason": f"database: {problem}"},
                            status_code=503, headers={"Retry-After": "5"})
    return JSONResponse({"status": "ok"})


@router.get("/api/info")
async def info(request: Request) -> dict[str, Any]:
    cluster = cluster_of(request)
    return {"version": __version__, "gitHash": "", "buildTime": "",
            "features": ["cluster", "cascade", "recorder", "metrics", "sse"],
            "database": cluster.db.dialect, "uptime": int(time.time() - cluster.started_at)}
