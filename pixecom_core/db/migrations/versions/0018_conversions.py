"""Server-side conversion events: sellers' destinations, the outbox, the shopper's ids.

Revision ID: 0018_conversions
Revises: 0017_trustworthy_numbers
Create Date: 2026-12-07 14:00:00

Issue 17 items 3 and 4.

- ``conversion_destinations``: a seller's receiving object at an ad network (pixel id)
  and its access token, encrypted (key version kept for ``pixecom keys rotate``); one per
  seller and network. Seller-owned, forced row-level security.
- ``conversion_deliveries``: the outbox, one row per order, network and event; its unique
  key makes the event idempotent per order. A partial index on ``next_attempt_at`` of
  pending rows serves the worker's sweep, which runs across sellers through
  ``pixecom_due_conversions`` (an owner function answering ids only, admitted by a SELECT
  policy for the owner while ``pixecom.unscoped_rows`` is on, as in 0014/0015).
- ``orders`` gains ``landing_url`` (the page the shopper bought on, the event's source
  URL), ``fbp``, ``fbc``, ``client_ip`` and ``user_agent``: nullable columns, a
  metadata-only change.
"""

from collections.abc import Sequence

from alembic import op

from pixecom_core.db import migration_support

revision: str = "0018_conversions"
down_revision: str | None = "0017_trustworthy_numbers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Frozen copy of 0001's predicate: no scope → NULL → no row; another seller's → refused.
SELLER_PREDICATE = "seller_id = NULLIF(current_setting('app.current_seller_id', true), '')::uuid"
DUE = "pixecom_due_conversions(timestamptz, integer)"
ORDER_COLUMNS = ("landing_url", "fbp", "fbc", "client_ip", "user_agent")

TABLES_SQL = """
CREATE TABLE conversion_destinations (
    seller_id UUID NOT NULL,
    id UUID DEFAULT gen_random_uuid() NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    network TEXT NOT NULL,
    destination_id TEXT NOT NULL,
    token_ciphertext BYTEA NOT NULL,
    token_key_version INTEGER NOT NULL,
    test_event_code TEXT,
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_conversion_destinations PRIMARY KEY (seller_id, id),
    CONSTRAINT uq_conversion_destinations_seller_id_network UNIQUE (seller_id, network),
    CONSTRAINT ck_conversion_destinations_network_format CHECK (network ~ '^[a-z][a-z0-9_]*$'),
    CONSTRAINT fk_conversion_destinations_seller_id_sellers
        FOREIGN KEY (seller_id) REFERENCES sellers (id)
);

CREATE TABLE conversion_deliveries (
    seller_id UUID NOT NULL,
    id UUID DEFAULT gen_random_uuid() NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    order_id UUID NOT NULL,
    order_created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    network TEXT NOT NULL,
    event_name TEXT NOT NULL,
    status TEXT DEFAULT 'PENDING' NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    last_error TEXT,
    sent_at TIMESTAMP WITH TIME ZONE,
    trace_id TEXT,
    CONSTRAINT pk_conversion_deliveries PRIMARY KEY (seller_id, id),
    CONSTRAINT uq_conversion_deliveries_seller_id_order_id_network_event_name
        UNIQUE (seller_id, order_id, network, event_name),
    CONSTRAINT ck_conversion_deliveries_status_allowed
        CHECK (status IN ('PENDING', 'SENT', 'FAILED')),
    CONSTRAINT ck_conversion_deliveries_network_format CHECK (network ~ '^[a-z][a-z0-9_]*$'),
    CONSTRAINT fk_conversion_deliveries_seller_id_sellers
        FOREIGN KEY (seller_id) REFERENCES sellers (id)
);
CREATE INDEX ix_conversion_deliveries_due ON conversion_deliveries (next_attempt_at)
    WHERE status = 'PENDING';
"""


def upgrade() -> None:
    app_role = migration_support.app_role()
    op.execute(TABLES_SQL)
    for table in ("conversion_destinations", "conversion_deliveries"):
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY seller_isolation ON {table} "
            f"USING ({SELLER_PREDICATE}) WITH CHECK ({SELLER_PREDICATE})"
        )
        op.execute(f"REVOKE ALL ON TABLE {table} FROM PUBLIC")
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {table} TO {app_role}")
    op.execute(
        "CREATE POLICY owner_unscoped_rows ON conversion_deliveries FOR SELECT TO CURRENT_USER "
        "USING (current_setting('pixecom.unscoped_rows', true) = 'on')"
    )
    op.execute(
        """
        CREATE FUNCTION pixecom_due_conversions(due_before timestamptz, max_rows integer)
        RETURNS TABLE (seller_id uuid)
        LANGUAGE plpgsql VOLATILE SECURITY DEFINER
        SET search_path = pg_catalog, public, pg_temp
        AS $fn$
        BEGIN
            PERFORM set_config('pixecom.unscoped_rows', 'on', true);
            RETURN QUERY
                SELECT DISTINCT d.seller_id
                  FROM (SELECT c.seller_id FROM public.conversion_deliveries AS c
                         WHERE c.status = 'PENDING' AND c.next_attempt_at <= due_before
                         ORDER BY c.next_attempt_at
                         LIMIT least(greatest(max_rows, 1), 500)) AS d;
            PERFORM set_config('pixecom.unscoped_rows', 'off', true);
        END
        $fn$
        """
    )
    op.execute(
        f"COMMENT ON FUNCTION {DUE} IS "
        "'Sellers with conversion events due (ids only); each seller''s are sent in its scope.'"
    )
    op.execute(f"REVOKE ALL ON FUNCTION {DUE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {DUE} TO {app_role}")
    for column in ORDER_COLUMNS:
        op.execute(f"ALTER TABLE orders ADD COLUMN {column} TEXT")


def downgrade() -> None:
    for column in ORDER_COLUMNS:
        op.execute(f"ALTER TABLE orders DROP COLUMN {column}")
    op.execute(f"DROP FUNCTION {DUE}")
    op.execute("DROP TABLE conversion_deliveries")
    op.execute("DROP TABLE conversion_destinations")
