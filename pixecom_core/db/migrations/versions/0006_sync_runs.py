"""Sync runs: a durable record of each run of a seller's stats sync job.

Revision ID: 0006_sync_runs
Revises: 0005_sync_status
Create Date: 2026-11-26 00:00:00

With several worker processes sharing the queues (SCALE-2), an
operator — and the scale-out tests — must be able to tell from the database that each
seller's sync ran once per cycle, and which runs were cut short by a dying worker
(``finished_at`` NULL). A new table only: nothing here rewrites or long-locks a hot table;
the foreign key to ``sellers`` takes a brief SHARE ROW EXCLUSIVE lock, bounded by
``lock_timeout``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from pixecom_core.db import migration_support

revision: str = "0006_sync_runs"
down_revision: str | None = "0005_sync_status"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    app_role = migration_support.app_role()
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.create_table(
        "sync_runs",
        sa.Column("seller_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("task_id", sa.Text(), nullable=False),
        sa.Column("days_back", sa.Integer(), nullable=False),
        sa.Column("worker", sa.Text(), nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["sellers.id"], name=op.f("fk_sync_runs_seller_id_sellers")
        ),
        sa.PrimaryKeyConstraint("seller_id", "id", name=op.f("pk_sync_runs")),
    )
    op.create_index("ix_sync_runs_seller_id_started_at", "sync_runs", ["seller_id", "started_at"])
    op.execute("REVOKE ALL ON TABLE sync_runs FROM PUBLIC")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE sync_runs TO {app_role}")
    op.execute(f"GRANT USAGE ON SEQUENCE sync_runs_id_seq TO {app_role}")


def downgrade() -> None:
    op.drop_table("sync_runs")
