"""proposals: the proposals part of each essay, mergeable and marked when forwarded

Revision ID: 0108_proposals
Revises: 0107_essays
"""
import sqlalchemy as sa
from alembic import op

revision = "0108_proposals"
down_revision = "0107_essays"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "proposals",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("conference_id", sa.String(32), sa.ForeignKey("conferences.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("essay_id", sa.String(32), sa.ForeignKey("essays.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("position", sa.Integer, nullable=False, server_default="0"),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("field", sa.String(40), nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.Column("merged_into", sa.String(32), sa.ForeignKey("proposals.id", ondelete="SET NULL"), nullable=True,
                  index=True),
        sa.Column("forwarded_at", TS, nullable=True),
        sa.Column("forwarded_to", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("proposals")
