"""recordings and their chapters

Revision ID: 0100_recordings
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0100_recordings"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "recordings",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "conference_id",
            sa.String(32),
            sa.ForeignKey("conferences.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("status", sa.String(16), nullable=False, server_default="recording"),
        sa.Column("path", sa.String(300), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("ended_at", TS, nullable=True),
        sa.Column("duration_seconds", sa.Float, nullable=False, server_default="0"),
        sa.Column("size_bytes", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("segment_count", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "recording_chapters",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "recording_id",
            sa.String(32),
            sa.ForeignKey("recordings.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("at_seconds", sa.Float, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("recording_chapters")
    op.drop_table("recordings")
