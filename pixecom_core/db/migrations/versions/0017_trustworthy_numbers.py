"""Numbers a seller can trust: per-seller and per-entity roll-ups, attribution, rates.

Revision ID: 0017_trustworthy_numbers
Revises: 0016_payment_connections
Create Date: 2026-12-07 13:00:00

Issue 16.

- ``seller_stats_daily`` (one row per seller and day): the overview's totals over *all*
  spend and *all* revenue, with the spend of campaigns linked to no sellpage and the
  revenue of orders naming no sellpage or no campaign as their own lines; it is also the
  day's bookkeeping — ``needs_reaggregation`` (money moved) and ``fx_pending_currencies``
  (a rate not published yet). Seller-owned, forced row-level security.
- ``entity_stats_daily``: per campaign, ad set and ad and day, the converted spend and the
  revenue of the orders attributed to it. Partitioned by month like ``ad_stats_daily``,
  with its DEFAULT partition; ``pixecom db maintain`` creates the months.
- ``orders`` gains the landing URL's attribution (UTM parameters, ``fbclid``, the ad
  network's campaign, ad set and ad ids): nullable columns, a metadata-only change.
- ``fx_rates.carried_from``: the publication a day without one carries (nullable); the
  application role may now insert and update rates (the scheduled load runs in a worker).
- ``seller_fx_rates`` and its append-only audit ``seller_fx_rate_changes``: a seller's
  manual rates for currencies the source does not publish.
- ``pixecom_sellers_waiting_for_rates(since, until)``: which sellers have days waiting for
  a rate in a range, across sellers (an owner function answering ids only, admitted by a
  SELECT policy for the owner while ``pixecom.unscoped_rows`` is on, as in 0014/0015);
  each seller's days are then marked and re-aggregated in its own scope.
- ``sellpage_stats_daily.needs_reaggregation`` is no longer written: the marker moved to
  ``seller_stats_daily``, which exists for days without sellpage figures too. Its column
  and partial index stay (dropping them here would lock the partitioned table for nothing).
"""

from collections.abc import Sequence

from alembic import op

from pixecom_core.db import migration_support

revision: str = "0017_trustworthy_numbers"
down_revision: str | None = "0016_payment_connections"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Frozen copy of 0001's predicate: no scope → NULL → no row; another seller's → refused.
SELLER_PREDICATE = "seller_id = NULLIF(current_setting('app.current_seller_id', true), '')::uuid"
WAITING = "pixecom_sellers_waiting_for_rates(date, date)"

#: Frozen copy of the attribution columns (pixecom_core.models.orders.Order).
ATTRIBUTION_COLUMNS = (
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_content",
    "utm_term",
    "fbclid",
    "campaign_ref",
    "adset_ref",
    "ad_ref",
)

