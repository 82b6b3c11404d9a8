"""The tables. Times are Unix seconds as floats (one clock for SQLite and PostgreSQL);
recording timestamps keep Live777's microseconds."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Node(Base):
    """A liveion node: configured (`static`) or self-registered (`registered`), with what
    was last learned from it."""

    __tablename__ = "nodes"

    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    token: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(16))
    mode: Mapped[str] = mapped_column(String(8), default="poll")
    last_seen: Mapped[float | None] = mapped_column(Float, nullable=True)
    """When the node last answered a poll, sent an SSE snapshot or a heartbeat."""
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    strategy: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    load: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    streams: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    """The node's `/api/streams/` as of `polled_at`."""
    polled_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    """Why the last contact failed (None after a success)."""
    version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[float] = mapped_column(Float)


class SessionRoute(Base):
    """Which node holds a WHIP/WHEP session created through liveman."""

    __tablename__ = "session_routes"

    path: Mapped[str] = mapped_column(String(512), primary_key=True)
    """`/session/{stream}/{id}`, the `Location` clients use."""
    stream: Mapped[str] = mapped_column(String(128), index=True)
    alias: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(16))
    """`publish` or `subscribe`."""
    created_at: Mapped[float] = mapped_column(Float)


class Cascade(Base):
    """A stream forwarded from one node to another because its nodes were full."""

    __tablename__ = "cascades"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    stream: Mapped[str] = mapped_column(String(128), index=True)
    source_alias: Mapped[str] = mapped_column(String(64))
    target_alias: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(8))
    owner_alias: Mapped[str] = mapped_column(String(64))
    """The node whose `/api/cascade` made the session (the source for push, the target
    for pull): deleting `session_path` there ends the cascade."""
    session_path: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[float] = mapped_column(Float)


class Recording(Base):
    """One recording (Live777's `recordings` table, with the node and timing added)."""

    __tablename__ = "recordings"
    __table_args__ = (UniqueConstraint("stream", "record", name="uq_recordings_stream_record"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    stream: Mapped[str] = mapped_column(String(128), index=True)
    record: Mapped[str] = mapped_column(String(128))
    mpd_path: Mapped[str] = mapped_column(Text)
    record_dir: Mapped[str | None] = mapped_column(Text, nullable=True)
    node_alias: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    start_ts: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    end_ts: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    duration_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class SyncCursor(Base):
    """`[record_sync]`: how far each node's recordings index has been read (µs)."""

    __tablename__ = "record_sync_cursors"

    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[float] = mapped_column(Float)


Index("ix_recordings_updated", Recording.updated_at)
