"""The FastAPI application: the cluster objects, routers, error mapping and lifespan."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from liveion.app import CorsMiddleware, mount_web
from liveion.http.common import problem_response

from . import __version__
from .accounts import Accounts, LoginLimiter
from .cascade import Cascades
from .config import Settings
from .db import Database
from .http import admin, auth, nodes, signaling, streams
from .http import record as record_routes
from .http.openapi import DOCS_URL, OPENAPI_URL, document_api
from .metrics import Metrics
from .nodes import NodeRegistry
from .proxy import NodeClient
from .recordings import Recordings
from .signaling import ClusterError, Signaling

logger = logging.getLogger(__name__)


@dataclass
class Cluster:
    """Everything the routers reach through ``request.app.state.cluster``."""

    settings: Settings
    db: Database
    client: NodeClient
    registry: NodeRegistry
    cascades: Cascades
    signaling: Signaling
    metrics: Metrics
    accounts: Accounts
    login_limiter: LoginLimiter
    recordings: Recordings
    started_at: float = field(default_factory=time.time)


def build_cluster(settings: Settings) -> Cluster:
    db = Database(settings.database.effective_url,
                  max_connections=settings.database.max_connections,
                  connect_timeout=settings.database.connect_timeout)
    client = NodeClient(settings.cluster.connect_timeout_ms / 1000,
                        settings.cluster.request_timeout_ms / 1000)
    metrics = Metrics()
    registry = NodeRegistry(settings, db, client)
    cascades = Cascades(settings.cascade, db, registry, client, metrics)
    return Cluster(
        settings=settings, db=db, client=client, registry=registry, cascades=cascades,
        signaling=Signaling(db, registry, client, cascades, metrics), metrics=metrics,
        accounts=Accounts(settings.auth.accounts),
        login_limiter=LoginLimiter(settings.auth.login_max_failures,
                                   settings.auth.login_window_seconds),
        recordings=Recordings(settings, db, registry, client))


def _warn_unsupported(settings: Settings) -> None:
    if settings.net4mqtt is not None:
        logger.warning("[net4mqtt] is accepted for Live777 compatibility but not supported; "
                       "list nodes in [[nodes]] or let them register with [liveman]")
    if settings.extra_ice.cloudflare is not None:
        logger.warning("[extra_ice.cloudflare] is not supported (liveman does not call "
                       "Cloudflare's API); use [[extra_ice.ice_servers]] or [extra_ice.coturn]")


def create_app(settings: Settings) -> FastAPI:
    cluster = build_cluster(settings)
    _warn_unsupported(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await cluster.db.open()
        await cluster.registry.start()
        cluster.cascades.start()
        await cluster.recordings.start()
        # The object route serves bytes through liveion's handler, which reads this.
        app.state.storage = cluster.recordings.storage
        logger.info("liveman listening on %s (public %s), database %s, %d configured nodes",
                    settings.http.listen, settings.http.public_url, cluster.db.display_url,
                    len(settings.all_nodes))
        try:
            yield
        finally:
            await cluster.recordings.stop()
            await cluster.cascades.stop()
            await cluster.registry.stop()
            await cluster.client.close()
            await cluster.db.close()

    app = FastAPI(title="liveman", version=__version__, lifespan=lifespan,
                  description="Cluster manager for liveion nodes (the Live777 liveman API)",
                  docs_url=DOCS_URL, openapi_url=OPENAPI_URL, redoc_url=None)
    document_api(app)
    app.state.cluster = cluster
    app.state.settings = settings  # liveion's auth dependencies read [auth] from here

    @app.exception_handler(ClusterError)
    async def cluster_error(request: Request, exc: ClusterError) -> Response:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        return problem_response(exc.status, exc.detail, headers)

    @app.exception_handler(SQLAlchemyError)
    async def database_error(request: Request, exc: SQLAlchemyError) -> Response:
        # The database is restarting or refusing connections: a retryable 503 that says
        # so, not a bare 500 (the pool reconnects once it is back).
        logger.warning("database error on %s %s: %s", request.method, request.url.path,
                       str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return problem_response(503, "the database is unavailable; try again shortly",
                                {"Retry-After": "2"})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers) if exc.headers else None
        return problem_response(exc.status_code, str(exc.detail), headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return problem_response(400, "; ".join(str(e.get("msg")) for e in exc.errors()))

    for module in (signaling, nodes, streams, auth, admin, record_routes):
        app.include_router(module.router)
    mount_web(app)
    if settings.http.cors:
        app.add_middleware(CorsMiddleware)
    return app
