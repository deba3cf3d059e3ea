"""written questions to the chair: author, status, answer, merged duplicates

Revision ID: 0104_questions
Revises: 0103_floor
"""
import sqlalchemy as sa
from alembic import op

revision = "0104_questions"
down_revision = "0103_floor"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "questions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "conference_id",
            sa.String(32),
            sa.ForeignKey("conferences.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="open"),
        sa.Column("answer", sa.Text, nullable=True),
        sa.Column("author_kind", sa.String(16), nullable=False),
        sa.Column("author_name", sa.String(200), nullable=False, server_default=""),
        sa.Column(
            "point_id",
            sa.String(32),
            sa.ForeignKey("connection_points.id", ondelete="SET NULL"),
            nullable=True,
            index=True,
        ),
        sa.Column(
            "member_id",
            sa.String(32),
            sa.ForeignKey("members.id", ondelete="SET NULL"),
            nullable=True,
            index=True,
        ),
        sa.Column("token_id", sa.String(32), nullable=True, index=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column(
            "merged_into",
            sa.String(32),
            sa.ForeignKey("questions.id", ondelete="SET NULL"),
            nullable=True,
            index=True,
        ),
        sa.Column("merged_count", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("questions")
