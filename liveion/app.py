"""The FastAPI application: routers, error mapping, CORS, the web UI, and the manager's lifespan."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import __version__, metrics
from .cascade import Cascades
from .config import Settings
from .hooks import HookRunner
from .http import admin, record, session, signaling, snapshot, sse, streams
from .http.cascade import router as cascade_router
from .http.common import problem_response
from .http.openapi import DOCS_URL, LIVEION, OPENAPI_URL, serve_api_doc
from .liveman_client import LivemanClient
from .ratelimit import RateLimitMiddleware
from .recorder.service import open_recorder
from .sfu import peer
from .sfu.manager import ManagerError, StreamManager
from .sfu.sdp import SdpError
from .snapshot import Snapshots
from .webhooks import WebhookDispatcher

logger = logging.getLogger(__name__)

def web_dir() -> Path | None:
    """The web UI: beside the package in a checkout or editable install, else ./web."""
    for candidate in (Path(__file__).resolve().parent.parent / "web", Path.cwd() / "web"):
        if (candidate / "index.html").is_file():
            return candidate
    return None


def mount_web(app: FastAPI) -> None:
    """The web UI at `/`, and dash.js from npm (`npm ci` puts it in node_modules beside web/)
    at `/vendor/dashjs/` for the recordings page; without it that page says so."""
    web = web_dir()
    if web is None:
        return
    dashjs = web.parent / "node_modules" / "dashjs" / "dist"
    if dashjs.is_dir():
        app.mount("/vendor/dashjs", StaticFiles(directory=dashjs), name="vendor-dashjs")
    app.mount("/", StaticFiles(directory=web, html=True), name="web")

CORS_HEADERS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"GET, POST, PATCH, DELETE, OPTIONS, HEAD"),
    (b"access-control-allow-headers", b"Authorization, Content-Type, If-Match, Link"),
    (b"access-control-expose-headers",
     b"Location, ETag, Link, Accept-Patch, Accept-Post, Retry-After, Allow"),
    (b"access-control-max-age", b"86400"),
]


class CorsMiddleware:
    """Adds CORS headers to every response (`[http] cors = true`).

    Preflights reach the routers, so an OPTIONS answer still carries `Accept-Post` (W3).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + CORS_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_cors)


def create_app(settings: Settings) -> FastAPI:
    peer.install(
        ice_udp_addrs=settings.webrtc.ice_udp_addrs,
        ice_lite=settings.webrtc.ice_lite,
        consent_interval_ms=settings.webrtc.consent_interval_ms,
        peer_timeout_ms=settings.webrtc.peer_timeout_ms,
        policy=peer.CodecPolicy(video=tuple(settings.sdp.video_codecs),
                                audio=tuple(settings.sdp.audio_codecs)),
    )
    manager = StreamManager(settings)
    cascades = Cascades(manager)
    # Event consumers listen from the start, so they see every event the manager emits.
    health = admin.Health()
    event_feed = sse.EventFeed(manager.events)
    hook_runner = HookRunner(settings, manager.events)
    webhook_sender = WebhookDispatcher(settings.webhook, manager.events,
                                       node=settings.recorder.node_alias or socket.gethostname())
    snapshots = Snapshots(manager, manager.events)
    liveman = LivemanClient(settings, manager)  # [liveman]: off without a url

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        manager.start()
        cascades.start()  # [[stream.X.sources]] / [[stream.X.targets]]
        hook_runner.start()
        webhook_sender.start()
        health.watch_signals()
        health.start()
        recorder = app.state.recorder = await open_recorder(settings.recorder, manager)
        app.state.storage = recorder.storage if recorder is not None else None
        liveman.start()  # last: liveman may send viewers here as soon as it hears of us
        try:
            yield
        finally:
            health.begin_shutdown()
            await liveman.stop()  # first: liveman stops placing sessions here
            if recorder is not None:
                await recorder.stop()  # finishes every part: static manifests, index updated
            snapshots.close()
            await cascades.stop()  # DELETEs the remote sessions while the loop still runs
            await manager.stop()  # emits the last events (stream-deleted, reason shutdown)
            await asyncio.gather(hook_runner.stop(), webhook_sender.stop())
            health.unwatch_signals()

    app = FastAPI(title="liveion", version=__version__, lifespan=lifespan,
                  description="WHIP/WHEP SFU node with the Live777 API",
                  docs_url=DOCS_URL, openapi_url=OPENAPI_URL, redoc_url=None)
    serve_api_doc(app, LIVEION, rate_limited=settings.limits.rate_limit > 0)
    app.state.settings = settings
    app.state.manager = manager
    app.state.cascades = cascades
    app.state.health = health
    app.state.event_feed = event_feed
    app.state.metrics = metrics.build_registry(manager)
    app.state.snapshots = snapshots
    app.state.liveman = liveman
    app.state.recorder = app.state.storage = None

    @app.exception_handler(ManagerError)
    async def manager_error(request: Request, exc: ManagerError) -> Response:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        return problem_response(exc.status, exc.reason, headers)

    @app.exception_handler(SdpError)
    async def sdp_error(request: Request, exc: SdpError) -> Response:
        return problem_response(exc.status, exc.reason)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers) if exc.headers else None
        return problem_response(exc.status_code, str(exc.detail), headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return problem_response(400, "; ".join(str(e.get("msg")) for e in exc.errors()))

    app.include_router(signaling.router)
    app.include_router(session.router)
    app.include_router(snapshot.router)
    app.include_router(streams.router)
    app.include_router(record.router)
    app.include_router(cascade_router)
    app.include_router(sse.router)
    app.include_router(admin.router)
    mount_web(app)
    if settings.limits.rate_limit > 0:
        app.add_middleware(RateLimitMiddleware, rate=settings.limits.rate_limit,
                           burst=settings.limits.rate_burst, exempt_tokens=settings.auth.tokens)
    if settings.http.cors:  # added last, so it is outermost: 429s carry CORS headers too
        app.add_middleware(CorsMiddleware)
    return app
