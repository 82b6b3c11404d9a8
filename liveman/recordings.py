"""Recordings through liveman: start and stop them on the node that holds a stream, keep the
recordings index in the database, run `[auto_record]` and `[record_sync]`, and give the
playback routes liveman's own `[recorder.storage]`.

The decisions (which base_dir, when a recording is due for rotation, whether a synced entry
is stale) are small pure functions at the top; the :class:`Recordings` service does the
talking to nodes, the database and storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from liveapi.types import (
    PlaybackEntry,
    RecordingJson,
    RecordRef,
    record_started_adapter,
    recordings_page_adapter,
)
from liveion.storage import Storage, StorageError, describe_error, open_storage, safe_path

from .config import Settings
from .db import Database, repo
from .db.models import Recording
from .nodes import NodeRegistry, NodeState
from .proxy import Answer, NodeClient, NodeError
from .signaling import ClusterError

logger = logging.getLogger(__name__)

MIN_PRESIGN_TTL_S = 30
MAX_PRESIGN_TTL_S = 7 * 24 * 3600  # the longest a SigV4 presigned URL may live
SYNC_PAGES_PER_TICK = 20
"""A node with a long backlog is read this many pages per tick, so one node cannot hold
the loop (and the others) for long."""
TERMINAL = ("Completed", "Failed")
PING_TIMEOUT_S = 5.0


# --- pure decisions --------------------------------------------------------------------


def matches(stream: str, globs: Iterable[str]) -> bool:
    """`[auto_record] auto_streams`: shell-style globs, case-sensitive (as stream names)."""
    return any(fnmatch.fnmatchcase(stream, glob) for glob in globs)


def auto_base_dir(prefix: str, stream: str, now: float) -> str | None:
    """`{base_prefix}/{stream}/{unix_ts}` when `[auto_record] base_prefix` is set. The
    trailing timestamp becomes the record id on the node, so parts never collide."""
    prefix = prefix.strip("/")
    return f"{prefix}/{stream}/{int(now)}" if prefix else None


def micros(seconds: float) -> int:
    return int(seconds * 1_000_000)


def rotation_due(start_ts_us: int | None, now: float, max_seconds: int) -> bool:
    """A recording started at `start_ts_us` has run `max_seconds` (0: never rotate)."""
    if not max_seconds or start_ts_us is None:
        return False
    return micros(now) - start_ts_us >= max_seconds * 1_000_000


def stale_active(existing: Recording | None, entry: RecordingJson) -> bool:
    """A node's `Active` entry that was read before liveman ended the recording: the row
    already says Completed/Failed and ended after the entry started. Writing it would turn
    a finished recording back on (and have auto_record rotate it again)."""
    if existing is None or entry["status"] != "Active" or existing.status not in TERMINAL:
        return False
    return existing.end_ts is None or entry["start_ts"] <= existing.end_ts


def playback_entry(row: Recording) -> dict[str, Any]:
    entry: PlaybackEntry = {"record": row.record, "mpd_path": row.mpd_path,
                            "duration_ms": row.duration_ms, "status": row.status or "Active"}
    return {**entry, "node": row.node_alias, "record_dir": row.record_dir,
            "start_ts": row.start_ts, "end_ts": row.end_ts}


def _cascaded(node: NodeState, stream: str) -> bool:
    """The node gets the stream from another node (its publisher is a cascade)."""
    for listed in node.streams:
        if listed["id"] == stream:
            sessions = listed["publish"]["sessions"]
            return bool(sessions) and all("cascade" in s for s in sessions)
    return False


@dataclass(frozen=True, slots=True)
class Started:
    """A recording a node said it is making."""

    stream: str
    record: str
    """The index key: the record id, or the record_dir when the base_dir has none."""
    record_id: str
    record_dir: str
    mpd_path: str
    node: str

    def json(self) -> dict[str, Any]:
        return {"started": True, "mpd_path": self.mpd_path, "record_id": self.record_id,
                "record_dir": self.record_dir, "node": self.node}


def _refused(node: NodeState, answer: Answer, what: str) -> ClusterError:
    """A node's non-2xx answer: its 4xx are the caller's problem (same status), anything
    else is a bad gateway."""
    try:
        detail = str(answer.json().get("detail") or "")
    except (ValueError, AttributeError):
        detail = answer.body[:200].decode("utf-8", "replace")
    text = f"node '{node.alias}' refused to {what}: {answer.status}" + (
        f" {detail}" if detail else "")
    return ClusterError(answer.status if 400 <= answer.status < 500 else 502, text)


def _unreachable(exc: NodeError) -> ClusterError:
    return ClusterError(504 if exc.timeout else 502, str(exc))


# --- the service -----------------------------------------------------------------------


class Recordings:
    def __init__(self, settings: Settings, db: Database, registry: NodeRegistry,
                 client: NodeClient, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.db = db
        self.registry = registry
        self.client = client
        self.clock = clock
        self.storage: Storage | None = None
        self.storage_problem = "storage not configured"
        """Why `storage` is None."""
        self._tasks: list[asyncio.Task[None]] = []
        self._warned_presign = False
        self._sync_started: set[str] = set()
        self._sync_errors: dict[str, str] = {}

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Open `[recorder.storage]` and start the `[auto_record]`/`[record_sync]` loops."""
        try:
            self.storage = open_storage(self.settings.recorder.storage)
        except StorageError as exc:
            self.storage_problem = f"storage not configured: {exc}"
            logger.error("recordings cannot be served: %s", exc)
        else:
            # In the background: an unreachable bucket must not hold up liveman's start.
            self._tasks.append(asyncio.create_task(self._check_storage(), name="storage-check"))
        auto, sync = self.settings.auto_record, self.settings.record_sync
        if auto.enabled and auto.auto_streams:
            self._tasks.append(asyncio.create_task(
                self._every(auto.tick_ms / 1000, self.auto_record_tick, "auto_record"),
                name="auto-record"))
        elif auto.enabled:
            logger.warning("[auto_record] is enabled but auto_streams is empty: nothing to do")
        if sync.enabled:
            self._tasks.append(asyncio.create_task(
                self._every(sync.tick_ms / 1000, self.sync_tick, "record_sync"),
                name="record-sync"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    @staticmethod
    async def _every(seconds: float, step: Callable[[], Awaitable[None]], name: str) -> None:
        last_problem = ""
        while True:
            started = time.monotonic()
            try:
                await step()
                last_problem = ""
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database or a node being away must not end it
                problem = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                if problem != last_problem:
                    logger.warning("%s: %s", name, problem)
                last_problem = problem
            await asyncio.sleep(max(0.0, seconds - (time.monotonic() - started)))

    # --- which nodes -------------------------------------------------------------------

    async def holders(self, stream: str) -> list[NodeState]:
        """Live nodes with a publisher of `stream` (including WHIP sessions liveman placed
        after the last snapshot), nodes with the stream's own publisher before cascade
        targets."""
        views = await self.registry.views()
        states = {n.alias: n for n in await self.registry.states()}
        found = [states[v.alias] for v in views
                 if v.alive and v.holds(stream) and v.alias in states]
        return sorted(found, key=lambda n: _cascaded(n, stream))

    async def _listing(self, stream: str) -> list[NodeState]:
        """Live nodes whose snapshot lists the stream at all, or that hold it: a recording
        may outlive its publisher."""
        holders = await self.holders(stream)
        seen = {n.alias for n in holders}
        others = [n for n in await self.registry.states() if n.alive and n.alias not in seen
                  and any(s["id"] == stream for s in n.streams)]
        return holders + others

    async def _node(self, alias: str) -> NodeState:
        node = await self.registry.state(alias)
        if node is None:
            raise ClusterError(404, f"no node '{alias}'")
        if not node.alive:
            raise ClusterError(503, f"node '{alias}' is not answering", 5)
        return node

    async def _ask(self, node: NodeState, method: str, path: str, json: Any = None,
                   params: Any = None) -> Answer:
        try:
            return await self.client.request(node.target, method, path, json=json,
                                             params=params)
        except NodeError as exc:
            raise _unreachable(exc) from None

    # --- start, status, stop -----------------------------------------------------------

    async def start_recording(self, stream: str, base_dir: str | None = None,
                              node_alias: str | None = None) -> Started:
        """`POST /api/record/{stream}` on the pinned node, else on the first live node that
        has the stream's publisher; the recording goes into the index as `Active`."""
        if node_alias is not None:
            node = await self._node(node_alias)
        else:
            holders = await self.holders(stream)
            if not holders:
                raise ClusterError(404, f"stream '{stream}' is not published on any live "
                                        "node; pass ?node=alias to record on a given node")
            node = holders[0]
        if base_dir is None:
            base_dir = auto_base_dir(self.settings.auto_record.base_prefix, stream,
                                     self.clock())
        answer = await self._ask(node, "POST", f"/api/record/{stream}",
                                 json={"base_dir": base_dir} if base_dir else {})
        if answer.status != 200:
            raise _refused(node, answer, f"record '{stream}'")
        try:
            info = record_started_adapter.validate_python(answer.json())
        except (ValueError, ValidationError):
            raise ClusterError(502, f"node '{node.alias}' answered POST /api/record/{stream} "
                                    "with something other than the record info") from None
        started = Started(stream, info["record_id"] or info["record_dir"], info["record_id"],
                          info["record_dir"], info["mpd_path"], node.alias)
        await self._index_started(started)
        return started

    async def _index_started(self, started: Started) -> None:
        now = self.clock()
        async with self.db.session() as s:
            existing = await repo.recording(s, started.stream, started.record)
            # A repeated POST answers the running recording: keep when it really started.
            start_ts = micros(now) if existing is None or existing.start_ts is None else None
            await repo.upsert_recording(
                s, stream=started.stream, record=started.record, mpd_path=started.mpd_path,
                now=now, node_alias=started.node, record_dir=started.record_dir,
                status="Active", start_ts=start_ts)
            # A node records a stream once: its other Active rows for it have ended.
            for row in await repo.active_recordings(s, started.stream):
                if row.node_alias == started.node and row.record != started.record:
                    await repo.finish_recording(s, row.stream, row.record, end_ts=micros(now),
                                                duration_ms=None, now=now)

    async def is_recording(self, stream: str) -> bool:
        """True when any live node that has the stream says it is recording it."""
        nodes = await self._listing(stream)
        problems: list[str] = []

        async def ask(node: NodeState) -> bool:
            try:
                answer = await self.client.request(node.target, "GET", f"/api/record/{stream}")
            except NodeError as exc:
                problems.append(str(exc))
                return False
            if answer.status != 200:
                problems.append(f"node '{node.alias}' answered {answer.status}")
                return False
            try:
                return answer.json().get("recording") is True
            except (ValueError, AttributeError):
                problems.append(f"node '{node.alias}' answered something other than JSON")
                return False

        results = await asyncio.gather(*(ask(n) for n in nodes))
        if any(results):
            return True
        if problems and len(problems) == len(nodes):
            raise ClusterError(502, "; ".join(problems))
        return False

    async def stop_recording(self, stream: str) -> bool:
        """Stop on every live node that has the stream (or an Active row of it); the index
        rows of the nodes that answered become Completed. True if any node was recording."""
        async with self.db.session() as s:
            active = await repo.active_recordings(s, stream)
        nodes = {n.alias: n for n in await self._listing(stream)}
        for alias in {r.node_alias for r in active if r.node_alias} - set(nodes):
            node = await self.registry.state(alias)
            if node is not None and node.alive:
                nodes[alias] = node
        stopped, answered, problems = False, set(), []
        for node in nodes.values():
            try:
                answer = await self.client.request(node.target, "DELETE",
                                                   f"/api/record/{stream}")
            except NodeError as exc:
                problems.append(str(exc))
                continue
            if answer.status < 300:
                stopped = True
                answered.add(node.alias)
            elif answer.status == 404:  # liveion: it was not recording there
                answered.add(node.alias)
            else:
                problems.append(f"node '{node.alias}' answered {answer.status}")
        now = self.clock()
        async with self.db.session() as s:
            for row in active:
                if row.node_alias in answered:
                    # The node's exact duration arrives with [record_sync].
                    await repo.finish_recording(s, stream, row.record, end_ts=micros(now),
                                                duration_ms=None, now=now)
        if problems and not stopped:
            raise ClusterError(502, "; ".join(problems))
        return stopped

    # --- the index ---------------------------------------------------------------------

    async def playback_streams(self) -> list[str]:
        async with self.db.session() as s:
            return await repo.recorded_streams(s)

    async def playback(self, stream: str) -> list[dict[str, Any]]:
        async with self.db.session() as s:
            return [playback_entry(r) for r in await repo.recordings(s, stream)]

    # --- [auto_record] -----------------------------------------------------------------

    async def auto_record_tick(self) -> None:
        """Start recording each published stream that matches `auto_streams` and is not
        being recorded; rotate recordings older than `max_recording_seconds`. Safe with
        several replicas: a node's POST is idempotent, and one replica claims a rotation."""
        config = self.settings.auto_record
        views = await self.registry.views()
        wanted = sorted({name for v in views if v.alive for name, load in v.streams.items()
                         if load.publishing and matches(name, config.auto_streams)})
        for stream in wanted:
            try:
                if not await self.is_recording(stream):
                    started = await self.start_recording(stream)
                    logger.info("auto_record: recording %s on node %s (%s)", stream,
                                started.node, started.record_dir)
                elif config.max_recording_seconds:
                    await self._rotate_if_due(stream, config.max_recording_seconds)
            except ClusterError as exc:
                # 404: the publisher left between the snapshot and the start; not a problem.
                level = logging.DEBUG if exc.status == 404 else logging.WARNING
                logger.log(level, "auto_record: %s: %s", stream, exc.detail)

    async def _rotate_if_due(self, stream: str, max_seconds: int) -> None:
        now = self.clock()
        async with self.db.session() as s:
            active = await repo.active_recordings(s, stream)
        newest: dict[str | None, Recording] = {}
        for row in active:  # oldest first: the last one per node is its current recording
            newest[row.node_alias] = row
        for row in newest.values():
            if not rotation_due(row.start_ts, now, max_seconds):
                continue
            async with self.db.session() as s:
                claimed = await repo.finish_recording(s, stream, row.record,
                                                      end_ts=micros(now), duration_ms=None,
                                                      now=now)
            if not claimed:
                continue  # another replica rotates it
            if row.node_alias is not None:
                with contextlib.suppress(ClusterError):
                    node = await self._node(row.node_alias)
                    await self._ask(node, "DELETE", f"/api/record/{stream}")
            started = await self.start_recording(stream)
            logger.info("auto_record: %s rotated after %d s: %s → %s", stream, max_seconds,
                        row.record_dir, started.record_dir)

    # --- [record_sync] -----------------------------------------------------------------

    async def sync_tick(self) -> None:
        for node in await self.registry.states():
            if not node.alive:
                continue
            try:
                await self.sync_node(node)
                if self._sync_errors.pop(node.alias, None) is not None:
                    logger.info("record_sync: node %s syncs again", node.alias)
            except (ClusterError, NodeError, ValidationError, ValueError) as exc:
                problem = exc.detail if isinstance(exc, ClusterError) else str(exc)
                if self._sync_errors.get(node.alias) != problem:
                    logger.warning("record_sync: node %s: %s", node.alias, problem)
                self._sync_errors[node.alias] = problem

    async def sync_node(self, node: NodeState) -> int:
        """Copy the node's new index entries into the database, then acknowledge and prune
        the finished ones there, and move the node's cursor (kept in the database, so a
        restarted liveman goes on where it stopped). Returns how many entries were read."""
        limit = self.settings.record_sync.limit
        total = 0
        for _ in range(SYNC_PAGES_PER_TICK):
            async with self.db.session() as s:
                cursor = await repo.sync_cursor(s, node.alias)
            if node.alias not in self._sync_started:
                self._sync_started.add(node.alias)
                logger.info("record_sync: node %s from since_ts=%d", node.alias, cursor)
            answer = await self._ask(node, "GET", "/api/recordings",
                                     params={"since_ts": cursor, "limit": limit})
            if answer.status != 200:
                raise _refused(node, answer, "list its recordings")
            page = recordings_page_adapter.validate_python(answer.json())
            entries = page["sessions"]
            if not entries:
                return total
            await self._index_synced(node, entries)
            # Active entries stay on the node: it finishes them (and recovers them after a
            # crash) from its index; they come back here with a newer updated_at.
            done: list[RecordRef] = [{"stream": e["stream"], "record": e["id"]}
                                     for e in entries if e["status"] in TERMINAL]
            if done:
                for method in ("PATCH", "DELETE"):
                    answer = await self._ask(node, method, "/api/recordings",
                                             json={"records": done})
                    if answer.status != 200:
                        raise _refused(node, answer, f"{method} /api/recordings")
            async with self.db.session() as s:
                await repo.save_sync_cursor(s, node.alias, page.get("last_ts", cursor),
                                            self.clock())
            total += len(entries)
            if len(entries) < limit:
                break
        return total

    async def _index_synced(self, node: NodeState, entries: list[RecordingJson]) -> None:
        now = self.clock()
        async with self.db.session() as s:
            for entry in entries:
                existing = await repo.recording(s, entry["stream"], entry["id"])
                if stale_active(existing, entry):
                    continue
                await repo.upsert_recording(
                    s, stream=entry["stream"], record=entry["id"], mpd_path=entry["mpd_path"],
                    now=now, node_alias=node.alias, record_dir=entry.get("record_dir"),
                    status=entry["status"], start_ts=entry["start_ts"],
                    end_ts=entry.get("end_ts"), duration_ms=entry.get("duration_ms"))

    # --- storage -----------------------------------------------------------------------

    def require_storage(self) -> Storage:
        if self.storage is None:
            raise ClusterError(503, self.storage_problem)
        return self.storage

    def can_presign(self) -> bool:
        return self.storage is not None and bool(self.storage.op.capability().presign)

    async def redirect_for(self, path: str) -> str | None:
        """`[playback] signed_redirect`: a presigned URL for a segment (manifests are served
        by liveman, so dash.js resolves segment URLs against liveman); None to serve bytes."""
        playback = self.settings.playback
        if not playback.signed_redirect or path.endswith(".mpd"):
            return None
        storage = self.require_storage()
        if not self.can_presign():
            if not self._warned_presign:
                self._warned_presign = True
                logger.warning("[playback] signed_redirect needs s3 or oss storage; %s "
                               "cannot presign, so liveman serves the bytes", storage.target)
            return None
        signed = await self._presign(storage, "GET", path, playback.signed_ttl_seconds)
        return str(signed["url"])

    async def presign(self, method: str, path: str, ttl_seconds: int) -> dict[str, Any]:
        """`POST /api/storage/presign`: a URL a client can GET or PUT without credentials."""
        storage = self.require_storage()
        if not self.can_presign():
            raise ClusterError(501, f"presigned URLs need s3 or oss storage; this liveman's "
                                    f"[recorder.storage] is {storage.config.type}")
        ttl = min(max(ttl_seconds, MIN_PRESIGN_TTL_S), MAX_PRESIGN_TTL_S)
        return await self._presign(storage, method, path, ttl)

    @staticmethod
    async def _presign(storage: Storage, method: str, path: str, ttl: int) -> dict[str, Any]:
        safe_path(path)
        sign = storage.op.presign_read if method == "GET" else storage.op.presign_write
        try:
            signed = await sign(path, ttl)
        except Exception as exc:  # opendal's own exception classes
            reason, _, _ = describe_error(exc)
            raise ClusterError(502, f"presigning {method} {path!r} failed: {reason}") from None
        return {"url": signed.url, "method": signed.method, "headers": dict(signed.headers),
                "expires_in": ttl}

    async def ping(self) -> str | None:
        """None when storage answers, else why not."""
        if self.storage is None:
            return self.storage_problem
        try:
            return await asyncio.wait_for(self.storage.check(), PING_TIMEOUT_S)
        except TimeoutError:
            return f"storage {self.storage.target} did not answer in {PING_TIMEOUT_S:.0f} s"

    async def _check_storage(self) -> None:
        problem = await self.ping()
        if problem is not None:  # it may come back; requests try again
            logger.warning("%s", problem)
