"""webhook delivery log: one row per event and receiver URL, one per attempt

Revision ID: 0106_webhooks
Revises: 0105_quality
"""
import sqlalchemy as sa
from alembic import op

revision = "0106_webhooks"
down_revision = "0105_quality"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("event_id", sa.String(32), nullable=False, index=True),
        sa.Column("event_type", sa.String(40), nullable=False),
        sa.Column(
            "conference_id",
            sa.String(32),
            sa.ForeignKey("conferences.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending", index=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_status_code", sa.Integer, nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("created_at", TS, nullable=False, index=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("delivered_at", TS, nullable=True),
        sa.Column("next_attempt_at", TS, nullable=True),
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "delivery_id",
            sa.String(32),
            sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
