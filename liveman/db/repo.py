"""Queries: one small function per thing liveman asks of its database."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from .models import Base, Cascade, Node, Recording, SessionRoute, SyncCursor


async def _upsert(session: AsyncSession, model: type[Base], values: dict[str, Any],
                  keys: Sequence[str], update_keys: Sequence[str]) -> None:
    """INSERT … ON CONFLICT (keys) DO UPDATE: atomic, so replicas cannot race."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(model).values(**values)
    changes = {k: stmt.excluded[k] for k in update_keys}
    if changes:
        await session.execute(stmt.on_conflict_do_update(index_elements=list(keys),
                                                         set_=changes))
    else:
        await session.execute(stmt.on_conflict_do_nothing(index_elements=list(keys)))


# --- nodes -----------------------------------------------------------------------------


async def upsert_node(session: AsyncSession, *, alias: str, url: str, token: str, kind: str,
                      mode: str, now: float) -> None:
    await _upsert(session, Node, {"alias": alias, "url": url, "token": token, "kind": kind,
                                  "mode": mode, "created_at": now},
                  ["alias"], ["url", "token", "kind", "mode"])


async def save_contact(session: AsyncSession, alias: str, *, now: float,
                       latency_ms: float | None = None,
                       strategy: dict[str, Any] | None = None,
                       streams: list[dict[str, Any]] | None = None,
                       load: dict[str, Any] | None = None,
                       version: str | None = None) -> None:
    """The node answered: it is alive, and this is what it said."""
    values: dict[str, Any] = {"last_seen": now, "error": None}
    if latency_ms is not None:
        values["latency_ms"] = latency_ms
    if strategy is not None:
        values["strategy"] = strategy
    if streams is not None:
        values["streams"] = streams
        values["polled_at"] = now
    if load is not None:
        values["load"] = load
    if version is not None:
        values["version"] = version
    await session.execute(update(Node).where(Node.alias == alias).values(**values))


async def save_failure(session: AsyncSession, alias: str, error: str) -> None:
    await session.execute(update(Node).where(Node.alias == alias).values(error=error[:500]))


async def nodes(session: AsyncSession) -> list[Node]:
    return list((await session.scalars(select(Node).order_by(Node.alias))).all())


async def node(session: AsyncSession, alias: str) -> Node | None:
    return await session.get(Node, alias)


