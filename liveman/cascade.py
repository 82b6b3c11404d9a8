"""Cascades on overflow: when every node holding a stream is full, forward the stream to a
node with room (over WHIP push or WHEP pull between nodes) and send new viewers there.

Each cascade is a row in the database, so any replica can find and remove it: a sweep
every `check_tick_time` tears down cascades whose stream on the new node has had no viewer
for `maximum_idle_time`, and those whose session is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from liveapi.types import CascadeRequest, StreamJson

from .config import CascadeConfig
from .db import Database, repo
from .db.models import Cascade
from .metrics import Metrics
from .nodes import NodeRegistry, NodeState
from .proxy import NodeClient, NodeError

logger = logging.getLogger(__name__)


class CascadeFailed(Exception):
    """No target node accepted the cascade; the message says what each answered."""


def idle_since(stream: StreamJson | None, seen_idle_ms: int) -> int | None:
    """Since when (Unix ms) the cascaded copy has had no (non-cascade) viewer; None while
    it has one.

    `seen_idle_ms` is when liveman first saw the copy without viewers. The node's
    `subscribe.leaveAt` is only set once *every* subscriber is gone, so while the copy
    still pushes onward (a cascade leg subscribed to it) it stays 0 and only liveman's own
    observation tells how long the copy has been idle. A stream missing from the target's
    snapshot counts as idle since ever: its publisher is gone.
    """
    if stream is None:
        return 0
    sessions = stream["subscribe"]["sessions"]
    if any("cascade" not in s for s in sessions):
        return None
    left = stream["subscribe"]["leaveAt"]
    if left:
        return min(left, seen_idle_ms)
    if not sessions:  # never had a viewer
        return min(stream["createdAt"], seen_idle_ms)
    return seen_idle_ms


def is_idle(stream: StreamJson | None, now_ms: int, max_idle_ms: int,
            seen_idle_ms: int | None = None) -> bool:
    """The cascaded copy has had no (non-cascade) viewer for `max_idle_ms` (see
    :func:`idle_since`; `seen_idle_ms` defaults to `now_ms`)."""
    since = idle_since(stream, now_ms if seen_idle_ms is None else seen_idle_ms)
    return since is not None and now_ms - since >= max_idle_ms


class Cascades:
    def __init__(self, config: CascadeConfig, db: Database, registry: NodeRegistry,
                 client: NodeClient, metrics: Metrics,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.db = db
        self.registry = registry
        self.client = client
        self.metrics = metrics
        self.clock = clock
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._seen_idle: dict[int, int] = {}
        """Cascade id → when (Unix ms) this replica first saw its copy without viewers."""

    def lock(self, stream: str) -> asyncio.Lock:
        """Serialises cascade decisions per stream, so a burst of viewers starts one
        cascade, not one each."""
        return self._locks.setdefault(stream, asyncio.Lock())

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="cascade-sweep")

    async def stop(self) -> None:
        tasks = [*self._tasks, *([self._sweeper] if self._sweeper else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- starting ------------------------------------------------------------------------

    async def open(self, stream: str, source: NodeState, targets: list[NodeState]) -> NodeState:
        """Forward ``stream`` from ``source`` to the first of ``targets`` that accepts."""
        problems = []
        for target in targets:
            try:
                await self._open_one(stream, source, target)
            except NodeError as exc:
                problems.append(str(exc))
                self.metrics.cascades.labels(self.config.mode, "failed").inc()
                continue
            self.metrics.cascades.labels(self.config.mode, "started").inc()
            return target
        raise CascadeFailed("; ".join(problems) or "no target node")

    async def _open_one(self, stream: str, source: NodeState, target: NodeState) -> None:
        mode = self.config.mode
        if mode == "push":
            owner = source
            body: CascadeRequest = {"targetUrl": f"{target.url}/whip/{stream}"}
            if target.token:
                body["token"] = target.token
        else:
            owner = target
            body = {"sourceUrl": f"{source.url}/whep/{stream}"}
            if source.token:
                body["token"] = source.token
        answer = await self.client.request(owner.target, "POST", f"/api/cascade/{stream}",
                                           json=body)
        if answer.status != 200:
            detail = answer.body.decode(errors="replace")[:300]
            raise NodeError(owner.target, f"cascade answered {answer.status}: {detail}")
        session = str(answer.json().get("session") or "")
        path = f"/session/{stream}/{session}"
        now = self.clock()
        async with self.db.session() as s:
            await repo.add_cascade(s, stream=stream, source=source.alias, target=target.alias,
                                   mode=mode, owner=owner.alias, session_path=path, now=now)
        self.registry.note_cascade(stream, target.alias, now)
        logger.info("cascade %s: %s -> %s (%s)", stream, source.alias, target.alias, mode)
        self._spawn(self._check(stream, source, target))

    async def _check(self, stream: str, source: NodeState, target: NodeState) -> None:
        """`check_attempts` times, 1 s apart: is the copy on the target connected? Then
        apply `close_other_sub`; a cascade that never connects is removed."""
        for _ in range(self.config.check_attempts):
            await asyncio.sleep(1)
            try:
                answer = await self.client.request(target.target, "GET",
                                                   f"/api/streams/{stream}", timeout=2)
                if answer.status == 200:
                    sessions = answer.json()["publish"]["sessions"]
                    if any(s.get("state") == "connected" for s in sessions):
                        if self.config.close_other_sub:
                            await self._close_other_viewers(stream, source)
                        return
            except (NodeError, ValueError, KeyError, TypeError):
                continue
        if self.config.check_attempts:
            logger.warning("cascade %s to %s never connected; removing it", stream,
                           target.alias)
            async with self.db.session() as s:
                rows = [c for c in await repo.cascades(s, stream)
                        if c.target_alias == target.alias]
            for row in rows:
                await self._teardown(row, "never connected")

    async def _close_other_viewers(self, stream: str, source: NodeState) -> None:
        answer = await self.client.request(source.target, "GET", f"/api/streams/{stream}")
        if answer.status != 200:
            return
        for session in answer.json()["subscribe"]["sessions"]:
            if "cascade" not in session:
                with contextlib.suppress(NodeError):
                    await self.client.request(source.target, "DELETE",
                                              f"/session/{stream}/{session['id']}")

    # --- removing --------------------------------------------------------------------------

    async def _teardown(self, row: Cascade, why: str) -> None:
        async with self.db.session() as s:
            if not await repo.claim_cascade(s, row.id):
                return  # another replica (or another sweep) removed it
        owner = await self.registry.state(row.owner_alias)
        target = await self.registry.state(row.target_alias)
        if owner is not None:
            with contextlib.suppress(NodeError):
                await self.client.request(owner.target, "DELETE", row.session_path)
        if target is not None:  # an empty copy would look like a place for viewers
            with contextlib.suppress(NodeError):
                await self.client.request(target.target, "DELETE", f"/api/streams/{row.stream}")
        self.metrics.cascades.labels(row.mode, "removed").inc()
        logger.info("cascade %s: %s -> %s removed (%s)", row.stream, row.source_alias,
                    row.target_alias, why)

    async def sweep(self) -> int:
        """Remove idle cascades now; returns how many.

        A copy that feeds another cascade (the source of a newer one) is not idle: tearing
        it down would cut the viewers downstream. Newest cascades are looked at first, so
        a chain whose viewers all left is removed in one sweep.
        """
        async with self.db.session() as s:
            rows = await repo.cascades(s)
        live_ids = {row.id for row in rows}
        self._seen_idle = {k: v for k, v in self._seen_idle.items() if k in live_ids}
        if not rows:
            return 0
        states = {n.alias: n for n in await self.registry.states()}
        now = self.clock()
        now_ms = int(now * 1000)
        removed: set[int] = set()
        for row in reversed(rows):
            target = states.get(row.target_alias)
            owner = states.get(row.owner_alias)
            if target is None or owner is None:
                why = "node removed"
            elif not target.alive:
                continue  # decide when it is heard again
            else:
                copy = next((s for s in target.streams if s["id"] == row.stream), None)
                if idle_since(copy, now_ms) is None:
                    self._seen_idle.pop(row.id, None)
                    continue
                seen = self._seen_idle.setdefault(row.id, now_ms)
                if now - row.created_at < self.config.maximum_idle_time / 1000:
                    continue
                if not is_idle(copy, now_ms, self.config.maximum_idle_time, seen):
                    continue
                if any(other.id not in removed and other.stream == row.stream
                       and other.source_alias == row.target_alias for other in rows):
                    continue  # it feeds a cascade that still has viewers
                why = "idle"
            await self._teardown(row, why)
            removed.add(row.id)
            self._seen_idle.pop(row.id, None)
        return len(removed)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.check_tick_time / 1000)
            try:
                await self.sweep()
            except Exception as exc:  # the database may be restarting; sweep again later
                logger.warning("cascade sweep failed: %s", exc)
