"""Initial schema: nodes, session routes, cascades, recordings index, record-sync cursors.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("alias", sa.String(64), primary_key=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("last_seen", sa.Float(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("strategy", sa.JSON(), nullable=True),
        sa.Column("load", sa.JSON(), nullable=True),
        sa.Column("streams", sa.JSON(), nullable=True),
        sa.Column("polled_at", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("version", sa.String(64), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "session_routes",
        sa.Column("path", sa.String(512), primary_key=True),
        sa.Column("stream", sa.String(128), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_session_routes_stream", "session_routes", ["stream"])
    op.create_index("ix_session_routes_alias", "session_routes", ["alias"])
    op.create_table(
        "cascades",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("stream", sa.String(128), nullable=False),
        sa.Column("source_alias", sa.String(64), nullable=False),
        sa.Column("target_alias", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("owner_alias", sa.String(64), nullable=False),
        sa.Column("session_path", sa.String(512), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_cascades_stream", "cascades", ["stream"])
    op.create_table(
        "recordings",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("stream", sa.String(128), nullable=False),
        sa.Column("record", sa.String(128), nullable=False),
        sa.Column("mpd_path", sa.Text(), nullable=False),
        sa.Column("record_dir", sa.Text(), nullable=True),
        sa.Column("node_alias", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("start_ts", sa.BigInteger(), nullable=True),
        sa.Column("end_ts", sa.BigInteger(), nullable=True),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.UniqueConstraint("stream", "record", name="uq_recordings_stream_record"),
    )
    op.create_index("ix_recordings_stream", "recordings", ["stream"])
    op.create_index("ix_recordings_updated", "recordings", ["updated_at"])
    op.create_table(
        "record_sync_cursors",
        sa.Column("alias", sa.String(64), primary_key=True),
        sa.Column("cursor", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    for table in ("record_sync_cursors", "recordings", "cascades", "session_routes", "nodes"):
        op.drop_table(table)