TABLES_SQL = """
CREATE TABLE seller_stats_daily (
    seller_id UUID NOT NULL,
    id UUID DEFAULT gen_random_uuid() NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    stat_date DATE NOT NULL,
    reporting_currency CHAR(3) NOT NULL,
    spend_minor BIGINT NOT NULL,
    unlinked_spend_minor BIGINT NOT NULL,
    gross_revenue_minor BIGINT NOT NULL,
    refunds_minor BIGINT NOT NULL,
    chargebacks_minor BIGINT NOT NULL,
    net_revenue_minor BIGINT NOT NULL,
    orders_count INTEGER NOT NULL,
    no_sellpage_net_revenue_minor BIGINT NOT NULL,
    no_sellpage_orders_count INTEGER NOT NULL,
    no_campaign_net_revenue_minor BIGINT NOT NULL,
    no_campaign_orders_count INTEGER NOT NULL,
    needs_reaggregation BOOLEAN DEFAULT false NOT NULL,
    fx_pending_currencies TEXT[] DEFAULT '{}'::text[] NOT NULL,
    computed_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_seller_stats_daily PRIMARY KEY (seller_id, stat_date),
    CONSTRAINT ck_seller_stats_daily_reporting_currency_iso4217
        CHECK (reporting_currency ~ '^[A-Z]{3}$'),
    CONSTRAINT ck_seller_stats_daily_spend_minor_non_negative CHECK (spend_minor >= 0
        AND unlinked_spend_minor >= 0 AND gross_revenue_minor >= 0 AND refunds_minor >= 0
        AND chargebacks_minor >= 0 AND orders_count >= 0 AND no_sellpage_orders_count >= 0
        AND no_campaign_orders_count >= 0),
    CONSTRAINT fk_seller_stats_daily_seller_id_sellers
        FOREIGN KEY (seller_id) REFERENCES sellers (id)
);
CREATE INDEX ix_seller_stats_daily_dirty ON seller_stats_daily (seller_id, stat_date)
    WHERE needs_reaggregation;
CREATE INDEX ix_seller_stats_daily_fx_pending ON seller_stats_daily (stat_date)
    WHERE cardinality(fx_pending_currencies) > 0;

CREATE TABLE entity_stats_daily (
    seller_id UUID NOT NULL,
    id UUID DEFAULT gen_random_uuid() NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    entity_type TEXT NOT NULL,
    network TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    stat_date DATE NOT NULL,
    reporting_currency CHAR(3) NOT NULL,
    spend_minor BIGINT NOT NULL,
    gross_revenue_minor BIGINT NOT NULL,
    refunds_minor BIGINT NOT NULL,
    chargebacks_minor BIGINT NOT NULL,
    net_revenue_minor BIGINT NOT NULL,
    orders_count INTEGER NOT NULL,
    computed_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_entity_stats_daily
        PRIMARY KEY (seller_id, entity_type, network, entity_id, stat_date),
    CONSTRAINT ck_entity_stats_daily_reporting_currency_iso4217
        CHECK (reporting_currency ~ '^[A-Z]{3}$'),
    CONSTRAINT ck_entity_stats_daily_entity_type_allowed
        CHECK (entity_type IN ('campaign', 'adset', 'ad')),
    CONSTRAINT ck_entity_stats_daily_network_format CHECK (network ~ '^[a-z][a-z0-9_]*$'),
    CONSTRAINT ck_entity_stats_daily_spend_minor_non_negative CHECK (spend_minor >= 0
        AND gross_revenue_minor >= 0 AND refunds_minor >= 0 AND chargebacks_minor >= 0
        AND orders_count >= 0),
    CONSTRAINT fk_entity_stats_daily_seller_id_sellers
        FOREIGN KEY (seller_id) REFERENCES sellers (id)
) PARTITION BY RANGE (stat_date);
CREATE INDEX ix_entity_stats_daily_seller_id_stat_date
    ON entity_stats_daily (seller_id, stat_date);
CREATE TABLE entity_stats_daily_default PARTITION OF entity_stats_daily DEFAULT;

CREATE TABLE seller_fx_rates (
    seller_id UUID NOT NULL,
    id UUID DEFAULT gen_random_uuid() NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    rate_date DATE NOT NULL,
    base_currency CHAR(3) NOT NULL,
    quote_currency CHAR(3) NOT NULL,
    rate NUMERIC(20, 10) NOT NULL,
    note TEXT,
    set_by TEXT NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_seller_fx_rates
        PRIMARY KEY (seller_id, rate_date, base_currency, quote_currency),
    CONSTRAINT ck_seller_fx_rates_base_currency_iso4217 CHECK (base_currency ~ '^[A-Z]{3}$'),
    CONSTRAINT ck_seller_fx_rates_quote_currency_iso4217
        CHECK (quote_currency ~ '^[A-Z]{3}$'),
    CONSTRAINT ck_seller_fx_rates_rate_positive CHECK (rate > 0),
    CONSTRAINT ck_seller_fx_rates_distinct_currencies CHECK (base_currency <> quote_currency),
    CONSTRAINT fk_seller_fx_rates_seller_id_sellers FOREIGN KEY (seller_id) REFERENCES sellers (id)
);

CREATE TABLE seller_fx_rate_changes (
    seller_id UUID NOT NULL,
    id UUID DEFAULT gen_random_uuid() NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    rate_date DATE NOT NULL,
    base_currency CHAR(3) NOT NULL,
    quote_currency CHAR(3) NOT NULL,
    old_rate NUMERIC(20, 10),
    new_rate NUMERIC(20, 10),
    note TEXT,
    changed_by TEXT NOT NULL,
    CONSTRAINT pk_seller_fx_rate_changes PRIMARY KEY (seller_id, id),
    CONSTRAINT ck_seller_fx_rate_changes_base_currency_iso4217
        CHECK (base_currency ~ '^[A-Z]{3}$'),
    CONSTRAINT ck_seller_fx_rate_changes_quote_currency_iso4217
        CHECK (quote_currency ~ '^[A-Z]{3}$'),
    CONSTRAINT fk_seller_fx_rate_changes_seller_id_sellers
        FOREIGN KEY (seller_id) REFERENCES sellers (id)
);
"""


