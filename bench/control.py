"""Commands between the orchestrator and its generator processes (multiprocessing pipes)."""

from __future__ import annotations

import asyncio
from multiprocessing.connection import Connection
from typing import Any


async def receive(conn: Connection) -> Any:
    """Await the next message on a pipe without blocking the event loop."""
    if not conn.poll():
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        fd = conn.fileno()

        def readable() -> None:
            loop.remove_reader(fd)
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(fd, readable)
        try:
            await ready
        finally:
            loop.remove_reader(fd)
    return conn.recv()
