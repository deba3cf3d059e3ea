"""link quality per point for the report (minutes per rendition, minutes poor, freezes, the pinned
rendition) and the organisers' quality alerts

Revision ID: 0105_quality
Revises: 0104_questions
"""
import sqlalchemy as sa
from alembic import op

revision = "0105_quality"
down_revision = "0104_questions"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "quality_points",
        sa.Column(
            "conference_id",
            sa.String(32),
            sa.ForeignKey("conferences.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "point_id",
            sa.String(32),
            sa.ForeignKey("connection_points.id", ondelete="CASCADE"),
            primary_key=True,
            index=True,
        ),
        sa.Column("seconds_full", sa.Float, nullable=False, server_default="0"),
        sa.Column("seconds_low", sa.Float, nullable=False, server_default="0"),
        sa.Column("seconds_audio", sa.Float, nullable=False, server_default="0"),
        sa.Column("seconds_poor", sa.Float, nullable=False, server_default="0"),
        sa.Column("freezes", sa.Integer, nullable=False, server_default="0"),
        sa.Column("freeze_seconds", sa.Float, nullable=False, server_default="0"),
        sa.Column("pinned", sa.String(8), nullable=True),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "quality_alerts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "conference_id",
            sa.String(32),
            sa.ForeignKey("conferences.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("point_id", sa.String(32), nullable=True, index=True),
        sa.Column("point_name", sa.String(200), nullable=False, server_default=""),
        sa.Column("level", sa.String(16), nullable=False, server_default=""),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("detail", sa.String(200), nullable=False, server_default=""),
        sa.Column("started_at", TS, nullable=False, index=True),
        sa.Column("ended_at", TS, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("quality_alerts")
    op.drop_table("quality_points")
