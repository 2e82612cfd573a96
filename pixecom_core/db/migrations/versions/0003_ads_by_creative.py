"""Index ads by creative: deleting a creative no longer scans all of a seller's ads.

Revision ID: 0003_ads_by_creative
Revises: 0002_seller_directory
Create Date: 2026-11-26 00:00:00

Built CONCURRENTLY (outside a transaction) so a live ``ads`` table keeps taking writes
while it builds (audit §5: schema changes on hot tables must not lock them).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003_ads_by_creative"
down_revision: str | None = "0002_seller_directory"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("SET lock_timeout = '5s'")
        op.execute(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_ads_seller_id_creative_id "
            "ON ads (seller_id, creative_id) WHERE creative_id IS NOT NULL"
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_ads_seller_id_creative_id")
