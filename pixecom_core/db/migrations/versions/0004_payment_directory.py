"""Payment directory: which seller and order a gateway payment belongs to.

Revision ID: 0004_payment_directory
Revises: 0003_ads_by_creative
Create Date: 2026-11-26 00:00:00

A webhook names a gateway payment (Stripe ``pi_…``, a PayPal order id), not a seller, so
the worker must learn the seller before it can open that seller's scope. Like the login
directory, ``payment_directory`` is maintained by a SECURITY DEFINER trigger (here on
``order_payments``) and read only through ``pixecom_find_payment(gateway, reference)``,
which answers for one exact payment and cannot list anything. Its primary key makes a
gateway payment id unique across all sellers (MONEY-2), not only per seller.

The inbox also keeps the gateway's notification type for operators.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from pixecom_core.db import migration_support

revision: str = "0004_payment_directory"
down_revision: str | None = "0003_ads_by_creative"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    app_role = migration_support.app_role()
    op.create_table(
        "payment_directory",
        sa.Column("gateway", sa.Text(), nullable=False),
        sa.Column("payment_reference", sa.Text(), nullable=False),
        sa.Column("seller_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("order_created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["seller_id", "gateway", "payment_reference"],
            ["order_payments.seller_id", "order_payments.gateway", "order_payments.payment_id"],
            name=op.f("fk_payment_directory_seller_id_gateway_payment_reference_order_payments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("gateway", "payment_reference", name=op.f("pk_payment_directory")),
    )
    op.execute(
        """
        CREATE FUNCTION pixecom_sync_payment_directory() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $fn$
        BEGIN
            INSERT INTO public.payment_directory
                (gateway, payment_reference, seller_id, order_id, order_created_at)
            VALUES (NEW.gateway, NEW.payment_id, NEW.seller_id, NEW.order_id, NEW.order_created_at);
            RETURN NULL;
        END
        $fn$;
        COMMENT ON FUNCTION pixecom_sync_payment_directory() IS
            'Trigger on order_payments: claims the gateway payment id across all sellers.';
        CREATE TRIGGER sync_payment_directory AFTER INSERT ON order_payments
            FOR EACH ROW EXECUTE FUNCTION pixecom_sync_payment_directory();

        CREATE FUNCTION pixecom_find_payment(gateway text, reference text)
        RETURNS TABLE (seller_id uuid, order_id uuid, order_created_at timestamptz)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
        AS $fn$
            SELECT pd.seller_id, pd.order_id, pd.order_created_at
              FROM public.payment_directory AS pd
             WHERE pd.gateway = $1 AND pd.payment_reference = $2
        $fn$;
        COMMENT ON FUNCTION pixecom_find_payment(text, text) IS
            'Webhook routing before any seller scope exists: one payment in, one row out.';
        """
    )
    op.execute("REVOKE ALL ON TABLE payment_directory FROM PUBLIC")
    for signature in ("pixecom_sync_payment_directory()", "pixecom_find_payment(text, text)"):
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION pixecom_find_payment(text, text) TO {app_role}")
    op.add_column(
        "webhook_inbox",
        sa.Column("event_type", sa.Text(), server_default="", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("webhook_inbox", "event_type")
    op.execute("DROP TRIGGER sync_payment_directory ON order_payments")
    op.execute("DROP FUNCTION pixecom_find_payment(text, text)")
    op.execute("DROP FUNCTION pixecom_sync_payment_directory()")
    op.drop_table("payment_directory")
