"""Access to the per-application objects from a request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from ..auth import Mode
from ..config import Settings
from ..sfu.manager import StreamManager


def manager_of(request: Request) -> StreamManager:
    manager: StreamManager = request.app.state.manager
    return manager


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def require(mode: Mode) -> Callable[[Request], Awaitable[None]]:
    """A route dependency: the request must carry a token allowing `mode` on the stream named
    by the route's ``{stream}`` parameter (or on every stream when the route has none).

    Stub until auth lands: allows everything.
    """

    async def check(request: Request) -> None:
        return None

    return check
