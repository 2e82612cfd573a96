"""Ad stats rows name the ad account whose fetch reported them.

Revision ID: 0009_ad_stats_account
Revises: 0008_problem_indexes
Create Date: 2026-12-07 00:00:00

Meta omits an entity without delivery from its insights, so a complete re-fetch of a day
that no longer reports an ad says "this ad spent nothing that day". To act on that, the
pipeline must know which account's fetch a daily snapshot came from: a seller may hold
several accounts on one network, and a fetch of one says nothing about the others.
``ad_account_id`` records it on every raw row and on the daily snapshot adopted from it.

Nullable and without a default, so adding it is a catalogue change on PostgreSQL (no
rewrite of the partitioned tables). Rows written before this revision keep NULL: the
pipeline never zeroes a snapshot it cannot tie to an account.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009_ad_stats_account"
down_revision: str | None = "0008_problem_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.execute("ALTER TABLE ad_stats_raw ADD COLUMN ad_account_id uuid")
    op.execute("ALTER TABLE ad_stats_daily ADD COLUMN ad_account_id uuid")


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.execute("ALTER TABLE ad_stats_daily DROP COLUMN ad_account_id")
    op.execute("ALTER TABLE ad_stats_raw DROP COLUMN ad_account_id")
