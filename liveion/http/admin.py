"""Node status for operators and orchestrators: `/metrics`, `/api/info`, `/healthz`,
`/readyz` and `/api/strategy/`.

`/metrics`, `/api/info`, `/healthz` and `/readyz` need no credentials (probes and scrapers
carry none); `/api/strategy/` is an admin route, as in Live777.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.routing import Mount

from .. import __version__
from ..auth import Mode
from ..config import Settings
from .deps import manager_of, require, settings_of

logger = logging.getLogger(__name__)

router = APIRouter(tags=["admin"])

ReadinessCheck = Callable[[], str | None]
"""Returns None when all is well, else why the node cannot take sessions now."""

ALWAYS_FEATURES = ("metrics", "sse", "hooks", "webhook")
# Route paths that exist only when that part of the node is there.
FEATURE_ROUTES = {
    "/api/record/": "recorder",
    "/api/cascade/": "cascade",
    "/snapshot.jpg": "snapshot",
}


class Health:
    """Whether this node should get traffic.

    Ready once the manager is started, until shutdown begins; in between, each registered
    check (e.g. the recorder's storage) may say why not. A SIGINT/SIGTERM marks shutdown at
    once (before the server stops accepting), so `/readyz` fails while the node drains and
    open SSE feeds end instead of holding the server up.
    """

    def __init__(self) -> None:
        self.started = False
        self.stopping_reason: str | None = None
        self.closing = asyncio.Event()
        self._checks: dict[str, ReadinessCheck] = {}
        self._restore: list[tuple[int, Any]] = []

    def add_check(self, name: str, check: ReadinessCheck) -> Callable[[], None]:
        """Register a readiness check; returns the function that removes it."""
        self._checks[name] = check

        def remove() -> None:
            self._checks.pop(name, None)

        return remove

    def start(self) -> None:
        self.started = True

    def begin_shutdown(self, reason: str = "shutting down") -> None:
        if self.stopping_reason is None:
            self.stopping_reason = reason
        self.closing.set()

    def not_ready_reason(self) -> str | None:
        if self.stopping_reason is not None:
            return self.stopping_reason
        if not self.started:
            return "starting"
        for name, check in list(self._checks.items()):
            try:
                problem = check()
            except Exception as exc:  # a broken check must say so, not break the probe
                problem = f"check failed: {exc}"
            if problem:
                return f"{name}: {problem}"
        return None

    def watch_signals(self) -> None:
        """Chain onto the server's SIGINT/SIGTERM handlers (uvicorn installs them with
        `signal.signal`) so shutdown is known here the moment it is asked for."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                previous = signal.getsignal(sig)
            except ValueError:
                return
            if not callable(previous):
                continue  # not under a server that handles it: leave the default alone

            def handler(signum: int, frame: FrameType | None,
                        previous: Callable[[int, FrameType | None], Any] = previous) -> None:
                loop.call_soon_threadsafe(self.begin_shutdown)
                previous(signum, frame)

            try:
                signal.signal(sig, handler)
            except ValueError:  # not the main thread
                return
            self._restore.append((sig, previous))

    def unwatch_signals(self) -> None:
        for sig, previous in self._restore:
            with contextlib.suppress(ValueError):
                signal.signal(sig, previous)
        self._restore.clear()


def health_of(request: Request) -> Health:
    health: Health = request.app.state.health
    return health


def _git_hash() -> str:
    """The commit of a source checkout, read from .git without running git."""
    git = Path(__file__).resolve().parents[2] / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        if (git / ref).is_file():
            return (git / ref).read_text().strip()
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split(" ", 1)[0]
    except OSError:
        pass
    return "unknown"


def _build_time() -> str:
    """When the package files were written (install or checkout), RFC 3339."""
    try:
        mtime = Path(__file__).resolve().parents[1].joinpath("__init__.py").stat().st_mtime
    except OSError:
        return ""
    return datetime.fromtimestamp(mtime, UTC).isoformat().replace("+00:00", "Z")


GIT_HASH = _git_hash()
BUILD_TIME = _build_time()


def node_features(app: FastAPI) -> list[str]:
    """What this node offers, read from what is actually routed (the OpenAPI paths, which
    FastAPI builds once and caches)."""
    found = set(ALWAYS_FEATURES)
    try:
        paths = list(app.openapi().get("paths", {}))
    except Exception:  # a schema problem elsewhere must not break /api/info
        logger.exception("cannot list the routes for /api/info")
        paths = []
    for part, feature in FEATURE_ROUTES.items():
        if any(part in path for path in paths):
            found.add(feature)
    if any(isinstance(route, Mount) and route.name == "web" for route in app.routes):
        found.add("webui")
    settings: Settings = app.state.settings
    if settings.auth.tokens or settings.auth.secret:
        found.add("auth")
    return sorted(found)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus text format; read from the manager now, in the event loop."""
    registry: CollectorRegistry = request.app.state.metrics
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/info")
async def info(request: Request) -> dict[str, Any]:
    """Live777's `ServerInfo`: version, build and the features this node has."""
    return {"version": __version__, "gitHash": GIT_HASH, "buildTime": BUILD_TIME,
            "features": node_features(request.app)}


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process is up and its event loop answers."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    """Readiness: 200 when the node takes sessions, else 503 with the reason."""
    reason = health_of(request).not_ready_reason()
    manager = manager_of(request)
    if reason is None:
        limit = settings_of(request).limits.max_sessions
        sessions = sum(len(s.sessions()) for s in list(manager.streams.values()))
        if limit and sessions >= limit:
            reason = f"full: {sessions} of {limit} sessions"
    if reason is not None:
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503,
                            headers={"Retry-After": "5"})
    return JSONResponse({"status": "ready"})


@router.get("/api/strategy/", dependencies=[Depends(require(Mode.ADMIN))])
async def strategy(request: Request) -> dict[str, Any]:
    """The effective `[strategy]` (Live777's `Strategy` JSON)."""
    return settings_of(request).strategy.model_dump()
