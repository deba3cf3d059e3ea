"""replay make-up from what was served: one row per recording segment sent to a token holder

Revision ID: 0102_replay_served
Revises: 0101_token_lifetime
"""
import sqlalchemy as sa
from alembic import op

revision = "0102_replay_served"
down_revision = "0101_token_lifetime"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "replay_served",
        sa.Column("recording_id", sa.String(32), primary_key=True),
        sa.Column("token_id", sa.String(32), primary_key=True),
        sa.Column("segment", sa.Integer, primary_key=True),
        sa.Column(
            "conference_id",
            sa.String(32),
            sa.ForeignKey("conferences.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("subject_type", sa.String(16), nullable=True),
        sa.Column("subject_id", sa.String(32), nullable=True, index=True),
        sa.Column("seconds", sa.Float, nullable=False, server_default="0"),
        sa.Column("served_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("replay_served")
