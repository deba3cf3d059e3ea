"""token lifetime: optional expiry and the moment of revocation

Revision ID: 0101_token_lifetime
Revises: 0100_recordings
"""
import sqlalchemy as sa
from alembic import op

revision = "0101_token_lifetime"
down_revision = "0100_recordings"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("access_tokens") as batch:
        batch.add_column(sa.Column("expires_at", TS, nullable=True))
        batch.add_column(sa.Column("revoked_at", TS, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("access_tokens") as batch:
        batch.drop_column("revoked_at")
        batch.drop_column("expires_at")