def upgrade() -> None:
    app_role = migration_support.app_role()
    op.execute(TABLES_SQL)
    privileges = {
        "seller_stats_daily": "SELECT, INSERT, UPDATE, DELETE",
        "entity_stats_daily": "SELECT, INSERT, UPDATE, DELETE",
        "seller_fx_rates": "SELECT, INSERT, UPDATE, DELETE",
        # The audit is append-only: nobody but the owner may change what it says.
        "seller_fx_rate_changes": "SELECT, INSERT",
    }
    for table, granted in privileges.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY seller_isolation ON {table} "
            f"USING ({SELLER_PREDICATE}) WITH CHECK ({SELLER_PREDICATE})"
        )
        op.execute(f"REVOKE ALL ON TABLE {table} FROM PUBLIC")
        op.execute(f"GRANT {granted} ON TABLE {table} TO {app_role}")
    # A partition queried directly ignores its parent's policies: the default partition
    # gets its own and no privilege, as every partition does (0001).
    op.execute(
        "SELECT pixecom_secure_partition('entity_stats_daily', 'entity_stats_daily_default')"
    )
    # The months ad_stats_daily has at migration time (2 back, 3 ahead, as 0001 did); the
    # maintenance task keeps creating months ahead from then on.
    op.execute(
        "SELECT pixecom_ensure_partitions('entity_stats_daily', "
        "(CURRENT_DATE - interval '2 months')::date, "
        "(CURRENT_DATE + interval '3 months')::date)"
    )
    op.execute(
        "CREATE POLICY owner_unscoped_rows ON seller_stats_daily FOR SELECT TO CURRENT_USER "
        "USING (current_setting('pixecom.unscoped_rows', true) = 'on')"
    )
    op.execute(
        """
        CREATE FUNCTION pixecom_sellers_waiting_for_rates(since date, until date)
        RETURNS TABLE (seller_id uuid)
        LANGUAGE plpgsql VOLATILE SECURITY DEFINER
        SET search_path = pg_catalog, public, pg_temp
        AS $fn$
        BEGIN
            PERFORM set_config('pixecom.unscoped_rows', 'on', true);
            RETURN QUERY
                SELECT DISTINCT s.seller_id
                  FROM public.seller_stats_daily AS s
                 WHERE cardinality(s.fx_pending_currencies) > 0
                   AND s.stat_date BETWEEN since AND until;
            PERFORM set_config('pixecom.unscoped_rows', 'off', true);
        END
        $fn$
        """
    )
    op.execute(
        f"COMMENT ON FUNCTION {WAITING} IS "
        "'Sellers with days in [since, until] converted provisionally for want of a rate; "
        "each is then re-aggregated in its own scope when rates arrive.'"
    )
    op.execute(f"REVOKE ALL ON FUNCTION {WAITING} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {WAITING} TO {app_role}")
    op.execute("ALTER TABLE fx_rates ADD COLUMN carried_from DATE")
    # The scheduled rate load runs in the worker, as the application role. No route
    # writes fx_rates: a seller's own rates go to seller_fx_rates.
    op.execute(f"GRANT INSERT, UPDATE ON TABLE fx_rates TO {app_role}")
    for column in ATTRIBUTION_COLUMNS:
        op.execute(f"ALTER TABLE orders ADD COLUMN {column} TEXT")


def downgrade() -> None:
    app_role = migration_support.app_role()
    op.execute(f"REVOKE INSERT, UPDATE ON TABLE fx_rates FROM {app_role}")
    for column in ATTRIBUTION_COLUMNS:
        op.execute(f"ALTER TABLE orders DROP COLUMN {column}")
    op.execute("ALTER TABLE fx_rates DROP COLUMN carried_from")
    op.execute(f"DROP FUNCTION {WAITING}")
    for table in (
        "seller_fx_rate_changes",
        "seller_fx_rates",
        "entity_stats_daily",
        "seller_stats_daily",
    ):
        op.execute(f"DROP TABLE {table}")
