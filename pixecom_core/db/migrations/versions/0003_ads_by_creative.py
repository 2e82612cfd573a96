"""Index ads by creative: deleting a creative no longer scans all of a seller's ads.

Revision ID: 0003_ads_by_creative
Revises: 0002_seller_directory
Create Date: 2026-11-26 00:00:00

Built CONCURRENTLY (outside a transaction) so a live ``ads`` table keeps taking writes
while it builds (STORE-5: schema changes on hot tables must not lock them).
"""

from collections.abc import Sequence

from pixecom_core.db import migration_support

revision: str = "0003_ads_by_creative"
down_revision: str | None = "0002_seller_directory"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Same index as before; the helper also drops an INVALID leftover of a failed build.
    migration_support.create_index_concurrently(
        "ix_ads_seller_id_creative_id",
        "ads",
        "(seller_id, creative_id) WHERE creative_id IS NOT NULL",
    )


def downgrade() -> None:
    migration_support.drop_index_concurrently("ix_ads_seller_id_creative_id")
