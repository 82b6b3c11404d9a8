"""Access to the per-application objects from a request."""

from __future__ import annotations

from fastapi import Request

from ..config import Settings
from ..sfu.manager import StreamManager


def manager_of(request: Request) -> StreamManager:
    manager: StreamManager = request.app.state.manager
    return manager


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings
