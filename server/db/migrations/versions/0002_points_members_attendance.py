"""agenda, connection points, members, materials, attendance sessions, headcounts, replay views

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _conference_fk() -> sa.Column:
    return sa.Column(
        "conference_id",
        sa.String(32),
        sa.ForeignKey("conferences.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )


def upgrade() -> None:
    op.create_table(
        "agenda_items",
        sa.Column("id", sa.String(32), primary_key=True),
        _conference_fk(),
        sa.Column("position", sa.Integer, nullable=False, server_default="0"),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("speaker", sa.String(200), nullable=False, server_default=""),
        sa.Column("starts_at", TS, nullable=True),
        sa.Column("duration_minutes", sa.Integer, nullable=True),
        sa.Column("notes", sa.Text, nullable=False, server_default=""),
    )
    op.create_table(
        "connection_points",
        sa.Column("id", sa.String(32), primary_key=True),
        _conference_fk(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column(
            "parent_id",
            sa.String(32),
            sa.ForeignKey("connection_points.id", ondelete="SET NULL"),
            nullable=True,
            index=True,
        ),
        sa.Column("operator_name", sa.String(200), nullable=False, server_default=""),
        sa.Column("summoned", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("conference_id", "name", name="uq_connection_points_name"),
    )
    op.create_table(
        "members",
        sa.Column("id", sa.String(32), primary_key=True),
        _conference_fk(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("unit", sa.String(200), nullable=False, server_default=""),
        sa.Column(
            "point_id",
            sa.String(32),
            sa.ForeignKey("connection_points.id", ondelete="SET NULL"),
            nullable=True,
            index=True,
        ),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "materials",
        sa.Column("id", sa.String(32), primary_key=True),
        _conference_fk(),
        sa.Column("title", sa.String(500), nullable=False, server_default=""),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("stored_name", sa.String(64), nullable=False),
        sa.Column("content_type", sa.String(200), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("uploaded_at", TS, nullable=False),
        sa.Column("uploaded_by", sa.String(32), nullable=True),
    )
    op.create_table(
        "attendance_sessions",
        sa.Column("id", sa.String(32), primary_key=True),
        _conference_fk(),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("session_key", sa.String(64), nullable=True, index=True),
        sa.Column("token_id", sa.String(32), nullable=True, index=True),
        sa.Column("role", sa.String(16), nullable=False, server_default=""),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("subject_type", sa.String(16), nullable=True),
        sa.Column("subject_id", sa.String(32), nullable=True, index=True),
        sa.Column("node", sa.String(200), nullable=False, server_default=""),
        sa.Column("joined_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.Column("left_at", TS, nullable=True, index=True),
        sa.Column("end_reason", sa.String(32), nullable=True),
    )
    op.create_table(
        "headcount_reports",
        sa.Column("id", sa.String(32), primary_key=True),
        _conference_fk(),
        sa.Column(
            "point_id",
            sa.String(32),
            sa.ForeignKey("connection_points.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("present", sa.Integer, nullable=False),
        sa.Column("token_id", sa.String(32), nullable=True),
        sa.Column("reported_at", TS, nullable=False),
    )
    op.create_table(
        "replay_views",
        sa.Column("id", sa.String(32), primary_key=True),
        _conference_fk(),
        sa.Column("token_id", sa.String(32), nullable=False),
        sa.Column("view_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("subject_type", sa.String(16), nullable=True),
        sa.Column("subject_id", sa.String(32), nullable=True, index=True),
        sa.Column("seconds_watched", sa.Float, nullable=False, server_default="0"),
        sa.Column("duration_seconds", sa.Float, nullable=True),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("conference_id", "token_id", "view_id", name="uq_replay_views_view"),
    )


def downgrade() -> None:
    for table in (
        "replay_views",
        "headcount_reports",
        "attendance_sessions",
        "materials",
        "members",
        "connection_points",
        "agenda_items",
    ):
        op.drop_table(table)
