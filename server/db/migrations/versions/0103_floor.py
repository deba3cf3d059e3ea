"""the floor: who holds it and the queue of raised hands per conference, and every floor event

Revision ID: 0103_floor
Revises: 0102_replay_served
"""
import sqlalchemy as sa
from alembic import op

revision = "0103_floor"
down_revision = "0102_replay_served"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _conference_fk(primary_key: bool = False) -> sa.Column:
    return sa.Column(
        "conference_id",
        sa.String(32),
        sa.ForeignKey("conferences.id", ondelete="CASCADE"),
        nullable=False,
        primary_key=primary_key,
        index=not primary_key,
    )


def upgrade() -> None:
    op.create_table(
        "floor_states",
        _conference_fk(primary_key=True),
        sa.Column("locked", sa.Integer, nullable=False, server_default="0"),
        sa.Column("grant_id", sa.String(32), nullable=True),
        sa.Column("point_id", sa.String(32), nullable=True),
        sa.Column("point_name", sa.String(200), nullable=False, server_default=""),
        sa.Column("level", sa.String(16), nullable=False, server_default=""),
        sa.Column("subject", sa.String(200), nullable=False, server_default=""),
        sa.Column("granted_at", TS, nullable=True),
        sa.Column("limit_seconds", sa.Integer, nullable=True),
        sa.Column("ends_at", TS, nullable=True),
        sa.Column("muted", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "floor_requests",
        sa.Column("id", sa.String(32), primary_key=True),
        _conference_fk(),
        sa.Column(
            "point_id",
            sa.String(32),
            sa.ForeignKey("connection_points.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("subject", sa.String(200), nullable=False, server_default=""),
        sa.Column("requested_at", TS, nullable=False),
        sa.UniqueConstraint("conference_id", "point_id", name="uq_floor_requests_point"),
    )
    op.create_table(
        "floor_events",
        sa.Column("id", sa.String(32), primary_key=True),
        _conference_fk(),
        sa.Column("at", TS, nullable=False, index=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("grant_id", sa.String(32), nullable=True),
        sa.Column("point_id", sa.String(32), nullable=True),
        sa.Column("point_name", sa.String(200), nullable=False, server_default=""),
        sa.Column("level", sa.String(16), nullable=False, server_default=""),
        sa.Column("subject", sa.String(200), nullable=False, server_default=""),
        sa.Column("duration_seconds", sa.Float, nullable=True),
        sa.Column("reason", sa.String(16), nullable=True),
        sa.Column("actor", sa.String(200), nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_table("floor_events")
    op.drop_table("floor_requests")
    op.drop_table("floor_states")
