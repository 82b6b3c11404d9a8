"""Dashboard login and per-stream token minting."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from liveapi.types import TokenResponse
from liveion.auth import Mode, mint
from liveion.http.common import Problem, read_json_object
from liveion.http.deps import require

from .common import cluster_of

router = APIRouter(prefix="/api", tags=["auth"])

LOGIN_TTL_S = 24 * 3600
MAX_TOKEN_DURATION_S = 366 * 24 * 3600


def _error(status: int, error: str, headers: dict[str, str] | None = None) -> JSONResponse:
    # Live777's body is {"error": …}; `detail` and `status` make it problem+json as well.
    return JSONResponse({"error": error, "detail": error, "status": status},
                        status_code=status, headers=headers,
                        media_type="application/problem+json")


async def _json_object(request: Request) -> dict[str, Any]:
    return await read_json_object(request, limit=4096)


@router.post("/login")
async def login(request: Request) -> JSONResponse:
    """`{"username", "password"}` → a 24 h admin token for the dashboard."""
    cluster = cluster_of(request)
    address = request.client.host if request.client else "?"
    wait = cluster.login_limiter.retry_after(address)
    if wait is not None:
        return _error(429, "too many failed logins; try again later",
                      {"Retry-After": str(wait)})
    data = await _json_object(request)
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username:
        return _error(400, "Missing credentials")
    # argon2 takes tens of ms of CPU: off the event loop.
    ok = await asyncio.to_thread(cluster.accounts.verify, username, password)
    if not ok:
        cluster.login_limiter.failed(address)
        return _error(401, "Wrong credentials")
    cluster.login_limiter.succeeded(address)
    token = mint(cluster.settings.auth.secret, "*", Mode.ADMIN | Mode.PUBLISH | Mode.SUBSCRIBE,
                 exp=int(time.time()) + LOGIN_TTL_S)
    answer: TokenResponse = {"access_token": token, "token_type": "Bearer"}
    return JSONResponse(answer)


@router.post("/token", dependencies=[Depends(require(Mode.ADMIN))])
async def token(request: Request) -> TokenResponse:
    """`{"id", "duration", "subscribe", "publish", "admin"}` → a JWT for one stream (or
    `*`), signed with `[auth] secret`, which nodes sharing the secret accept."""
    secret = cluster_of(request).settings.auth.secret
    if not secret:
        raise Problem(409, "set [auth] secret to mint tokens")
    data = await _json_object(request)
    stream, duration = data.get("id"), data.get("duration", 3600)
    if not isinstance(stream, str) or not stream:
        raise Problem(400, "id: the stream name (or \"*\") is required")
    if (not isinstance(duration, int) or isinstance(duration, bool)
            or not 0 < duration <= MAX_TOKEN_DURATION_S):
        raise Problem(400, f"duration: seconds, 1 to {MAX_TOKEN_DURATION_S}")
    mode = Mode(0)
    for key, bit in (("subscribe", Mode.SUBSCRIBE), ("publish", Mode.PUBLISH),
                     ("admin", Mode.ADMIN)):
        value = data.get(key, False)
        if not isinstance(value, bool):
            raise Problem(400, f"{key}: must be true or false")
        if value:
            mode |= bit
    return {"access_token": mint(secret, stream, mode, exp=int(time.time()) + duration),
            "token_type": "Bearer"}
