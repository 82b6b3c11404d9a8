"""liveman's database: everything that must survive a restart or be shared by replicas.

SQLAlchemy 2 (async) over SQLite (aiosqlite) or PostgreSQL (asyncpg); the schema is
created and upgraded by Alembic at startup.
"""

from .engine import Database, DatabaseUnavailable, async_url

__all__ = ["Database", "DatabaseUnavailable", "async_url"]
