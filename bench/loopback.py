"""Process setup shared by every load-generator process: loopback-only ICE, CPU pinning, uvloop."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

LOOPBACK = "127.0.0.1"


def loopback_ice() -> None:
    """Gather ICE host candidates on 127.0.0.1 only: no benchmark traffic leaves loopback."""
    import aioice.ice

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [LOOPBACK] if use_ipv4 else []

    aioice.ice.get_host_addresses = host_addresses


def pin_to(core: int | None) -> None:
    """Pin this process (and the threads it starts later) to one CPU core."""
    if core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})


def quiet_logs() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    for name in ("aioice", "aiortc"):
        logging.getLogger(name).setLevel(logging.ERROR)


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run under uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def setup_generator_process(core: int | None) -> None:
    """Everything a publisher or subscriber worker process does before it starts its loop."""
    pin_to(core)
    quiet_logs()
    loopback_ice()
