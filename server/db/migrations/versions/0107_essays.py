"""study essays: one assignment per conference, one essay per member, grades with their history

Revision ID: 0107_essays
Revises: 0106_webhooks
"""
import sqlalchemy as sa
from alembic import op

revision = "0107_essays"
down_revision = "0106_webhooks"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _conference() -> sa.Column:
    return sa.Column(
        "conference_id", sa.String(32), sa.ForeignKey("conferences.id", ondelete="CASCADE"), nullable=False,
        index=True,
    )


def upgrade() -> None:
    op.create_table(
        "essay_assignments",
        sa.Column(
            "conference_id", sa.String(32), sa.ForeignKey("conferences.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("prompt", sa.Text, nullable=False),
        sa.Column("deadline", TS, nullable=False),
        sa.Column("min_words", sa.Integer, nullable=True),
        sa.Column("max_words", sa.Integer, nullable=True),
        sa.Column("scale", sa.Text, nullable=False),
        sa.Column("accept_late", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "essays",
        sa.Column("id", sa.String(32), primary_key=True),
        _conference(),
        sa.Column("member_id", sa.String(32), sa.ForeignKey("members.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("text", sa.Text, nullable=False, server_default=""),
        sa.Column("filename", sa.String(255), nullable=True),
        sa.Column("stored_name", sa.String(64), nullable=True),
        sa.Column("content_type", sa.String(200), nullable=True),
        sa.Column("size", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("words", sa.Integer, nullable=False, server_default="0"),
        sa.Column("late", sa.Integer, nullable=False, server_default="0"),
        sa.Column("revisions", sa.Integer, nullable=False, server_default="1"),
        sa.Column("submitted_by", sa.String(16), nullable=False, server_default="member"),
        sa.Column("submitted_by_name", sa.String(200), nullable=False, server_default=""),
        sa.Column("first_submitted_at", TS, nullable=False),
        sa.Column("submitted_at", TS, nullable=False),
        sa.UniqueConstraint("conference_id", "member_id", name="uq_essays_member"),
    )
    op.create_table(
        "essay_grades",
        sa.Column("id", sa.String(32), primary_key=True),
        _conference(),
        sa.Column("essay_id", sa.String(32), sa.ForeignKey("essays.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("grade", sa.String(40), nullable=False),
        sa.Column("comment", sa.Text, nullable=False, server_default=""),
        sa.Column("grader_token_id", sa.String(32), nullable=True),
        sa.Column("grader_name", sa.String(200), nullable=False, server_default=""),
        sa.Column("graded_at", TS, nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("essay_grades")
    op.drop_table("essays")
    op.drop_table("essay_assignments")
