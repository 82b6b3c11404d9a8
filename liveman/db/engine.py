"""Engine, sessions and migrations: Live777-style URLs in, a ready database out."""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
ADVISORY_LOCK = 777_0001  # serialises migrations of replicas starting together
PING_TIMEOUT_S = 2.0


class DatabaseUnavailable(Exception):
    """The database cannot be reached or used; the message names the URL (no password)."""


def async_url(url: str) -> str:
    """Live777's database URL as SQLAlchemy's async form.

    `sqlite://./liveman.db?mode=rwc` (sqlx: everything after `sqlite://` is the file) becomes
    `sqlite+aiosqlite:///./liveman.db`; `postgres://` and `postgresql://` use asyncpg.
    """
    if url.startswith(("sqlite+aiosqlite:", "postgresql+asyncpg:")):
        return url
    if url.startswith("sqlite:"):
        rest = url.removeprefix("sqlite:").removeprefix("//")
        path = rest.split("?", 1)[0]
        if path in ("", ":memory:"):
            return "sqlite+aiosqlite:///:memory:"
        return f"sqlite+aiosqlite:///{path}"
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url.removeprefix(prefix)
    raise ValueError(f"unsupported database URL {redact(url)!r}")


def redact(url: str) -> str:
    """The URL with its password replaced, fit for logs and error messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _upgrade(connection: Connection) -> None:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
    command.upgrade(cfg, "head")


class Database:
    """The async engine and a session factory. :meth:`open` waits for the database (up to
    `connect_timeout`) and migrates it."""

    def __init__(self, url: str, *, max_connections: int = 10, connect_timeout: int = 30
                 ) -> None:
        self.url = url
        self.display_url = redact(url)
        self.connect_timeout = connect_timeout
        driver_url = async_url(url)
        self.dialect = "sqlite" if driver_url.startswith("sqlite") else "postgresql"
        options: dict[str, Any] = {"pool_pre_ping": True}
        if self.dialect == "postgresql":
            options.update(pool_size=max_connections, max_overflow=0, pool_recycle=3600,
                           pool_timeout=connect_timeout,
                           connect_args={"timeout": min(connect_timeout, 10)})
        else:
            options.update(connect_args={"timeout": connect_timeout})
        self.engine: AsyncEngine = create_async_engine(driver_url, **options)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    async def open(self) -> None:
        """Connect (retrying until `connect_timeout`) and run the migrations."""
        deadline = time.monotonic() + self.connect_timeout
        while True:
            try:
                async with self.engine.begin() as conn:
                    await conn.run_sync(_upgrade)
                return
            except (TimeoutError, OSError, OperationalError, DBAPIError) as exc:
                reason = _reason(exc)
                if time.monotonic() >= deadline:
                    raise DatabaseUnavailable(
                        f"database {self.display_url} is unreachable: {reason}") from exc
                logger.warning("database %s not ready (%s); retrying", self.display_url, reason)
                await asyncio.sleep(0.5)

    async def ping(self, timeout: float = PING_TIMEOUT_S) -> str | None:
        """None when a query works within ``timeout`` seconds (connecting included: a
        database that accepts TCP but never answers must not hang the probe), else why
        not."""
        try:
            async with asyncio.timeout(timeout):
                async with self.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
        except TimeoutError:
            return f"no answer within {timeout:g} s"
        except Exception as exc:  # any driver failure means "not ready"
            return _reason(exc)
        return None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction, committed on success."""
        async with self.sessions() as session, session.begin():
            yield session

    async def close(self) -> None:
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers and the writer work at once; busy_timeout waits out a lock instead
    # of failing; both matter when a replica and a maintenance task share the file.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text_ = str(orig if orig is not None else exc).strip().splitlines()
    return text_[0] if text_ else type(exc).__name__
