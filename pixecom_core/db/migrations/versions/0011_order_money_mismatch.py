"""Orders whose captured money does not match them: ``UNDERPAID`` and ``NEEDS_REVIEW``.

Revision ID: 0011_order_money_mismatch
Revises: 0010_seller_rls_everywhere
Create Date: 2026-12-07 00:00:00

A signed capture of 1 cent on a 3000-cent order, of 3000 JPY on a 3000 USD order, or a
second capture under another charge id used to mark the order PAID. The ledger now judges
the captured facts against the order's total and currency, and two statuses say when they
do not match. The status CHECKs of ``orders`` and ``order_events`` (both partitioned, both
hot) are swapped for wider ones added ``NOT VALID``: a brief lock, no scan; the next
revision validates them under a lock that lets reads and writes go on. Every existing row
satisfies the wider check, which is why dropping the old one first is safe.
"""

from collections.abc import Sequence

from alembic import op

from pixecom_core.db import migration_support

revision: str = "0011_order_money_mismatch"
down_revision: str | None = "0010_seller_rls_everywhere"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = (
    "'PENDING', 'CONFIRMED', 'PAID', 'SHIPPED', 'DELIVERED', 'CANCELLED', "
    "'PARTIALLY_REFUNDED', 'REFUNDED'"
)
NEW = f"{OLD}, 'UNDERPAID', 'NEEDS_REVIEW'"
#: (table, constraint, column, nullable)
CHECKS = (
    ("orders", "ck_orders_status_allowed", "status", False),
    ("order_events", "ck_order_events_from_status_allowed", "from_status", True),
    ("order_events", "ck_order_events_to_status_allowed", "to_status", True),
)


def _condition(column: str, nullable: bool, allowed: str) -> str:
    condition = f"{column} IN ({allowed})"
    return f"{column} IS NULL OR {condition}" if nullable else condition


def upgrade() -> None:
    for table, name, column, nullable in CHECKS:
        migration_support.lint_exception(
            "ban-drop-constraint",
            "A wider CHECK of the same name replaces it in the same transaction: no\n"
            "client loses a guarantee, and the statuses it allowed are all still allowed.",
        )
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        op.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {name} "
            f"CHECK ({_condition(column, nullable, NEW)}) NOT VALID"
        )


def downgrade() -> None:
    for table, name, column, nullable in CHECKS:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        op.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {name} "
            f"CHECK ({_condition(column, nullable, OLD)}) NOT VALID"
        )
