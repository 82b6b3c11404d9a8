"""What this node tells liveman about itself: identity, credentials and load (sans-IO).

The heartbeat is built here from plain values (streams, strategy, a CPU share, `now`);
`liveman_client.py` owns the clock, the timer and the HTTP. The wire shape is
`liveapi.types.NodeHeartbeat`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable

from liveapi.types import NodeHeartbeat, NodeLoad, StrategyJson

from . import __version__
from .auth import FULL, mint
from .config import AuthConfig, Settings, StrategyConfig
from .http.streams import stream_json
from .sfu.stream import Stream

__all__ = ["TOKEN_LIFETIME", "CpuSampler", "advertises_wildcard", "build_heartbeat",
           "node_alias", "node_load", "node_token", "public_url", "strategy_json"]

TOKEN_LIFETIME = 3600
"""Seconds a minted admin JWT for liveman stays valid; a fresh one goes with every beat."""

_WILDCARD_HOSTS = ("0.0.0.0", "::")
_NOT_ALIAS_CHAR = re.compile(r"[^A-Za-z0-9_.:-]")


def node_alias(settings: Settings, hostname: str) -> str:
    """`[liveman] alias`, else `[recorder] node_alias`, else `<hostname>:<port>` (reduced
    to the characters liveman accepts, at most 64)."""
    if settings.liveman.alias:
        return settings.liveman.alias
    if settings.recorder.node_alias:
        return settings.recorder.node_alias
    port = f":{settings.http.port}"
    host = _NOT_ALIAS_CHAR.sub("-", hostname)[: 64 - len(port)] or "liveion"
    return host + port


def public_url(settings: Settings) -> str:
    """`[liveman] public_url`, else `http://<listen host>:<port>` with a wildcard host
    replaced by loopback (right for a liveman on the same host only)."""
    if settings.liveman.public_url:
        return settings.liveman.public_url
    host = settings.http.host
    if host in _WILDCARD_HOSTS:
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.http.port}"


def advertises_wildcard(settings: Settings) -> bool:
    """The public URL was derived from a wildcard listen address (so it says loopback)."""
    return not settings.liveman.public_url and settings.http.host in _WILDCARD_HOSTS


def node_token(auth: AuthConfig, now: int) -> str:
    """What liveman must send to this node: the first static token; with only a secret, an
    all-streams admin JWT valid for `TOKEN_LIFETIME` seconds from `now`; "" with auth off."""
    if auth.tokens:
        return auth.tokens[0]
    if auth.secret:
        return mint(auth.secret, "*", FULL, exp=now + TOKEN_LIFETIME)
    return ""


def node_load(streams: Iterable[Stream], cpu: float) -> NodeLoad:
    sessions = 0
    bitrate = 0
    subscribers: dict[str, int] = {}
    for stream in streams:
        found = stream.sessions()
        sessions += len(found)
        bitrate += sum(s.bitrate for s in found)  # publisher in + subscribers out
        subscribers[stream.name] = len(stream.subscribers)
    return {"sessions": sessions, "subscribers": subscribers, "bitrate": bitrate, "cpu": cpu}


def strategy_json(strategy: StrategyConfig) -> StrategyJson:
    return {
        "each_stream_max_sub": strategy.each_stream_max_sub,
        "cascade_push_close_sub": strategy.cascade_push_close_sub,
        "auto_create_whip": strategy.auto_create_whip,
        "auto_create_whep": strategy.auto_create_whep,
        "auto_delete_whip": strategy.auto_delete_whip,
        "auto_delete_whep": strategy.auto_delete_whep,
    }


def build_heartbeat(*, alias: str, url: str, token: str, strategy: StrategyConfig,
                    streams: Iterable[Stream], cpu: float,
                    version: str = __version__) -> NodeHeartbeat:
    """The body of `POST /api/nodes/heartbeat`; `streams` as an admin's `GET /api/streams/`
    shows them."""
    listed = list(streams)
    return {
        "alias": alias,
        "url": url,
        "token": token,
        "strategy": strategy_json(strategy),
        "load": node_load(listed, cpu),
        "streams": [stream_json(s) for s in listed],
        "version": version,
    }


class CpuSampler:
    """Share of one core this process used between two calls of `sample()` (1.0 = one
    core). The clocks are injectable: process CPU seconds and wall seconds."""

    def __init__(self, cpu_seconds: Callable[[], float] = time.process_time,
                 wall_seconds: Callable[[], float] = time.monotonic) -> None:
        self._cpu_seconds = cpu_seconds
        self._wall_seconds = wall_seconds
        self._last = (cpu_seconds(), wall_seconds())

    def sample(self) -> float:
        cpu, wall = self._cpu_seconds(), self._wall_seconds()
        last_cpu, last_wall = self._last
        self._last = (cpu, wall)
        if wall <= last_wall:
            return 0.0
        return round(max(cpu - last_cpu, 0.0) / (wall - last_wall), 3)
