"""Sellers refund orders through the API: ``refunds``.

Revision ID: 0015_refunds
Revises: 0014_backfill_directory
Create Date: 2026-12-07 00:00:00

Issue 15 item 3. One row per refund a seller asked for (``POST /orders/{id}/refunds``),
written before the gateway is called: it reserves the amount while the refund is open
and shows refunds pending or failed. The money itself moves only in ``payment_events``.
Seller-owned like every seller table: forced row-level security with the
``seller_isolation`` policy and a primary key led by ``seller_id``. A new table, so
nothing is rewritten or locked for long.

The payments worker settles refunds left open (a gateway answer that never came, a refund
still pending) across sellers, and ``refunds`` has forced row-level security: like the
backfills to resume (0014), ``pixecom_open_refunds(settled_before, max_rows)`` runs as the
owner, admitted by a SELECT policy for the owner role only while ``pixecom.unscoped_rows``
is on, and answers ids only (seller, refund); each refund is then settled in its seller's
scope.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from pixecom_core.db import migration_support

revision: str = "0015_refunds"
down_revision: str | None = "0014_backfill_directory"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Frozen copy of 0001's predicate: no scope → NULL → no row; another seller's → refused.
SELLER_PREDICATE = "seller_id = NULLIF(current_setting('app.current_seller_id', true), '')::uuid"

#: A page of open refunds is at most this long (SCALE-4: nothing unbounded).
MAX_OPEN_ROWS = 500
OPEN_REFUNDS = "pixecom_open_refunds(timestamptz, integer)"

#: Frozen copy of the refund statuses (pixecom_core.models.payments.RefundStatus).
REFUND_STATUSES = "'REQUESTED', 'PENDING', 'SUCCEEDED', 'FAILED'"


def upgrade() -> None:
    app_role = migration_support.app_role()
    op.create_table(
        "refunds",
        sa.Column("seller_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("order_created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("gateway", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), server_default="REQUESTED", nullable=False),
        sa.Column("gateway_reference", sa.Text(), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.Uuid(), nullable=True),
        sa.Column("asking_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_refunds_amount_minor_positive")),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name=op.f("ck_refunds_currency_iso4217")),
        sa.CheckConstraint("gateway ~ '^[a-z][a-z0-9_]*$'", name=op.f("ck_refunds_gateway_format")),
        sa.CheckConstraint(
            f"status IN ({REFUND_STATUSES})", name=op.f("ck_refunds_status_allowed")
        ),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["sellers.id"], name=op.f("fk_refunds_seller_id_sellers")
        ),
        sa.PrimaryKeyConstraint("seller_id", "id", name=op.f("pk_refunds")),
        sa.UniqueConstraint(
            "seller_id", "idempotency_key", name=op.f("uq_refunds_seller_id_idempotency_key")
        ),
        sa.UniqueConstraint(
            "seller_id",
            "gateway",
            "gateway_reference",
            name=op.f("uq_refunds_seller_id_gateway_gateway_reference"),
        ),
    )
    op.create_index(
        op.f("ix_refunds_seller_id_order_id"), "refunds", ["seller_id", "order_id"], unique=False
    )
    op.execute("ALTER TABLE refunds ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE refunds FORCE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY seller_isolation ON refunds "
        f"USING ({SELLER_PREDICATE}) WITH CHECK ({SELLER_PREDICATE})"
    )
    op.execute("REVOKE ALL ON TABLE refunds FROM PUBLIC")
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON TABLE refunds TO {app_role}")
    op.execute(
        "CREATE POLICY owner_unscoped_rows ON refunds FOR SELECT TO CURRENT_USER "
        "USING (current_setting('pixecom.unscoped_rows', true) = 'on')"
    )
    op.execute(
        f"""
        CREATE FUNCTION pixecom_open_refunds(settled_before timestamptz, max_rows integer)
        RETURNS TABLE (seller_id uuid, refund_id uuid)
        LANGUAGE plpgsql VOLATILE SECURITY DEFINER
        SET search_path = pg_catalog, public, pg_temp
        AS $fn$
        BEGIN
            PERFORM set_config('pixecom.unscoped_rows', 'on', true);
            -- Refunds still open whose last word is older than the caller's cut-off and
            -- that no request is asking the gateway about right now; oldest first.
            RETURN QUERY
                SELECT r.seller_id, r.id
                  FROM public.refunds AS r
                 WHERE r.status IN ('REQUESTED', 'PENDING')
                   AND r.updated_at < settled_before
                   AND (r.asking_until IS NULL OR r.asking_until < now())
                 ORDER BY r.updated_at
                 LIMIT least(greatest(max_rows, 1), {MAX_OPEN_ROWS});
            PERFORM set_config('pixecom.unscoped_rows', 'off', true);
        END
        $fn$
        """
    )
    op.execute(
        f"COMMENT ON FUNCTION {OPEN_REFUNDS} IS "
        "'At most 500 (seller id, refund id) of refunds still open and not being asked "
        "about, oldest word first; each is then settled in its seller''s scope.'"
    )
    op.execute(f"REVOKE ALL ON FUNCTION {OPEN_REFUNDS} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {OPEN_REFUNDS} TO {app_role}")
    op.create_index(
        "ix_refunds_open",
        "refunds",
        ["updated_at"],
        postgresql_where=sa.text("status IN ('REQUESTED', 'PENDING')"),
    )


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {OPEN_REFUNDS}")
    op.drop_index("ix_refunds_open", table_name="refunds")
    op.drop_index(op.f("ix_refunds_seller_id_order_id"), table_name="refunds")
    op.drop_table("refunds")
