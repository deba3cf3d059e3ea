"""supervision: teams, check-in visits, the remote-supervision opt-in and room snapshots

Revision ID: 0109_supervision
Revises: 0108_proposals
"""
import sqlalchemy as sa
from alembic import op

revision = "0109_supervision"
down_revision = "0108_proposals"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _conference() -> sa.Column:
    return sa.Column(
        "conference_id", sa.String(32), sa.ForeignKey("conferences.id", ondelete="CASCADE"), nullable=False,
        index=True,
    )


def _point() -> sa.Column:
    return sa.Column(
        "point_id", sa.String(32), sa.ForeignKey("connection_points.id", ondelete="CASCADE"), nullable=False,
        index=True,
    )


def upgrade() -> None:
    op.create_table(
        "supervision_teams",
        sa.Column("id", sa.String(32), primary_key=True),
        _conference(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("point_ids", sa.Text, nullable=False, server_default="[]"),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "supervision_visits",
        sa.Column("id", sa.String(32), primary_key=True),
        _conference(),
        _point(),
        sa.Column("team_id", sa.String(32), nullable=True),
        sa.Column("supervisor", sa.String(200), nullable=False, server_default=""),
        sa.Column("token_id", sa.String(32), nullable=True),
        sa.Column("rating", sa.Integer, nullable=False),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
        sa.Column("visited_at", TS, nullable=False),
    )
    op.create_table(
        "snapshot_settings",
        sa.Column(
            "conference_id", sa.String(32), sa.ForeignKey("conferences.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("enabled", sa.Integer, nullable=False, server_default="0"),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "room_snapshots",
        sa.Column("id", sa.String(32), primary_key=True),
        _conference(),
        _point(),
        sa.Column("stored_name", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("taken_at", TS, nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("room_snapshots")
    op.drop_table("snapshot_settings")
    op.drop_table("supervision_visits")
    op.drop_table("supervision_teams")
