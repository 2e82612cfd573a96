"""Sellers connect their own ad accounts: ``ad_connections`` and what ad accounts keep of it.

Revision ID: 0013_ad_connections
Revises: 0012_validate_order_status
Create Date: 2026-12-07 00:00:00

Issue 14 item 3. A connection is one authorization flow of one seller with one network:
created with a single-use ``state`` nonce (``POST /ad-accounts/connections``), then
holding the grant the network gave (token encrypted like ``ad_accounts.token_ciphertext``,
with its key version, scopes, expiry and the network's subject). Seller-owned: forced
row-level security with the ``seller_isolation`` policy every seller table has, and a
primary key led by ``seller_id``.

``ad_accounts`` gains nullable columns only (metadata changes, no rewrite): the connection
an account was connected through, its token's expiry (``token_expiring`` in the API), when
it was disconnected, and the window a backfill covers and how far it got (the backfill
job fills them; the API derives ``backfilling`` and its progress from them). The foreign
key to ``ad_connections`` is added ``NOT VALID`` so its lock is brief: every existing row
has a NULL ``connection_id``, so there is nothing to validate, and new rows are checked.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from pixecom_core.db import migration_support

revision: str = "0013_ad_connections"
down_revision: str | None = "0012_validate_order_status"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Frozen copy of 0001's predicate: no scope → NULL → no row; another seller's → refused.
SELLER_PREDICATE = "seller_id = NULLIF(current_setting('app.current_seller_id', true), '')::uuid"

#: Frozen copy of the connection statuses (pixecom_core.models.ads.AdConnectionStatus).
CONNECTION_STATUSES = "'PENDING', 'AUTHORIZED', 'REFUSED'"


def _new_ad_account_columns() -> tuple[sa.Column[object], ...]:
    # Fresh objects per call: a Column is bound to the table it was added to.
    return (
        sa.Column("connection_id", sa.Uuid(), nullable=True),
        sa.Column("token_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disconnected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("backfill_since", sa.Date(), nullable=True),
        sa.Column("backfill_until", sa.Date(), nullable=True),
        sa.Column("backfill_done_through", sa.Date(), nullable=True),
    )


def upgrade() -> None:
    app_role = migration_support.app_role()
    op.create_table(
        "ad_connections",
        sa.Column("seller_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("network", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="PENDING", nullable=False),
        sa.Column("state_nonce", sa.Text(), nullable=False),
        sa.Column("state_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("consumed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("redirect_uri", sa.Text(), nullable=True),
        sa.Column("token_ciphertext", postgresql.BYTEA(), nullable=True),
        sa.Column("token_key_version", sa.Integer(), nullable=True),
        sa.Column(
            "scopes",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("authorized_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refusal", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "network ~ '^[a-z][a-z0-9_]*$'", name=op.f("ck_ad_connections_network_format")
        ),
        sa.CheckConstraint(
            f"status IN ({CONNECTION_STATUSES})", name=op.f("ck_ad_connections_status_allowed")
        ),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["sellers.id"], name=op.f("fk_ad_connections_seller_id_sellers")
        ),
        sa.PrimaryKeyConstraint("seller_id", "id", name=op.f("pk_ad_connections")),
        sa.UniqueConstraint(
            "seller_id", "state_nonce", name=op.f("uq_ad_connections_seller_id_state_nonce")
        ),
    )
    op.execute("ALTER TABLE ad_connections ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE ad_connections FORCE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY seller_isolation ON ad_connections "
        f"USING ({SELLER_PREDICATE}) WITH CHECK ({SELLER_PREDICATE})"
    )
    op.execute("REVOKE ALL ON TABLE ad_connections FROM PUBLIC")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE ad_connections TO {app_role}")

    for column in _new_ad_account_columns():
        op.add_column("ad_accounts", column)
    # NOT VALID: a brief lock on the busy table; every existing row's connection_id is
    # NULL, so no row could fail it, and new or changed rows are checked from now on.
    op.execute(
        "ALTER TABLE ad_accounts ADD CONSTRAINT fk_ad_accounts_seller_id_connection_id_ad_connections"
        " FOREIGN KEY (seller_id, connection_id) REFERENCES ad_connections (seller_id, id)"
        " NOT VALID"
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE ad_accounts DROP CONSTRAINT IF EXISTS "
        "fk_ad_accounts_seller_id_connection_id_ad_connections"
    )
    for column in reversed(_new_ad_account_columns()):
        op.drop_column("ad_accounts", column.name)
    op.drop_table("ad_connections")
