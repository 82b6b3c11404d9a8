"""liveion served from the test's own event loop, so a test can look inside it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from conftest import free_port

from liveion.app import create_app
from liveion.config import load_settings


@contextlib.asynccontextmanager
async def serve_inprocess(**overrides: Any) -> AsyncIterator[tuple[str, Any]]:
    """Yields (base URL, FastAPI app) of a node on loopback; `overrides` are settings
    sections, e.g. ``auth={"tokens": ["t"]}``."""
    port = free_port()
    settings = load_settings(None, http={"listen": f"127.0.0.1:{port}"},
                             webrtc={"ice_udp_addrs": ["127.0.0.1"]}, **overrides)
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        await task
