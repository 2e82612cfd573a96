"""Index each seller's open problems: ``GET /problems`` no longer scans the inbox.

Revision ID: 0008_problem_indexes
Revises: 0007_sync_lag
Create Date: 2026-11-26 00:00:00

``FAILED`` webhook deliveries are kept for good and the inbox grows by every delivery
(B: ~300K a day), yet no index led from a seller to its deferred and failed ones:
``GET /problems`` read the whole table for each call. Dead letters had an index on
``failed_at`` alone, which every seller's query walked through. Both indexes are partial
(open problems only, a small part of each table) and built CONCURRENTLY, so the live
tables keep taking writes while they build (STORE-5).
"""

from collections.abc import Sequence

from pixecom_core.db import migration_support

revision: str = "0008_problem_indexes"
down_revision: str | None = "0007_sync_lag"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    migration_support.create_index_concurrently(
        "ix_webhook_inbox_seller_problems",
        "webhook_inbox",
        "(seller_id, received_at) WHERE status IN ('DEFERRED', 'FAILED')",
    )
    migration_support.create_index_concurrently(
        "ix_dead_letters_seller_open",
        "dead_letters",
        "(seller_id, failed_at) WHERE resolved_at IS NULL",
    )


def downgrade() -> None:
    migration_support.drop_index_concurrently("ix_dead_letters_seller_open")
    migration_support.drop_index_concurrently("ix_webhook_inbox_seller_problems")
