"""The node registry: configured and self-registered nodes, their liveness and load.

State lives in the database, so every liveman replica sees the same nodes: each replica
polls (or follows the SSE feed of) the configured nodes and writes what it learns;
self-registered nodes heartbeat to whichever replica their requests reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from liveapi.types import NodeHeartbeat, StreamJson, strategy_adapter, streams_adapter

from .config import NodeConfig, Settings
from .db import Database, repo
from .db.models import Node
from .placement import NodeView, StreamLoad
from .proxy import NodeClient, NodeError, Target

logger = logging.getLogger(__name__)

DEFAULT_SUB_MAX = 65535
_GONE = ("disconnected", "failed", "closed")


@dataclass(frozen=True, slots=True)
class NodeState:
    """A node row as the routers and placement see it."""

    alias: str
    url: str
    token: str
    kind: str
    mode: str
    alive: bool
    last_seen: float | None
    latency_ms: float | None
    strategy: dict[str, Any] | None
    load: dict[str, Any] | None
    streams: list[StreamJson]
    error: str | None

    @property
    def target(self) -> Target:
        return Target(self.alias, self.url, self.token)

    @property
    def sub_max(self) -> int:
        value = (self.strategy or {}).get("each_stream_max_sub")
        return int(value) if isinstance(value, int) else DEFAULT_SUB_MAX


def _viewers(stream: StreamJson) -> int:
    return sum(1 for s in stream["subscribe"]["sessions"]
               if "cascade" not in s and s["state"] not in _GONE)


def stream_load(stream: StreamJson) -> StreamLoad:
    publishing = any(s["state"] not in _GONE for s in stream["publish"]["sessions"])
    return StreamLoad(publishing=publishing, viewers=_viewers(stream))


def load_from_streams(streams: list[StreamJson]) -> dict[str, Any]:
    """A polled node's load, in the heartbeat's shape (it reports no CPU)."""
    sessions = sum(len(s["publish"]["sessions"]) + len(s["subscribe"]["sessions"])
                   for s in streams)
    bitrate = sum(s["stats"]["publish"]["bitrate"] + s["stats"]["subscribe"]["bitrate"]
                  for s in streams)
    return {"sessions": sessions, "subscribers": {s["id"]: _viewers(s) for s in streams},
            "bitrate": bitrate, "cpu": 0.0}


@dataclass(frozen=True, slots=True)
class _Row:
    """A node row, with what placement derives from its stream list computed once."""

    alias: str
    url: str
    token: str
    kind: str
    mode: str
    last_seen: float | None
    latency_ms: float | None
    strategy: dict[str, Any] | None
    load: dict[str, Any] | None
    streams: list[StreamJson]
    error: str | None
    polled_at: float | None
    loads: dict[str, StreamLoad]
    listed: frozenset[str]
    """Ids of the sessions the node listed."""

    @classmethod
    def of(cls, row: Node) -> _Row:
        streams: list[StreamJson] = list(row.streams or [])  # type: ignore[arg-type]
        listed = frozenset(sess["id"] for st in streams for side in ("publish", "subscribe")
                           for sess in st[side]["sessions"])
        return cls(row.alias, row.url, row.token, row.kind, row.mode, row.last_seen,
                   row.latency_ms, row.strategy, row.load, streams, row.error, row.polled_at,
                   {st["id"]: stream_load(st) for st in streams}, listed)


@dataclass(frozen=True, slots=True)
class _Route:
    path: str
    stream: str
    alias: str
    role: str
    created_at: float


@dataclass(frozen=True, slots=True)
class _Placed:
    stream: str
    target: str
    created_at: float


@dataclass(slots=True)
class _Snapshot:
    loaded_at: float
    """time.monotonic() of the load."""
    rows: list[_Row]
    routes: list[_Route]
    cascades: list[_Placed]


class NodeRegistry:
    def __init__(self, settings: Settings, db: Database, client: NodeClient,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.db = db
        self.client = client
        self.clock = clock
        self.dead_after = settings.cluster.dead_after_ms / 1000
        self.cache_s = settings.cluster.state_cache_ms / 1000
        self._cache: _Snapshot | None = None
        self._cache_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Write the configured nodes to the database and start watching them."""
        now = self.clock()
        configured = self.settings.all_nodes
        async with self.db.session() as s:
            for node in configured:
                await repo.upsert_node(s, alias=node.alias, url=node.url, token=node.token,
                                       kind="static", mode=node.mode, now=now)
            await repo.delete_nodes_except(s, "static", [n.alias for n in configured])
        self.invalidate()
        for node in configured:
            watchers = [self._follow_sse, self._ping] if node.mode == "sse" else [self._poll]
            for watch in watchers:
                self._tasks.append(asyncio.create_task(watch(node), name=f"node-{node.alias}"))
        self._tasks.append(asyncio.create_task(self._forget_silent(), name="node-forget"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    # --- reading ---------------------------------------------------------------------

    async def _snapshot(self) -> _Snapshot:
        """The nodes, recent routes and cascades as of at most `state_cache_ms` ago.

        Placement reads this on every WHIP/WHEP; reading it from the database each time
        costs more than the rest of a placement. What this process writes itself (routes,
        cascades, node contacts) reaches it at once; other replicas' writes within the
        cache time."""
        cached = self._cache
        if cached is not None and time.monotonic() - cached.loaded_at < self.cache_s:
            return cached
        async with self._cache_lock:
            cached = self._cache
            if cached is not None and time.monotonic() - cached.loaded_at < self.cache_s:
                return cached
            loaded_at = time.monotonic()
            async with self.db.session() as s:
                rows = await repo.nodes(s)
                oldest = min((r.polled_at or 0.0 for r in rows), default=self.clock())
                routes = [_Route(r.path, r.stream, r.alias, r.role, r.created_at)
                          for r in await repo.routes_since(s, oldest)]
                cascades = [_Placed(c.stream, c.target_alias, c.created_at)
                            for c in await repo.cascades(s)]
            self._cache = _Snapshot(loaded_at, [_Row.of(r) for r in rows], routes, cascades)
            return self._cache

    def invalidate(self) -> None:
        """Forget the cached snapshot (after this process learned something new)."""
        self._cache = None

    def _heard(self, alias: str) -> None:
        """A node answered: a node the snapshot lacks or counts dead must be seen at once
        (placement would skip it); otherwise its news can wait for the next reload."""
        cached = self._cache
        if cached is None:
            return
        row = next((r for r in cached.rows if r.alias == alias), None)
        if row is None or row.last_seen is None or self.clock() - row.last_seen >= self.dead_after:
            self._cache = None

    def note_route(self, path: str, stream: str, alias: str, role: str, at: float) -> None:
        """A session this process just placed (already written to the database)."""
        if self._cache is not None:
            self._cache.routes.append(_Route(path, stream, alias, role, at))

    def note_cascade(self, stream: str, target: str, at: float) -> None:
        """A cascade this process just started (already written to the database)."""
        if self._cache is not None:
            self._cache.cascades.append(_Placed(stream, target, at))

    def _state(self, row: _Row, now: float) -> NodeState:
        alive = row.last_seen is not None and now - row.last_seen < self.dead_after
        return NodeState(row.alias, row.url, row.token, row.kind, row.mode, alive,
                         row.last_seen, row.latency_ms, row.strategy, row.load, row.streams,
                         row.error)

    async def states(self) -> list[NodeState]:
        now = self.clock()
        return [self._state(row, now) for row in (await self._snapshot()).rows]

    async def state(self, alias: str) -> NodeState | None:
        now = self.clock()
        for row in (await self._snapshot()).rows:
            if row.alias == alias:
                return self._state(row, now)
        return None

    async def views(self) -> list[NodeView]:
        """Placement's input: each node's snapshot plus what liveman placed on it since
        (sessions and cascades newer than the snapshot)."""
        snapshot = await self._snapshot()
        now = self.clock()
        views = []
        for row in snapshot.rows:
            state = self._state(row, now)
            loads = dict(row.loads)
            polled = row.polled_at or 0.0
            for r in snapshot.routes:
                if r.alias != row.alias or r.created_at < polled:
                    continue
                if r.path.rsplit("/", 1)[-1] in row.listed:
                    continue
                cur = loads.get(r.stream, StreamLoad(False, 0))
                loads[r.stream] = (StreamLoad(True, cur.viewers) if r.role == "publish"
                                   else StreamLoad(cur.publishing, cur.viewers + 1))
            for c in snapshot.cascades:
                if c.target == row.alias and c.created_at >= polled:
                    cur = loads.get(c.stream, StreamLoad(False, 0))
                    loads[c.stream] = StreamLoad(True, cur.viewers)
            load = state.load or {}
            views.append(NodeView(row.alias, state.alive, state.sub_max, loads,
                                  cpu=float(load.get("cpu") or 0.0),
                                  bitrate=int(load.get("bitrate") or 0)))
        return views

    # --- learning ----------------------------------------------------------------------

    async def heartbeat(self, beat: NodeHeartbeat) -> None:
        """A self-registering node reports in (`POST /api/nodes/heartbeat`)."""
        now = self.clock()
        streams = [dict(s) for s in beat["streams"]]
        async with self.db.session() as s:
            existing = await repo.node(s, beat["alias"])
            if existing is not None and existing.kind == "static":
                kind, mode = "static", existing.mode  # a configured node that also beats
            else:
                kind, mode = "registered", "push"
            await repo.upsert_node(s, alias=beat["alias"], url=beat["url"].rstrip("/"),
                                   token=beat.get("token", ""), kind=kind, mode=mode, now=now)
            await repo.save_contact(s, beat["alias"], now=now,
                                    strategy=dict(beat["strategy"]), streams=streams,
                                    load=dict(beat["load"]), version=beat.get("version"))
            await self._prune_routes(s, beat["alias"], beat["streams"], now)
        self._heard(beat["alias"])
        if existing is None or existing.last_seen is None:
            logger.info("node %s registered from %s", beat["alias"], beat["url"])

    async def deregister(self, alias: str) -> bool:
        async with self.db.session() as s:
            removed = await repo.delete_node(s, alias, kind="registered")
        self.invalidate()
        if removed:
            logger.info("node %s deregistered", alias)
        return removed

    async def _prune_routes(self, s: Any, alias: str, streams: list[StreamJson],
                            now: float) -> None:
        live = {f"/session/{st['id']}/{sess['id']}" for st in streams
                for side in ("publish", "subscribe") for sess in st[side]["sessions"]}
        # Routes younger than a few seconds may not be in this snapshot yet.
        await repo.prune_routes(s, alias, live, older_than=now - 5)

    async def _save_snapshot(self, node: NodeConfig, streams: list[StreamJson],
                             latency_ms: float | None, strategy: dict[str, Any] | None,
                             taken_at: float | None = None) -> None:
        """Save what the node listed. ``taken_at`` is when it was asked: placement counts
        sessions liveman made since then on top of the list, so a session made while the
        answer was on its way is not missed."""
        now = self.clock() if taken_at is None else taken_at
        async with self.db.session() as s:
            await repo.save_contact(s, node.alias, now=now, latency_ms=latency_ms,
                                    strategy=strategy, streams=[dict(x) for x in streams],
                                    load=load_from_streams(streams))
            await self._prune_routes(s, node.alias, streams, now)
        self._heard(node.alias)

    async def _save_failure(self, node: NodeConfig, error: str) -> None:
        with contextlib.suppress(Exception):  # the database may be down too; retry later
            async with self.db.session() as s:
                await repo.save_failure(s, node.alias, error)

    async def _fetch_strategy(self, target: Target) -> dict[str, Any]:
        answer = await self.client.request(target, "GET", "/api/strategy/", timeout=2)
        if answer.status != 200:
            raise NodeError(target, f"/api/strategy/ answered {answer.status}")
        return dict(strategy_adapter.validate_python(answer.json()))

    async def _poll(self, node: NodeConfig) -> None:
        """Poll a configured node's strategy and streams every `poll_interval_ms`."""
        target = Target(node.alias, node.url, node.token)
        interval = self.settings.cluster.poll_interval_ms / 1000
        strategy: dict[str, Any] | None = None
        failing = False
        while True:
            started = time.monotonic()
            try:
                if strategy is None:
                    strategy = await self._fetch_strategy(target)
                asked_at = self.clock()
                answer = await self.client.request(target, "GET", "/api/streams/", timeout=2)
                if answer.status != 200:
                    raise NodeError(target, f"/api/streams/ answered {answer.status}")
                streams = streams_adapter.validate_python(answer.json())
                await self._save_snapshot(node, streams, answer.elapsed * 1000, strategy,
                                          taken_at=asked_at)
                if failing:
                    logger.info("node %s answers again", node.alias)
                failing = False
            except (NodeError, ValidationError, ValueError) as exc:
                if not failing:
                    logger.warning("node %s: %s", node.alias, _short(exc))
                failing = True
                strategy = None  # the node may have restarted with another config
                await self._save_failure(node, _short(exc))
            except Exception as exc:  # the database being away must not end the poller
                logger.warning("node %s: poll not saved: %s", node.alias, _short(exc))
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    async def _follow_sse(self, node: NodeConfig) -> None:
        """Follow a configured node's `/api/sse/streams`; reconnect 1 s after a failure
        (Live777: 5 s), give up on 401/403 (the token is wrong; polling would fail too)."""
        target = Target(node.alias, node.url, node.token)
        headers = {"Authorization": f"Bearer {node.token}"} if node.token else {}
        while True:
            try:
                strategy = await self._fetch_strategy(target)
                async with self.client.http.stream(
                        "GET", f"{node.url}/api/sse/streams", headers=headers,
                        timeout=None) as response:
                    if response.status_code in (401, 403):
                        logger.error("node %s refused liveman's token for SSE (%s); "
                                     "check its [[nodes]] token", node.alias,
                                     response.status_code)
                        await self._save_failure(node, f"SSE answered {response.status_code}")
                        return
                    if response.status_code != 200:
                        raise NodeError(target, f"SSE answered {response.status_code}")
                    async for line in response.aiter_lines():
                        if line.startswith("data:"):
                            streams = streams_adapter.validate_python(json.loads(line[5:]))
                            await self._save_snapshot(node, streams, None, strategy)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("node %s SSE: %s", node.alias, _short(exc))
                await self._save_failure(node, _short(exc))
            await asyncio.sleep(1)

    async def _ping(self, node: NodeConfig) -> None:
        """Liveness of an SSE-mode node: its feed is quiet while nothing changes (a
        keep-alive every 15 s), so `/api/strategy/` is asked every `poll_interval_ms`."""
        target = Target(node.alias, node.url, node.token)
        interval = self.settings.cluster.poll_interval_ms / 1000
        while True:
            try:
                answer = await self.client.request(target, "GET", "/api/strategy/", timeout=2)
                if answer.status != 200:
                    raise NodeError(target, f"/api/strategy/ answered {answer.status}")
                strategy = dict(strategy_adapter.validate_python(answer.json()))
                async with self.db.session() as s:
                    await repo.save_contact(s, node.alias, now=self.clock(),
                                            latency_ms=answer.elapsed * 1000, strategy=strategy)
                self._heard(node.alias)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._save_failure(node, _short(exc))
            await asyncio.sleep(interval)

    async def _forget_silent(self) -> None:
        """Remove self-registered nodes silent for `forget_after_ms`."""
        forget = self.settings.cluster.forget_after_ms / 1000
        while True:
            await asyncio.sleep(min(60.0, forget))
            with contextlib.suppress(Exception):
                async with self.db.session() as s:
                    await repo.delete_silent_nodes(s, "registered", self.clock() - forget)
                self.invalidate()


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
