"""Sellers connect their own gateway accounts: ``payment_connections`` and the account directory.

Revision ID: 0016_payment_connections
Revises: 0015_refunds
Create Date: 2026-12-07 00:00:00

Issue 15 item 1. ``payment_connections`` is seller-owned like every seller table (forced
row-level security, ``seller_isolation``, a key led by ``seller_id``); a partial unique
index keeps one ``ACTIVE`` connection per seller and gateway. A Connect webhook names an
account, not a seller, so, like the payment directory (0004), ``payment_account_directory``
is kept by a SECURITY DEFINER trigger — it claims the account when a connection becomes
``ACTIVE`` (its key refuses a second seller on the same account) and releases it when the
connection ends — and read only through ``pixecom_find_payment_account``, one account in,
one row out. ``order_payments`` gains a nullable ``account_id`` (a metadata change, no
rewrite): the account a payment was made on, which its refunds use.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from pixecom_core.db import migration_support

revision: str = "0016_payment_connections"
down_revision: str | None = "0015_refunds"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Frozen copy of 0001's predicate: no scope → NULL → no row; another seller's → refused.
SELLER_PREDICATE = "seller_id = NULLIF(current_setting('app.current_seller_id', true), '')::uuid"

#: Frozen copy of pixecom_core.models.payments.PaymentConnectionStatus.
STATUSES = "'PENDING', 'ACTIVE', 'REFUSED', 'REVOKED', 'DISCONNECTED'"


def upgrade() -> None:
    app_role = migration_support.app_role()
    op.create_table(
        "payment_connections",
        sa.Column("seller_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("gateway", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="PENDING", nullable=False),
        sa.Column("state_nonce", sa.Text(), nullable=False),
        sa.Column("state_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("consumed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("redirect_uri", sa.Text(), nullable=True),
        sa.Column("account_id", sa.Text(), nullable=True),
        sa.Column("account_ciphertext", postgresql.BYTEA(), nullable=True),
        sa.Column("account_key_version", sa.Integer(), nullable=True),
        sa.Column("display_name", sa.Text(), nullable=True),
        sa.Column("connected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refusal", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "gateway ~ '^[a-z][a-z0-9_]*$'", name=op.f("ck_payment_connections_gateway_format")
        ),
        sa.CheckConstraint(
            f"status IN ({STATUSES})", name=op.f("ck_payment_connections_status_allowed")
        ),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["sellers.id"], name=op.f("fk_payment_connections_seller_id_sellers")
        ),
        sa.PrimaryKeyConstraint("seller_id", "id", name=op.f("pk_payment_connections")),
        sa.UniqueConstraint(
            "seller_id", "state_nonce", name=op.f("uq_payment_connections_seller_id_state_nonce")
        ),
    )
    op.create_index(
        "uq_payment_connections_one_active",
        "payment_connections",
        ["seller_id", "gateway"],
        unique=True,
        postgresql_where=sa.text("status = 'ACTIVE'"),
    )
    op.execute("ALTER TABLE payment_connections ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE payment_connections FORCE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY seller_isolation ON payment_connections "
        f"USING ({SELLER_PREDICATE}) WITH CHECK ({SELLER_PREDICATE})"
    )
    op.execute("REVOKE ALL ON TABLE payment_connections FROM PUBLIC")
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON TABLE payment_connections TO {app_role}")

    op.create_table(
        "payment_account_directory",
        sa.Column("gateway", sa.Text(), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("seller_id", sa.Uuid(), nullable=False),
        sa.Column("connection_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("gateway", "account_id", name=op.f("pk_payment_account_directory")),
    )
    op.execute("REVOKE ALL ON TABLE payment_account_directory FROM PUBLIC")
    op.execute(
        """
        CREATE FUNCTION pixecom_sync_payment_account_directory() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $fn$
        BEGIN
            IF TG_OP = 'UPDATE' AND OLD.status = 'ACTIVE' AND OLD.account_id IS NOT NULL THEN
                DELETE FROM public.payment_account_directory
                 WHERE gateway = OLD.gateway AND account_id = OLD.account_id
                   AND connection_id = OLD.id;
            END IF;
            IF NEW.status = 'ACTIVE' AND NEW.account_id IS NOT NULL THEN
                -- The key refuses an account another seller's connection holds.
                INSERT INTO public.payment_account_directory
                    (gateway, account_id, seller_id, connection_id)
                VALUES (NEW.gateway, NEW.account_id, NEW.seller_id, NEW.id);
            END IF;
            RETURN NULL;
        END
        $fn$;
        COMMENT ON FUNCTION pixecom_sync_payment_account_directory() IS
            'Trigger on payment_connections: an ACTIVE connection claims its gateway account '
            'across all sellers; one that ends releases it.';
        CREATE TRIGGER sync_payment_account_directory
            AFTER INSERT OR UPDATE OF status, account_id ON payment_connections
            FOR EACH ROW EXECUTE FUNCTION pixecom_sync_payment_account_directory();

        CREATE FUNCTION pixecom_find_payment_account(gateway text, account_id text)
        RETURNS TABLE (seller_id uuid, connection_id uuid)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
        AS $fn$
            SELECT d.seller_id, d.connection_id
              FROM public.payment_account_directory AS d
             WHERE d.gateway = $1 AND d.account_id = $2
        $fn$;
        COMMENT ON FUNCTION pixecom_find_payment_account(text, text) IS
            'Webhook routing by connected account before any seller scope exists: '
            'one account in, one row out.';
        """
    )
    for signature in (
        "pixecom_sync_payment_account_directory()",
        "pixecom_find_payment_account(text, text)",
    ):
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION pixecom_find_payment_account(text, text) TO {app_role}")
    op.add_column("order_payments", sa.Column("account_id", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("order_payments", "account_id")
    op.execute("DROP TRIGGER sync_payment_account_directory ON payment_connections")
    op.execute("DROP FUNCTION pixecom_find_payment_account(text, text)")
    op.execute("DROP FUNCTION pixecom_sync_payment_account_directory()")
    op.drop_table("payment_account_directory")
    op.drop_index("uq_payment_connections_one_active", table_name="payment_connections")
    op.drop_table("payment_connections")
