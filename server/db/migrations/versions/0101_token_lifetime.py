"""token lifetime: optional expiry and the moment of revocation

Revision ID: 0101_token_lifetime
Revises: 0100_recordings
"""
import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0101_token_lifetime"
down_revision = "0100_recordings"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
# The per-role default lifetimes (days) when this revision was written; fixed here, like any migration.
LIFETIME_DAYS = {"organiser": 30.0, "speaker": 14.0, "point": 14.0, "viewer": 14.0, "member": 60.0}


def upgrade() -> None:
    with op.batch_alter_table("access_tokens") as batch:
        batch.add_column(sa.Column("expires_at", TS, nullable=True))
        batch.add_column(sa.Column("revoked_at", TS, nullable=True))
    # Tokens issued before lifetimes existed get a whole default lifetime from the upgrade, not from
    # their creation: links handed out to points and members weeks ago must not all stop at once.
    tokens = sa.table("access_tokens", sa.column("role", sa.String), sa.column("expires_at", TS))
    now = dt.datetime.now(dt.UTC)
    for role, days in LIFETIME_DAYS.items():
        op.execute(
            tokens.update()
            .where(tokens.c.role == role, tokens.c.expires_at.is_(None))
            .values(expires_at=now + dt.timedelta(days=days))
        )


def downgrade() -> None:
    with op.batch_alter_table("access_tokens") as batch:
        batch.drop_column("revoked_at")
        batch.drop_column("expires_at")