async def delete_node(session: AsyncSession, alias: str, kind: str | None = None) -> bool:
    stmt = delete(Node).where(Node.alias == alias)
    if kind is not None:
        stmt = stmt.where(Node.kind == kind)
    return bool((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]


async def delete_nodes_except(session: AsyncSession, kind: str, keep: Sequence[str]) -> None:
    await session.execute(delete(Node).where(Node.kind == kind, Node.alias.not_in(keep)))


async def delete_silent_nodes(session: AsyncSession, kind: str, before: float) -> None:
    await session.execute(delete(Node).where(Node.kind == kind, Node.last_seen < before))


# --- session routes --------------------------------------------------------------------


async def add_route(session: AsyncSession, *, path: str, stream: str, alias: str, role: str,
                    now: float) -> None:
    await _upsert(session, SessionRoute, {"path": path, "stream": stream, "alias": alias,
                                          "role": role, "created_at": now},
                  ["path"], ["stream", "alias", "role", "created_at"])


async def route(session: AsyncSession, path: str) -> SessionRoute | None:
    return await session.get(SessionRoute, path)


async def delete_route(session: AsyncSession, path: str) -> None:
    await session.execute(delete(SessionRoute).where(SessionRoute.path == path))


async def routes_since(session: AsyncSession, since: float) -> list[SessionRoute]:
    """Sessions created through liveman since ``since`` (newer than some node snapshots)."""
    stmt = select(SessionRoute).where(SessionRoute.created_at >= since)
    return list((await session.scalars(stmt)).all())


async def prune_routes(session: AsyncSession, alias: str, keep_paths: set[str],
                       older_than: float) -> None:
    """Forget routes of ``alias`` that its latest snapshot no longer lists (the session
    ended without a DELETE through liveman)."""
    stmt = select(SessionRoute.path).where(SessionRoute.alias == alias,
                                           SessionRoute.created_at < older_than)
    gone = [p for p in (await session.scalars(stmt)).all() if p not in keep_paths]
    if gone:
        await session.execute(delete(SessionRoute).where(SessionRoute.path.in_(gone)))


# --- cascades --------------------------------------------------------------------------


async def add_cascade(session: AsyncSession, *, stream: str, source: str, target: str,
                      mode: str, owner: str, session_path: str, now: float) -> int:
    row = Cascade(stream=stream, source_alias=source, target_alias=target, mode=mode,
                  owner_alias=owner, session_path=session_path, created_at=now)
    session.add(row)
    await session.flush()
    return row.id


async def cascades(session: AsyncSession, stream: str | None = None) -> list[Cascade]:
    stmt = select(Cascade).order_by(Cascade.id)
    if stream is not None:
        stmt = stmt.where(Cascade.stream == stream)
    return list((await session.scalars(stmt)).all())


async def claim_cascade(session: AsyncSession, cascade_id: int) -> bool:
    """Delete the row; True for the one caller (of any replica) that removed it."""
    result = await session.execute(delete(Cascade).where(Cascade.id == cascade_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]


# --- recordings ------------------------------------------------------------------------


async def upsert_recording(session: AsyncSession, *, stream: str, record: str, mpd_path: str,
                           now: float, node_alias: str | None = None,
                           record_dir: str | None = None, status: str | None = None,
                           start_ts: int | None = None, end_ts: int | None = None,
                           duration_ms: int | None = None) -> None:
    values: dict[str, Any] = {"id": str(uuid.uuid4()), "stream": stream, "record": record,
                              "mpd_path": mpd_path, "created_at": now, "updated_at": now}
    optional = {"node_alias": node_alias, "record_dir": record_dir, "status": status,
                "start_ts": start_ts, "end_ts": end_ts, "duration_ms": duration_ms}
    values.update({k: v for k, v in optional.items() if v is not None})
    await _upsert(session, Recording, values, ["stream", "record"],
                  ["mpd_path", "updated_at", *(k for k, v in optional.items() if v is not None)])


async def recorded_streams(session: AsyncSession) -> list[str]:
    stmt = select(Recording.stream).distinct().order_by(Recording.stream)
    return list((await session.scalars(stmt)).all())


async def recordings(session: AsyncSession, stream: str) -> list[Recording]:
    stmt = select(Recording).where(Recording.stream == stream).order_by(Recording.record)
    return list((await session.scalars(stmt)).all())


async def recording_count(session: AsyncSession) -> int:
    return int((await session.scalar(select(func.count()).select_from(Recording))) or 0)


# --- record-sync cursors ---------------------------------------------------------------


async def sync_cursor(session: AsyncSession, alias: str) -> int:
    row = await session.get(SyncCursor, alias)
    return row.cursor if row is not None else 0


async def save_sync_cursor(session: AsyncSession, alias: str, cursor: int, now: float) -> None:
    await _upsert(session, SyncCursor, {"alias": alias, "cursor": cursor, "updated_at": now},
                  ["alias"], ["cursor", "updated_at"])


# --- recordings started or stopped through liveman ---------------------------------------


async def recording(session: AsyncSession, stream: str, record: str) -> Recording | None:
    stmt = select(Recording).where(Recording.stream == stream, Recording.record == record)
    return (await session.scalars(stmt)).first()


async def active_recordings(session: AsyncSession, stream: str | None = None
                            ) -> list[Recording]:
    """Rows still `Active`, oldest start first."""
    stmt = select(Recording).where(Recording.status == "Active")
    if stream is not None:
        stmt = stmt.where(Recording.stream == stream)
    return list((await session.scalars(stmt.order_by(Recording.start_ts))).all())


async def finish_recording(session: AsyncSession, stream: str, record: str, *, end_ts: int,
                           duration_ms: int | None, now: float) -> bool:
    """Mark an `Active` row `Completed`; True for the one caller (of any replica) that
    changed it, so only that caller acts on the change (rotation, stop)."""
    values: dict[str, Any] = {"status": "Completed", "end_ts": end_ts, "updated_at": now}
    if duration_ms is not None:
        values["duration_ms"] = duration_ms
    result = await session.execute(
        update(Recording).where(Recording.stream == stream, Recording.record == record,
                                Recording.status == "Active").values(**values))
    return bool(result.rowcount)  # type: ignore[attr-defined]
