"""Sync status per ad account, and dead letters for jobs that failed for good.

Revision ID: 0005_sync_status
Revises: 0004_payment_directory
Create Date: 2026-11-26 00:00:00

A seller (and an operator) must see, per ad account, when the last sync succeeded, how
far behind it is, the last error and whether the network is throttling it (SCALE-9,
"stats lag 30-60 minutes" went unseen). Jobs that fail for good leave a dead letter
instead of vanishing (OPS-2: "failed calls are lost (no DLQ)"). New
columns have no default to rewrite and the table is new, so nothing here locks a hot
table for long.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from pixecom_core.db import migration_support

revision: str = "0005_sync_status"
down_revision: str | None = "0004_payment_directory"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    app_role = migration_support.app_role()
    op.execute("SET LOCAL lock_timeout = '5s'")
    for column in (
        sa.Column("last_sync_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_sync_error", sa.Text(), nullable=True),
        sa.Column("sync_failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("throttled_until", sa.DateTime(timezone=True), nullable=True),
    ):
        op.add_column("ad_accounts", column)
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("task_name", sa.Text(), nullable=False),
        sa.Column("task_id", sa.Text(), nullable=False),
        sa.Column("seller_id", sa.Uuid(), nullable=True),
        sa.Column(
            "arguments",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "failed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["sellers.id"], name=op.f("fk_dead_letters_seller_id_sellers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
        sa.UniqueConstraint("task_name", "task_id", name=op.f("uq_dead_letters_task_name_task_id")),
    )
    op.create_index(
        "ix_dead_letters_open",
        "dead_letters",
        ["failed_at"],
        postgresql_where=sa.text("resolved_at IS NULL"),
    )
    op.execute("REVOKE ALL ON TABLE dead_letters FROM PUBLIC")
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON TABLE dead_letters TO {app_role}")
    op.execute(f"GRANT USAGE ON SEQUENCE dead_letters_id_seq TO {app_role}")


def downgrade() -> None:
    op.drop_table("dead_letters")
    for column in ("throttled_until", "sync_failures", "last_sync_error", "last_sync_attempt_at"):
        op.drop_column("ad_accounts", column)
