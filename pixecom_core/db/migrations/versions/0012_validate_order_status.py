"""Validate the wider order-status CHECKs that revision 0011 added ``NOT VALID``.

Revision ID: 0012_validate_order_status
Revises: 0011_order_money_mismatch
Create Date: 2026-12-07 00:00:00

A migration of its own (docs/migrations.md): the scan holds a lock that lets reads and
writes of ``orders`` and ``order_events`` go on, and no stronger lock of 0011 is held
while it runs.
"""

from collections.abc import Sequence

from pixecom_core.db import migration_support

revision: str = "0012_validate_order_status"
down_revision: str | None = "0011_order_money_mismatch"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    migration_support.validate_constraint("orders", "ck_orders_status_allowed")
    migration_support.validate_constraint("order_events", "ck_order_events_from_status_allowed")
    migration_support.validate_constraint("order_events", "ck_order_events_to_status_allowed")


def downgrade() -> None:
    # A validated constraint stays valid; 0011's downgrade replaces it.
    pass
